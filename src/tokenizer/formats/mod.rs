//! Tokenizer files: GPT-2's `vocab.json` + `merges.txt` (also its original `encoder.json` +
//! `vocab.bpe`), HF `tokenizer.json`, and tiktoken's `.tiktoken` rank files.
pub mod gpt2;
pub mod hf_json;
pub mod tiktoken;

use super::{Split, Tokenizer};
use anyhow::{Result, bail};
use std::path::Path;

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
