//! Tokenizer files: GPT-2's `vocab.json` + `merges.txt` (also its original `encoder.json` +
//! `vocab.bpe`), HF `tokenizer.json`, and tiktoken's `.tiktoken` rank files.
pub mod gpt2;
pub mod hf_json;
pub mod tiktoken;

use super::{Split, Tokenizer};
use anyhow::{Result, bail};
use std::path::Path;

/// How many ids a vocabulary file may leave unused between its tokens (cl100k's special tokens
/// leave 16). The id table is sized by the largest id, so this keeps it within the file's
/// entries: one huge id in a small file is an error, not an allocation of gigabytes.
pub const MAX_UNUSED_IDS: u64 = 1024;

/// The size of the id table for a file with `entries` tokens whose largest id is `max_id`:
/// `max_id + 1`, when that leaves at most [`MAX_UNUSED_IDS`] ids unused. `file` names the file.
pub fn id_slots(max_id: Option<u64>, entries: usize, file: &Path) -> Result<usize> {
    let Some(max_id) = max_id else { return Ok(0) };
    let limit = (entries as u64).saturating_add(MAX_UNUSED_IDS);
    if max_id >= limit.min(u32::MAX as u64) {
        bail!(
            "{}: id {max_id} is too large for {entries} tokens (ids must stay below {})",
            file.display(),
            limit.min(u32::MAX as u64)
        );
    }
    Ok(max_id as usize + 1)
}

/// Load a tokenizer from `path`: a directory holding `tokenizer.json` (as `train-tokenizer`
/// writes), `vocab.json` + `merges.txt`, or GPT-2's `encoder.json` + `vocab.bpe`; or a
/// `.tiktoken` rank file; or a `tokenizer.json` file. `split` overrides the file's pattern
/// (rank files and GPT-2 files do not record one; they default to GPT-2's).
pub fn load(path: &Path, split: Option<Split>) -> Result<Tokenizer> {
    let tok = if path.is_dir() {
        let has = |a: &str, b: &str| path.join(a).is_file() && path.join(b).is_file();
        if path.join("tokenizer.json").is_file() {
            hf_json::read(&path.join("tokenizer.json"))?
        } else if has("vocab.json", "merges.txt") {
            gpt2::read(
                &path.join("vocab.json"),
                &path.join("merges.txt"),
                Split::Gpt2,
            )?
        } else if has("encoder.json", "vocab.bpe") {
            gpt2::read(
                &path.join("encoder.json"),
                &path.join("vocab.bpe"),
                Split::Gpt2,
            )?
        } else {
            bail!(
                "{}: no tokenizer.json, vocab.json + merges.txt, or encoder.json + vocab.bpe in this directory",
                path.display()
            );
        }
    } else if path.extension().is_some_and(|e| e == "tiktoken") {
        tiktoken::read(path, Split::Gpt2)?
    } else if path.extension().is_some_and(|e| e == "json") && path.exists() {
        hf_json::read(path)?
    } else if !path.exists() {
        bail!("{}: no such file or directory", path.display());
    } else {
        bail!(
            "{}: not a tokenizer (expected a directory, a .tiktoken file or tokenizer.json)",
            path.display()
        );
    };
    Ok(match split {
        Some(s) => tok.with_split(s),
        None => tok,
    })
}

/// Write the files `train-tokenizer` produces: `DIR/vocab.json`, `DIR/merges.txt`, `DIR/tokenizer.json`.
pub fn save_dir(dir: &Path, tok: &Tokenizer) -> Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    gpt2::write(dir, tok)?;
    hf_json::write(&dir.join("tokenizer.json"), tok)
}
