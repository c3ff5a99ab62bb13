//! `tokenize`: clean JSONL → token shards, split into train and validation by document.
//!
//! The whole output folder is built beside the old one and swapped in only when complete
//! ([`StagedDir`]): a run that fails leaves the previous dataset as it was, and no temp files.

use super::meta::{self, ShardEntry};
use super::shard::ShardWriter;
use crate::cli::outputs::StagedDir;
use crate::tokenizer::{ENDOFTEXT, Tokenizer};
use anyhow::{Result, bail};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// How to write the shards.
#[derive(Clone, Debug)]
pub struct TokenizeOptions {
    /// Fraction of documents that go to the validation split: 0 (none) up to, not including, 1.
    pub val_fraction: f64,
    /// Seed of the train/val assignment.
    pub seed: u64,
    /// Start a new shard after this many tokens (at least 1).
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

impl TokenizeOptions {
    /// Refuse options that would write nonsense: no training split, or empty shards.
    pub fn validate(&self) -> Result<()> {
        check_val_fraction(self.val_fraction).map_err(anyhow::Error::msg)?;
        if self.shard_tokens == 0 {
            bail!("shard size 0 tokens: a shard holds at least 1 token");
        }
        Ok(())
    }
}

/// `x` is a usable validation fraction: finite, at least 0 and below 1 (at 1 nothing is left
/// to train on). The message is for a command-line flag's parser.
pub fn check_val_fraction(x: f64) -> std::result::Result<f64, String> {
    if (0.0..1.0).contains(&x) {
        Ok(x)
    } else {
        Err(format!(
            "{x} is not a fraction in [0, 1): 0 means no validation split, and at 1 no document \
             is left to train on"
        ))
    }
}

/// Which documents go to validation: those whose seeded hash is below `fraction × 2^64`, and,
/// when that picks none of a corpus of at least 2, the one with the smallest hash.
struct Assign {
    seed: u64,
    threshold: u64,
    on: bool,
    forced: Option<u64>,
}

impl Assign {
    fn new(n_docs: u64, opts: &TokenizeOptions) -> Assign {
        let threshold = (opts.val_fraction * u64::MAX as f64) as u64;
        let on = opts.val_fraction > 0.0;
        let seed = opts.seed;
        let forced = if on && n_docs >= 2 && (0..n_docs).all(|i| doc_hash(seed, i) >= threshold) {
            (0..n_docs).min_by_key(|&i| doc_hash(seed, i))
        } else {
            None
        };
        Assign {
            seed,
            threshold,
            on,
            forced,
        }
    }

    fn is_val(&self, i: u64) -> bool {
        self.on && (doc_hash(self.seed, i) < self.threshold || Some(i) == self.forced)
    }
}

/// Rolls over to a new shard file every `limit` tokens.
struct SplitWriter {
    dir: PathBuf,
    name: &'static str,
    vocab_size: usize,
    limit: u64,
    current: Option<(String, ShardWriter)>,
    shards: Vec<ShardEntry>,
    tokens: u64,
    docs: u64,
}

impl SplitWriter {
    fn new(dir: &Path, name: &'static str, vocab_size: usize, limit: u64) -> SplitWriter {
        SplitWriter {
            dir: dir.to_path_buf(),
            name,
            vocab_size,
            limit,
            current: None,
            shards: Vec::new(),
            tokens: 0,
            docs: 0,
        }
    }

    fn write_doc(&mut self, eot: u32, ids: &[u32]) -> Result<()> {
        if self
            .current
            .as_ref()
            .is_some_and(|(_, w)| w.count() >= self.limit)
        {
            self.close()?;
        }
        if self.current.is_none() {
            let file = format!("{}_{:06}.bin", self.name, self.shards.len());
            let w = ShardWriter::create(&self.dir.join(&file), self.vocab_size)?;
            self.current = Some((file, w));
        }
        let (_, w) = self.current.as_mut().expect("open");
        w.write(&[eot])?;
        w.write(ids)?;
        self.tokens += 1 + ids.len() as u64;
        self.docs += 1;
        Ok(())
    }

