//! tiktoken's `.tiktoken` rank files: one token per line, `BASE64(bytes) RANK`. The rank is the
//! id and also the merge priority. The files do not list special tokens or the split pattern;
//! the known files' special tokens are filled in from the file name.

use crate::tokenizer::{Split, Tokenizer};
use anyhow::{Context, Result, bail};
use std::path::Path;

/// Special tokens of the public rank files, by file-name prefix.
fn known_specials(name: &str) -> Vec<(String, u32)> {
    let list: &[(&str, u32)] = if name.starts_with("r50k_base") || name.starts_with("p50k_base") {
        &[("<|endoftext|>", 50256)]
    } else if name.starts_with("cl100k_base") {
        &[
            ("<|endoftext|>", 100257),
            ("<|fim_prefix|>", 100258),
            ("<|fim_middle|>", 100259),
            ("<|fim_suffix|>", 100260),
            ("<|endofprompt|>", 100276),
        ]
    } else {
        &[]
    };
    list.iter().map(|&(s, i)| (s.to_string(), i)).collect()
}

/// Read a `.tiktoken` file; `split` is the pattern to use with it.
pub fn read(path: &Path, split: Split) -> Result<Tokenizer> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut vocab: Vec<Vec<u8>> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let at = || format!("{}: line {}", path.display(), i + 1);
        let (b64, rank) = line
            .split_once(' ')
            .with_context(|| format!("{}: expected `BASE64 RANK`", at()))?;
        let rank: usize = rank
            .trim()
            .parse()
            .with_context(|| format!("{}: bad rank {rank:?}", at()))?;
        let bytes = base64_decode(b64).with_context(|| format!("{}: bad base64 {b64:?}", at()))?;
        if rank != vocab.len() {
            bail!(
                "{}: rank {rank} out of order (expected {})",
                at(),
                vocab.len()
            );
        }
        vocab.push(bytes);
    }
    if vocab.is_empty() {
        bail!("{}: no tokens", path.display());
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Tokenizer::from_ranks(split, vocab, known_specials(&name))
        .with_context(|| format!("reading {}", path.display()))
}

/// Write `tok` as a `.tiktoken` file (ids are ranks; special tokens are not written).
pub fn write(path: &Path, tok: &Tokenizer) -> Result<()> {
    let mut out = String::new();
    for id in 0..tok.vocab_size() as u32 {
        if tok.is_special(id) {
            continue;
        }
        let bytes = tok.token_bytes(id).unwrap_or_default();
        out.push_str(&base64_encode(bytes));
        out.push_str(&format!(" {id}\n"));
    }
    crate::cli::write_atomic(path, out.as_bytes())
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_decode(s: &str) -> Result<Vec<u8>> {
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for &c in s {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c)
            .context("not a base64 character")? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

fn base64_encode(b: &[u8]) -> String {
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk.len();
        let v = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for k in 0..4 {
            if k <= n {
                out.push(ALPHABET[(v >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
