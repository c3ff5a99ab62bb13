//! HF `tokenizer.json`: the single file the `tokenizers` library loads. We write a byte-level BPE
//! model with our split regex as the pre-tokenizer, so HF encodes exactly as we do.

use super::gpt2::{bytes_to_unicode, decode_token, encode_token};
use crate::tokenizer::{Split, Tokenizer};
use anyhow::{Context, Result, bail};
use rustc_hash::FxHashMap;
use serde_json::{Value, json};
use std::path::Path;

/// The `tokenizer.json` document for `tok`.
pub fn to_json(tok: &Tokenizer) -> Value {
    let table = bytes_to_unicode();
    let mut vocab = serde_json::Map::new();
    for id in 0..tok.vocab_size() as u32 {
        if !tok.is_special(id) {
            vocab.insert(
                encode_token(tok.token_bytes(id).unwrap_or_default(), &table),
                json!(id),
            );
        }
    }
    let merges: Vec<String> = tok
        .merges()
        .iter()
        .map(|&(a, b, _)| {
            let ta = encode_token(tok.token_bytes(a).unwrap_or_default(), &table);
            let tb = encode_token(tok.token_bytes(b).unwrap_or_default(), &table);
            format!("{ta} {tb}")
        })
        .collect();
    let added: Vec<Value> = tok
        .specials()
        .iter()
        .map(|(s, id)| {
            json!({"id": id, "content": s, "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": true})
        })
        .collect();
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": tok.split().pattern()}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
        ]},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": true, "vocab": vocab, "merges": merges}
    })
}

/// The first `{"Regex": ...}` pattern inside a pre-tokenizer description.
fn find_regex(v: &Value) -> Option<&str> {
    match v {
        Value::Object(m) => m
            .get("Regex")
            .and_then(Value::as_str)
            .or_else(|| m.values().find_map(find_regex)),
        Value::Array(a) => a.iter().find_map(find_regex),
        _ => None,
    }
}

/// Write `tokenizer.json`.
pub fn write(path: &Path, tok: &Tokenizer) -> Result<()> {
    let text = serde_json::to_string(&to_json(tok))?;
    crate::cli::write_atomic(path, text.as_bytes())
}

/// Read a byte-level BPE `tokenizer.json`. The split is GPT-4's if the file's split regex is
/// GPT-4's, otherwise GPT-2's.
pub fn read(path: &Path) -> Result<Tokenizer> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", path.display()))?;
    let model = doc
        .get("model")
        .with_context(|| format!("{}: no \"model\"", path.display()))?;
    if model
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| t != "BPE")
    {
        bail!("{}: model type is not BPE", path.display());
    }
    let vocab = model
        .get("vocab")
        .and_then(Value::as_object)
        .with_context(|| format!("{}: no model.vocab map", path.display()))?;
    let specials = added_tokens(&doc, path)?;
    let max_id = vocab
        .values()
        .filter_map(Value::as_u64)
        .chain(specials.iter().map(|s| s.1))
        .max();
    let n = super::id_slots(max_id, vocab.len() + specials.len(), path)?;
    // Every id is below n ≤ u32::MAX from here on.
    let specials: Vec<(String, u32)> = specials.into_iter().map(|(s, i)| (s, i as u32)).collect();
    let (slots, by_str) = vocab_slots(vocab, &specials, n, path)?;
    let merges = merge_ids(model, &by_str, path)?;
    // GPT-4's pattern is the one that cuts digits in groups of three.
    let split = match doc.get("pre_tokenizer").and_then(find_regex) {
        Some(re) if re.contains(r"\p{N}{1,3}") => Split::Gpt4,
        _ => Split::Gpt2,
    };
    Tokenizer::new(split, slots, &merges, specials)
        .with_context(|| format!("reading {}", path.display()))
}

/// The `added_tokens` (special tokens) as (text, id); ids are checked by the caller.
fn added_tokens(doc: &Value, path: &Path) -> Result<Vec<(String, u64)>> {
    let mut specials = Vec::new();
    for t in doc
        .get("added_tokens")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(id), Some(s)) = (
            t.get("id").and_then(Value::as_u64),
            t.get("content").and_then(Value::as_str),
        ) else {
            bail!("{}: an added token lacks id or content", path.display());
        };
        specials.push((s.to_string(), id));
    }
    Ok(specials)
}

/// A tokenizer's bytes by id; `None` where an id has no ordinary token.
type Slots = Vec<Option<Vec<u8>>>;

/// Ordinary tokens in `n` id slots (special tokens' ids left empty), and token string → id.
fn vocab_slots<'a>(
    vocab: &'a serde_json::Map<String, Value>,
    specials: &[(String, u32)],
    n: usize,
    path: &Path,
) -> Result<(Slots, FxHashMap<&'a str, u32>)> {
    let inverse: FxHashMap<char, u8> = bytes_to_unicode()
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect();
    let mut slots: Slots = vec![None; n];
    let mut by_str: FxHashMap<&str, u32> = FxHashMap::default();
    for (s, id) in vocab {
        // Below n: `id_slots` saw every integer id.
        let id = id
            .as_u64()
            .with_context(|| format!("{}: token {s:?} has no integer id", path.display()))?
            as u32;
        if specials.iter().any(|x| x.1 == id) {
            continue;
        }
        let bytes = decode_token(s, &inverse)
            .with_context(|| format!("{}: token {s:?} is not byte-level", path.display()))?;
        if slots[id as usize].replace(bytes).is_some() {
            bail!("{}: id {id} is used twice", path.display());
        }
        by_str.insert(s, id);
    }
    Ok((slots, by_str))
}

/// `model.merges` (`"A B"` strings or `[A, B]` pairs) as pairs of ids.
fn merge_ids(model: &Value, by_str: &FxHashMap<&str, u32>, path: &Path) -> Result<Vec<(u32, u32)>> {
    let mut merges = Vec::new();
    for (i, m) in model
        .get("merges")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let (a, b) = match m {
            Value::String(s) => s
                .split_once(' ')
                .with_context(|| format!("{}: merge {i}: expected \"A B\"", path.display()))?,
            Value::Array(v) if v.len() == 2 => (
                v[0].as_str().unwrap_or_default(),
                v[1].as_str().unwrap_or_default(),
            ),
            _ => bail!("{}: merge {i}: expected \"A B\" or [A, B]", path.display()),
        };
        let ia = *by_str
            .get(a)
            .with_context(|| format!("{}: merge {i}: unknown token {a:?}", path.display()))?;
        let ib = *by_str
            .get(b)
            .with_context(|| format!("{}: merge {i}: unknown token {b:?}", path.display()))?;
        merges.push((ia, ib));
    }
    Ok(merges)
}