    /// Finish the open shard and list it.
    fn close(&mut self) -> Result<()> {
        if let Some((file, w)) = self.current.take() {
            let sum = w.checksum();
            let header = w.finish()?;
            self.shards.push(ShardEntry::new(&file, &header, sum));
        }
        Ok(())
    }

    fn finish(mut self) -> Result<SplitWriter> {
        self.close()?;
        Ok(self)
    }

    fn files(&self) -> Vec<String> {
        self.shards.iter().map(|e| e.file.clone()).collect()
    }
}

/// Tokenize the documents of `inputs` (clean JSONL) into the folder `out`: `train_NNNNNN.bin`,
/// `val_NNNNNN.bin`, `meta.json` and the tokenizer (`tokenizer.json`). Each document is
/// preceded by `<|endoftext|>`, which is added to the tokenizer if it lacks it. The folder is
/// built beside `out` and replaces it only when complete; an existing `out` that holds other
/// files than these is refused.
pub fn tokenize_jsonl(
    tok: &mut Tokenizer,
    inputs: &[PathBuf],
    out: &Path,
    opts: &TokenizeOptions,
) -> Result<TokenizeSummary> {
    opts.validate()?;
    let staged = StagedDir::create(out, meta::is_dataset_file)?;
    let n_docs = count_docs(inputs, opts.max_docs)?;
    let eot = tok.ensure_special(ENDOFTEXT);
    let vocab_size = tok.vocab_size();
    let mut splits = [
        SplitWriter::new(staged.path(), "train", vocab_size, opts.shard_tokens),
        SplitWriter::new(staged.path(), "val", vocab_size, opts.shard_tokens),
    ];
    let assign = Assign::new(n_docs, opts);
    let text_bytes = encode_docs(tok, inputs, n_docs, &assign, eot, &mut splits)?;
    let [train, val] = splits;
    let (train, val) = (train.finish()?, val.finish()?);
    let summary = TokenizeSummary {
        vocab_size,
        eot_id: eot,
        token_bytes: super::shard::Header::for_vocab(vocab_size).token_bytes,
        train_docs: train.docs,
        val_docs: val.docs,
        train_tokens: train.tokens,
        val_tokens: val.tokens,
        text_bytes,
        train_shards: train.files(),
        val_shards: val.files(),
    };
    let tok_path = staged.path().join("tokenizer.json");
    crate::tokenizer::formats::hf_json::write(&tok_path, tok)?;
    let shards: Vec<ShardEntry> = train.shards.into_iter().chain(val.shards).collect();
    meta::write(staged.path(), &summary, &shards)?;
    staged.commit()?;
    Ok(summary)
}

/// The number of documents to write: all of them, or at most `max`. Errors when there are none.
fn count_docs(inputs: &[PathBuf], max: Option<u64>) -> Result<u64> {
    let mut n_docs = 0u64;
    for path in inputs {
        crate::data::jsonl::for_each_doc(path, |_| {
            n_docs += 1;
            Ok(true)
        })?;
    }
    if let Some(m) = max {
        n_docs = n_docs.min(m);
    }
    if n_docs == 0 {
        let names: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
        bail!("no documents in {}", names.join(", "));
    }
    Ok(n_docs)
}

/// Encode the first `n_docs` documents in parallel batches of 256 and write them, in order, to
/// the split `assign` picks: `splits[0]` (train) or `splits[1]` (val). Returns the text bytes.
fn encode_docs(
    tok: &Tokenizer,
    inputs: &[PathBuf],
    n_docs: u64,
    assign: &Assign,
    eot: u32,
    splits: &mut [SplitWriter; 2],
) -> Result<u64> {
    let bar = crate::cli::progress(n_docs, "documents");
    let (mut index, mut text_bytes) = (0u64, 0u64);
    let mut batch: Vec<String> = Vec::new();
    let mut flush = |batch: &mut Vec<String>, index: &mut u64| -> Result<()> {
        let ids: Vec<Vec<u32>> = batch.par_iter().map(|t| tok.encode_ordinary(t)).collect();
        for doc in ids {
            splits[usize::from(assign.is_val(*index))].write_doc(eot, &doc)?;
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
    Ok(text_bytes)
}
