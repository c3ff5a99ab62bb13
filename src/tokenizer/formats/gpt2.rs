//! GPT-2's tokenizer files: `vocab.json` (token string → id) and `merges.txt` (one merge per
//! line, `LEFT RIGHT`, in priority order). OpenAI's original release names them `encoder.json`
//! and `vocab.bpe`. Token strings are bytes written with GPT-2's `bytes_to_unicode` table: each
//! byte becomes a printable char, so that a JSON file can hold any byte string.

use crate::tokenizer::{Split, Tokenizer};
use anyhow::{Context, Result, bail};
use rustc_hash::FxHashMap;
use std::path::Path;

/// GPT-2's byte → char table: printable Latin-1 bytes map to themselves, the other 68 bytes to
/// U+0100 and up, in byte order.
pub fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0;
    for b in 0..256u32 {
        let printable =
            (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).expect("Latin-1")
        } else {
            n += 1;
            char::from_u32(255 + n).expect("valid")
        };
    }
    table
}

/// Bytes written as a GPT-2 token string.
pub fn encode_token(bytes: &[u8], table: &[char; 256]) -> String {
    bytes.iter().map(|&b| table[b as usize]).collect()
}

/// A GPT-2 token string back to bytes; `None` if a char is outside the table.
pub fn decode_token(s: &str, inverse: &FxHashMap<char, u8>) -> Option<Vec<u8>> {
    s.chars().map(|c| inverse.get(&c).copied()).collect()
}

fn inverse_table() -> FxHashMap<char, u8> {
    bytes_to_unicode()
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect()
}

/// Read `vocab.json` + `merges.txt` (or `encoder.json` + `vocab.bpe`). Tokens that are neither a
/// byte nor made by a merge (like `<|endoftext|>`) become special tokens.
pub fn read(vocab_path: &Path, merges_path: &Path, split: Split) -> Result<Tokenizer> {
    let text = std::fs::read_to_string(vocab_path)
        .with_context(|| format!("reading {}", vocab_path.display()))?;
    let map: FxHashMap<String, u32> = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a JSON map of token → id", vocab_path.display()))?;
    let inverse = inverse_table();
    let max_id = map.values().map(|&i| i as u64).max();
    let n = super::id_slots(max_id, map.len(), vocab_path)?;
    let mut slots: Vec<Option<Vec<u8>>> = vec![None; n];
    let mut by_str: FxHashMap<&str, u32> = FxHashMap::default();
    for (s, &id) in &map {
        if slots[id as usize].is_some() {
            bail!("{}: id {id} is used twice", vocab_path.display());
        }
        // A token that does not decode (e.g. written by hand) is kept as its UTF-8 text.
        slots[id as usize] =
            Some(decode_token(s, &inverse).unwrap_or_else(|| s.as_bytes().to_vec()));
        by_str.insert(s, id);
    }
    let merges_text = std::fs::read_to_string(merges_path)
        .with_context(|| format!("reading {}", merges_path.display()))?;
    let mut merges = Vec::new();
    let mut made = vec![false; n];
    for (i, line) in merges_text.lines().enumerate() {
        if line.starts_with("#version") || line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}: line {}", merges_path.display(), i + 1);
        let (a, b) = line
            .split_once(' ')
            .with_context(|| format!("{}: expected `LEFT RIGHT`", at()))?;
        let ia = *by_str
            .get(a)
            .with_context(|| format!("{}: token {a:?} is not in the vocabulary", at()))?;
        let ib = *by_str
            .get(b)
            .with_context(|| format!("{}: token {b:?} is not in the vocabulary", at()))?;
        let joined = format!("{a}{b}");
        let m = *by_str.get(joined.as_str()).with_context(|| {
            format!("{}: merged token {joined:?} is not in the vocabulary", at())
        })?;
        made[m as usize] = true;
        merges.push((ia, ib));
    }
    let mut specials = Vec::new();
    for (id, slot) in slots.iter_mut().enumerate() {
        if let Some(b) = slot
            && b.len() > 1
            && !made[id]
        {
            let text = String::from_utf8(b.clone()).with_context(|| {
                format!(
                    "{}: token {id} is neither a byte, a merge nor text",
                    vocab_path.display()
                )
            })?;
            specials.push((text, id as u32));
            *slot = None;
        }
    }
    Tokenizer::new(split, slots, &merges, specials)
        .with_context(|| format!("reading {}", vocab_path.display()))
}

/// Write `DIR/vocab.json` and `DIR/merges.txt`.
pub fn write(dir: &Path, tok: &Tokenizer) -> Result<()> {
    let table = bytes_to_unicode();
    let mut vocab = String::from("{");
    for id in 0..tok.vocab_size() as u32 {
        let bytes = tok.token_bytes(id).unwrap_or_default();
        let s = if tok.is_special(id) {
            String::from_utf8_lossy(bytes).into_owned()
        } else {
            encode_token(bytes, &table)
        };
        if id > 0 {
            vocab.push(',');
        }
        vocab.push_str(&serde_json::to_string(&s)?);
        vocab.push_str(&format!(":{id}"));
    }
    vocab.push_str("}\n");
    crate::cli::write_atomic(&dir.join("vocab.json"), vocab.as_bytes())?;
    let mut merges = String::from("#version: 0.2\n");
    for &(a, b, _) in tok.merges() {
        let ta = encode_token(tok.token_bytes(a).unwrap_or_default(), &table);
        let tb = encode_token(tok.token_bytes(b).unwrap_or_default(), &table);
        merges.push_str(&format!("{ta} {tb}\n"));
    }
    crate::cli::write_atomic(&dir.join("merges.txt"), merges.as_bytes())
}
