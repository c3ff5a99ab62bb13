//! Stage 2, tokenizer: byte-level BPE, GPT-2 and GPT-4 split patterns, file formats.
//!
//! A language model reads integers, not text. Byte-level BPE turns text into integers in three
//! steps: the text is cut into pre-tokens ([`pretokenize`]), each pre-token becomes its UTF-8
//! bytes (256 base tokens, so nothing is ever unknown), and learned merges join frequent
//! neighbouring tokens into longer ones ([`train`]). Encoding replays the merges in the order they
//! were learned ([`encode`]). [`formats`] reads and writes the files GPT-2, tiktoken and HF use.

pub mod corpus;
pub mod encode;
pub mod formats;
pub mod pretokenize;
pub mod train;
mod unicode_tables;

pub use encode::{Specials, StreamDecoder};
pub use pretokenize::Split;
pub use train::{TrainOptions, train};

use anyhow::{Context, Result, bail};
use rustc_hash::FxHashMap;

/// The name of the end-of-text special token GPT-2 uses between documents.
pub const ENDOFTEXT: &str = "<|endoftext|>";

/// A byte-level BPE tokenizer: a vocabulary of byte strings, the ordered merges that build it,
/// special tokens and the split pattern.
#[derive(Clone, Debug)]
pub struct Tokenizer {
    split: Split,
    /// id → bytes. Special tokens hold their UTF-8 text here too.
    vocab: Vec<Vec<u8>>,
    /// Merges in priority order: `merges[r] = (left, right, merged)`.
    merges: Vec<(u32, u32, u32)>,
    /// `(left << 32 | right)` → `(rank, merged id)`.
    pair_rank: FxHashMap<u64, (u32, u32)>,
    /// The token of each single byte.
    byte_id: [u32; 256],
    /// Ordinary token bytes → id.
    ids: FxHashMap<Vec<u8>, u32>,
    /// Special tokens as (text, id), in id order.
    specials: Vec<(String, u32)>,
}

#[inline(always)]
pub(crate) fn pair_key(a: u32, b: u32) -> u64 {
    ((a as u64) << 32) | b as u64
}

impl Tokenizer {
    /// Build from a vocabulary (`vocab[id]` = bytes, `None` for ids used by special tokens),
    /// merges as (left id, right id) in priority order, and special tokens.
    pub fn new(
        split: Split,
        vocab: Vec<Option<Vec<u8>>>,
        merges: &[(u32, u32)],
        specials: Vec<(String, u32)>,
    ) -> Result<Tokenizer> {
        let mut ids = FxHashMap::default();
        let mut byte_id = [u32::MAX; 256];
        for (id, bytes) in vocab.iter().enumerate() {
            if let Some(bytes) = bytes {
                if bytes.len() == 1 {
                    byte_id[bytes[0] as usize] = id as u32;
                }
                if ids.insert(bytes.clone(), id as u32).is_some() {
                    bail!(
                        "token {id} ({:?}) appears twice",
                        String::from_utf8_lossy(bytes)
                    );
                }
            }
        }
        if let Some(b) = byte_id.iter().position(|&i| i == u32::MAX) {
            bail!("the vocabulary has no token for byte 0x{b:02X}");
        }
        let mut vocab_full: Vec<Vec<u8>> =
            vocab.into_iter().map(Option::unwrap_or_default).collect();
        place_specials(&mut vocab_full, &specials)?;
        let mut pair_rank = FxHashMap::default();
        let mut full = Vec::with_capacity(merges.len());
        for (rank, &(a, b)) in merges.iter().enumerate() {
            let (Some(x), Some(y)) = (vocab_full.get(a as usize), vocab_full.get(b as usize))
            else {
                bail!("merge {rank} refers to token {a} or {b}, beyond the vocabulary");
            };
            let joined = [x.as_slice(), y.as_slice()].concat();
            let Some(&m) = ids.get(&joined) else {
                bail!("merge {rank} ({a} {b}) makes a token that is not in the vocabulary");
            };
            pair_rank.entry(pair_key(a, b)).or_insert((rank as u32, m));
            full.push((a, b, m));
        }
        let mut specials = specials;
        specials.sort_by_key(|s| s.1);
        Ok(Tokenizer {
            split,
            vocab: vocab_full,
            merges: full,
            pair_rank,
            byte_id,
            ids,
            specials,
        })
    }

