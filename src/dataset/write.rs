//! `tokenize`: clean JSONL → token shards, split into train and validation by document.

use super::shard::ShardWriter;
use crate::tokenizer::{ENDOFTEXT, Tokenizer};
use anyhow::{Context, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// How to write the shards.
#[derive(Clone, Debug)]
pub struct TokenizeOptions {
    /// Fraction of documents that go to the validation split (0 = none).
    pub val_fraction: f64,
    /// Seed of the train/val assignment.
    pub seed: u64,
    /// Start a new shard after this many tokens.
    pub shard_tokens: u64,
    /// Stop after this many documents (quick runs).
    pub max_docs: Option<u64>,
}

/// What `tokenize_jsonl` wrote.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TokenizeSummary {
    pub vocab_size: usize,
    pub eot_id: u32,
    pub token_bytes: u32,
    pub train_docs: u64,
    pub val_docs: u64,
    pub train_tokens: u64,
    pub val_tokens: u64,
    pub text_bytes: u64,
    pub train_shards: Vec<String>,
    pub val_shards: Vec<String>,
}

/// A 64-bit mix (splitmix64's finaliser): the seeded hash that assigns documents to splits.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E3779B97F4A7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D049BB133111EB);
    x ^ (x >> 31)
}

fn doc_hash(seed: u64, index: u64) -> u64 {
    mix(seed ^ mix(index))
}

/// Rolls over to a new shard file every `limit` tokens.
struct SplitWriter {
    dir: PathBuf,
    name: &'static str,
    vocab_size: usize,
    limit: u64,
    current: Option<ShardWriter>,
    files: Vec<String>,
    tokens: u64,
    docs: u64,
}

impl SplitWriter {
    fn write_doc(&mut self, eot: u32, ids: &[u32]) -> Result<()> {
        if self
            .current
            .as_ref()
            .is_some_and(|w| w.count() >= self.limit)
        {
            self.current.take().expect("open").finish()?;
        }
        if self.current.is_none() {
            let file = format!("{}_{:06}.bin", self.name, self.files.len());
            self.current = Some(ShardWriter::create(&self.dir.join(&file), self.vocab_size)?);
            self.files.push(file);
        }
        let w = self.current.as_mut().expect("open");
        w.write(&[eot])?;
        w.write(ids)?;
        self.tokens += 1 + ids.len() as u64;
        self.docs += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<(Vec<String>, u64, u64)> {
        if let Some(w) = self.current.take() {
            w.finish()?;
        }
        Ok((self.files, self.tokens, self.docs))
    }
}

/// Tokenize the documents of `inputs` (clean JSONL) into shards in `out`: `train_NNNNNN.bin`,
/// `val_NNNNNN.bin`, plus `meta.json` and the tokenizer (`tokenizer.json`). Each document is
/// preceded by `<|endoftext|>`, which is added to the tokenizer if it lacks it.
pub fn tokenize_jsonl(
    tok: &mut Tokenizer,
    inputs: &[PathBuf],
    out: &Path,
    opts: &TokenizeOptions,
) -> Result<TokenizeSummary> {
    let eot = tok.ensure_special(ENDOFTEXT);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    // Old shards would be mistaken for new ones: remove them.
    for entry in std::fs::read_dir(out)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if (name.starts_with("train_") || name.starts_with("val_")) && name.ends_with(".bin") {
            std::fs::remove_file(entry.path())?;
        }
    }
    // First pass: count documents, so that a small corpus still gets one validation document.
    let mut n_docs = 0u64;
    for path in inputs {
        crate::data::jsonl::for_each_doc(path, |_| {
            n_docs += 1;
            Ok(true)
        })?;
    }
    if let Some(m) = opts.max_docs {
        n_docs = n_docs.min(m);
    }
    if n_docs == 0 {
        anyhow::bail!(
            "no documents in {}",
            inputs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let threshold = (opts.val_fraction.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
    let forced_val = if opts.val_fraction > 0.0
        && n_docs >= 2
        && (0..n_docs).all(|i| doc_hash(opts.seed, i) >= threshold)
    {
        (0..n_docs).min_by_key(|&i| doc_hash(opts.seed, i))
    } else {
        None
    };
    let is_val = |i: u64| {
        opts.val_fraction > 0.0 && (doc_hash(opts.seed, i) < threshold || Some(i) == forced_val)
    };

    let vocab_size = tok.vocab_size();
    let new_split = |name| SplitWriter {
        dir: out.to_path_buf(),
        name,
        vocab_size,
        limit: opts.shard_tokens,
        current: None,
        files: Vec::new(),
        tokens: 0,
        docs: 0,
    };
    let (mut train, mut val) = (new_split("train"), new_split("val"));
    let bar = crate::cli::progress(n_docs, "documents");
    let mut index = 0u64;
    let mut batch: Vec<String> = Vec::new();
    let mut text_bytes = 0u64;
    let tok_ref = &*tok;
    let mut flush = |batch: &mut Vec<String>, index: &mut u64| -> Result<()> {
        let ids: Vec<Vec<u32>> = batch
            .par_iter()
            .map(|t| tok_ref.encode_ordinary(t))
            .collect();
        for doc in ids {
            let target = if is_val(*index) { &mut val } else { &mut train };
            target.write_doc(eot, &doc)?;
            *index += 1;
        }
        bar.inc(batch.len() as u64);
        batch.clear();
        Ok(())
    };
    for path in inputs {
        crate::data::jsonl::for_each_doc(path, |text| {
            if index + batch.len() as u64 >= n_docs {
                return Ok(false);
            }
            text_bytes += text.len() as u64;
            batch.push(text);
            if batch.len() >= 256 {
                flush(&mut batch, &mut index)?;
            }
            Ok(true)
        })?;
    }
    flush(&mut batch, &mut index)?;
    bar.finish_and_clear();
    let (train_shards, train_tokens, train_docs) = train.finish()?;
    let (val_shards, val_tokens, val_docs) = val.finish()?;
    let summary = TokenizeSummary {
        vocab_size,
        eot_id: eot,
        token_bytes: super::shard::Header::for_vocab(vocab_size).token_bytes,
        train_docs,
        val_docs,
        train_tokens,
        val_tokens,
        text_bytes,
        train_shards,
        val_shards,
    };
    crate::tokenizer::formats::hf_json::write(&out.join("tokenizer.json"), tok)?;
    let meta = serde_json::json!({
        "format": "pretrain token shards",
        "version": super::shard::VERSION,
        "tokenizer": "tokenizer.json",
        "summary": summary,
    });
    crate::cli::write_atomic(
        &out.join("meta.json"),
        serde_json::to_string_pretty(&meta)?.as_bytes(),
    )?;
    Ok(summary)
}