    /// Build from tiktoken-style ranks (`vocab[rank]` = bytes, dense), recovering the merges: each
    /// multi-byte token is the merge of the two tokens that BPE with lower ranks leaves.
    pub fn from_ranks(
        split: Split,
        vocab: Vec<Vec<u8>>,
        specials: Vec<(String, u32)>,
    ) -> Result<Tokenizer> {
        let n = vocab
            .len()
            .max(specials.iter().map(|s| s.1 as usize + 1).max().unwrap_or(0));
        let mut slots: Vec<Option<Vec<u8>>> = vec![None; n];
        for (i, v) in vocab.into_iter().enumerate() {
            slots[i] = Some(v);
        }
        // Start with no merges, then add each token's merge in rank order.
        let mut t = Tokenizer::new(split, slots.clone(), &[], specials)?;
        let mut parts = Vec::new();
        for (id, bytes) in slots.iter().enumerate() {
            let Some(bytes) = bytes else { continue };
            if bytes.len() < 2 {
                continue;
            }
            parts.clear();
            t.bpe(bytes, &mut parts);
            if parts.len() != 2 {
                bail!("token {id} cannot be built by merging two earlier tokens");
            }
            let rank = t.merges.len() as u32;
            t.pair_rank
                .entry(pair_key(parts[0], parts[1]))
                .or_insert((rank, id as u32));
            t.merges.push((parts[0], parts[1], id as u32));
        }
        Ok(t)
    }

    /// The split pattern.
    pub fn split(&self) -> Split {
        self.split
    }

    /// Use another split pattern (for rank files, which do not say which one they need).
    pub fn with_split(mut self, split: Split) -> Tokenizer {
        self.split = split;
        self
    }

    /// Number of ids, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// Bytes of token `id` (the text of a special token).
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.vocab.get(id as usize).map(Vec::as_slice)
    }

    /// Merges in priority order as (left, right, merged).
    pub fn merges(&self) -> &[(u32, u32, u32)] {
        &self.merges
    }

    /// Special tokens as (text, id).
    pub fn specials(&self) -> &[(String, u32)] {
        &self.specials
    }

    /// The id of special token `text`.
    pub fn special_id(&self, text: &str) -> Option<u32> {
        self.specials.iter().find(|s| s.0 == text).map(|s| s.1)
    }

    /// The id of the ordinary token with these bytes.
    pub fn id_of(&self, bytes: &[u8]) -> Option<u32> {
        self.ids.get(bytes).copied()
    }

    /// Is `id` a special token?
    pub fn is_special(&self, id: u32) -> bool {
        self.specials.iter().any(|s| s.1 == id)
    }

    /// Add a special token at the end of the vocabulary if it is missing; return its id.
    pub fn ensure_special(&mut self, text: &str) -> u32 {
        if let Some(id) = self.special_id(text) {
            return id;
        }
        let id = self.vocab.len() as u32;
        self.vocab.push(text.as_bytes().to_vec());
        self.specials.push((text.to_string(), id));
        id
    }

    /// The byte-token id of byte `b`.
    pub fn byte_id(&self, b: u8) -> u32 {
        self.byte_id[b as usize]
    }
}

/// Writes each special token's text into its id's slot of `vocab`, which must be free.
fn place_specials(vocab: &mut [Vec<u8>], specials: &[(String, u32)]) -> Result<()> {
    for (text, id) in specials {
        // An empty special would match everywhere: encoding would never move past it.
        if text.is_empty() {
            bail!("special token {id} is empty");
        }
        let slot = vocab
            .get_mut(*id as usize)
            .with_context(|| format!("special token {text:?} has id {id} beyond the vocabulary"))?;
        if !slot.is_empty() {
            bail!("special token {text:?} has id {id}, already used by an ordinary token");
        }
        *slot = text.as_bytes().to_vec();
    }
    Ok(())
}
