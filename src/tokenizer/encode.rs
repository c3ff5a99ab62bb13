//! Encoding and decoding. Each pre-token is encoded on its own: start from its bytes and apply
//! the merge with the lowest rank among neighbouring pairs until no pair has a merge. Pre-tokens
//! that are a whole token are looked up directly, and repeated pre-tokens are copied from where
//! they were first encoded (a per-call cache), so common words cost one hash lookup.

use super::{Tokenizer, pair_key};
use anyhow::{Result, bail};
use rayon::prelude::*;
use rustc_hash::FxHashMap;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Read;

/// What to do with special-token strings found in the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Specials {
    /// Encode them as their special token ids.
    Allow,
    /// Return an error naming the special token and its byte offset.
    Refuse,
    /// Encode them as ordinary text.
    AsText,
}

/// Pieces longer than this many bytes use the heap-based merge, O(n log n) instead of O(n²).
const LONG_PIECE: usize = 48;

impl Tokenizer {
    #[inline(always)]
    fn rank(&self, a: u32, b: u32) -> (u32, u32) {
        self.pair_rank
            .get(&pair_key(a, b))
            .copied()
            .unwrap_or((u32::MAX, 0))
    }

    /// Apply the merges to `bytes` (no whole-token shortcut) and append the ids to `out`.
    pub fn bpe(&self, bytes: &[u8], out: &mut Vec<u32>) {
        if bytes.len() > LONG_PIECE {
            return self.bpe_heap(bytes, out);
        }
        // parts[i] = (id, rank of the pair parts[i], parts[i + 1], merged id), on the stack.
        let mut buf = [(0u32, u32::MAX, 0u32); LONG_PIECE];
        let parts = &mut buf[..bytes.len()];
        for (p, &b) in parts.iter_mut().zip(bytes) {
            p.0 = self.byte_id[b as usize];
        }
        for i in 0..parts.len().saturating_sub(1) {
            let (r, m) = self.rank(parts[i].0, parts[i + 1].0);
            parts[i].1 = r;
            parts[i].2 = m;
        }
        let mut n = parts.len();
        loop {
            let mut best = (u32::MAX, 0);
            for (i, p) in parts[..n].iter().enumerate() {
                if p.1 < best.0 {
                    best = (p.1, i);
                }
            }
            if best.0 == u32::MAX {
                break;
            }
            // Merge parts i and i + 1, then refresh the two pairs that changed.
            let i = best.1;
            parts[i].0 = parts[i].2;
            parts.copy_within(i + 2..n, i + 1);
            n -= 1;
            if i + 1 < n {
                let (r, m) = self.rank(parts[i].0, parts[i + 1].0);
                parts[i].1 = r;
                parts[i].2 = m;
            } else {
                parts[i].1 = u32::MAX;
            }
            if i > 0 {
                let (r, m) = self.rank(parts[i - 1].0, parts[i].0);
                parts[i - 1].1 = r;
                parts[i - 1].2 = m;
            }
        }
        out.extend(parts[..n].iter().map(|p| p.0));
    }

    /// The same merges for long pieces: a linked list of parts and a min-heap of (rank, position),
    /// checking each popped pair is still current (lazy invalidation).
    fn bpe_heap(&self, bytes: &[u8], out: &mut Vec<u32>) {
        const NONE: u32 = u32::MAX;
        let n = bytes.len();
        let mut id: Vec<u32> = bytes.iter().map(|&b| self.byte_id[b as usize]).collect();
        let mut next: Vec<u32> = (1..=n as u32).collect();
        next[n - 1] = NONE;
        let mut prev: Vec<u32> = (0..n as u32).map(|i| i.wrapping_sub(1)).collect();
        let mut alive = vec![true; n];
        let mut heap = BinaryHeap::with_capacity(n);
        for i in 0..n - 1 {
            let (r, _) = self.rank(id[i], id[i + 1]);
            if r != u32::MAX {
                heap.push(Reverse((r, i as u32)));
            }
        }
        while let Some(Reverse((r, i))) = heap.pop() {
            let i = i as usize;
            if !alive[i] || next[i] == NONE {
                continue;
            }
            let j = next[i] as usize;
            let (cur, merged) = self.rank(id[i], id[j]);
            if cur != r {
                continue;
            }
            id[i] = merged;
            alive[j] = false;
            next[i] = next[j];
            if next[j] != NONE {
                prev[next[j] as usize] = i as u32;
                let (r2, _) = self.rank(merged, id[next[j] as usize]);
                if r2 != u32::MAX {
                    heap.push(Reverse((r2, i as u32)));
                }
            }
            if prev[i] != NONE {
                let p = prev[i];
                let (r0, _) = self.rank(id[p as usize], merged);
                if r0 != u32::MAX {
                    heap.push(Reverse((r0, p)));
                }
            }
        }
        let mut i = 0;
        while i != NONE as usize {
            out.push(id[i]);
            i = next[i] as usize;
        }
    }

    /// Encode text without special tokens (special-token strings are ordinary text).
    pub fn encode_ordinary(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 8);
        self.encode_ordinary_into(text, &mut out);
        out
    }

    /// [`Tokenizer::encode_ordinary`], appending to `out`.
    pub fn encode_ordinary_into(&self, text: &str, out: &mut Vec<u32>) {
        // Cache: piece → the range of `out` where it was first encoded.
        let mut cache: FxHashMap<&str, (u32, u32)> =
            FxHashMap::with_capacity_and_hasher((text.len() / 16).min(1 << 16), Default::default());
        for piece in self.split.pieces(text) {
            let b = piece.as_bytes();
            if b.len() == 1 {
                out.push(self.byte_id[b[0] as usize]);
                continue;
            }
            if let Some(&(start, len)) = cache.get(piece) {
                out.extend_from_within(start as usize..(start + len) as usize);
                continue;
            }
            let start = out.len();
            match self.ids.get(b) {
                Some(&id) => out.push(id),
                None => self.bpe(b, out),
            }
            if start < u32::MAX as usize {
                cache.insert(piece, (start as u32, (out.len() - start) as u32));
            }
        }
    }

    /// Encode text, treating special-token strings as `specials` says.
    pub fn encode(&self, text: &str, specials: Specials) -> Result<Vec<u32>> {
        if specials == Specials::AsText || self.specials.is_empty() {
            return Ok(self.encode_ordinary(text));
        }
        let mut out = Vec::with_capacity(text.len() / 3 + 8);
        let mut pos = 0;
        while let Some((at, text_s, id)) = self.find_special(text, pos) {
            if specials == Specials::Refuse {
                bail!("special token {text_s} at byte {at} is not allowed here");
            }
            self.encode_ordinary_into(&text[pos..at], &mut out);
            out.push(id);
            pos = at + text_s.len();
        }
        self.encode_ordinary_into(&text[pos..], &mut out);
        Ok(out)
    }

    /// The earliest special token in `text[from..]`: (offset, text, id).
    fn find_special(&self, text: &str, from: usize) -> Option<(usize, &str, u32)> {
        let mut best: Option<(usize, &str, u32)> = None;
        for (s, id) in &self.specials {
            if let Some(k) = memchr::memmem::find(&text.as_bytes()[from..], s.as_bytes()) {
                let at = from + k;
                // Earliest wins; at the same place the longer special wins.
                if best.is_none_or(|b| at < b.0 || (at == b.0 && s.len() > b.1.len())) {
                    best = Some((at, s.as_str(), *id));
                }
            }
        }
        best
    }

    /// Encode many texts in parallel (ordinary text).
    pub fn encode_batch(&self, texts: &[&str]) -> Vec<Vec<u32>> {
        texts.par_iter().map(|t| self.encode_ordinary(t)).collect()
    }

    /// Encode a stream larger than memory: read blocks, cut each at a place where pre-tokenization
    /// is unaffected ([`super::pretokenize::safe_cut`]) and hand the ids of each part to `sink`.
    /// Returns the number of bytes read. Invalid UTF-8 is an error naming the byte offset.
    pub fn encode_stream<R: Read>(
        &self,
        mut reader: R,
        specials: Specials,
        mut sink: impl FnMut(&[u32]),
    ) -> Result<u64> {
        const BLOCK: usize = 1 << 20;
        let mut raw = vec![0u8; BLOCK + 4];
        let mut carry = 0; // bytes of a char cut by the previous block's end
        let mut text = String::new(); // validated text not yet encoded
        let mut done = 0u64; // bytes encoded so far
        loop {
            let n = read_full(&mut reader, &mut raw[carry..carry + BLOCK])?;
            let end = carry + n;
            let eof = n == 0;
            let valid = match std::str::from_utf8(&raw[..end]) {
                Ok(s) => s,
                Err(e) if e.error_len().is_none() && !eof => {
                    std::str::from_utf8(&raw[..e.valid_up_to()]).expect("checked")
                }
                Err(e) => bail!(
                    "invalid UTF-8 at byte {}",
                    done + (text.len() + e.valid_up_to()) as u64
                ),
            };
            text.push_str(valid);
            let used = valid.len();
            raw.copy_within(used..end, 0);
            carry = end - used;
            // Encode up to the last safe cut, keeping a short tail for the next block.
            let cut = if eof {
                Some(text.len())
            } else {
                super::pretokenize::safe_cut(&text, text.len().saturating_sub(64 << 10))
            };
            if let Some(cut) = cut {
                sink(&self.encode(&text[..cut], specials)?);
                done += cut as u64;
                text.drain(..cut);
            }
            if eof {
                return Ok(done);
            }
        }
    }

    /// Decode ids to bytes; an unknown id is an error.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for (i, &id) in ids.iter().enumerate() {
            match self.vocab.get(id as usize) {
                Some(b) if !b.is_empty() => out.extend_from_slice(b),
                _ => bail!("token id {id} at position {i} is not in the vocabulary"),
            }
        }
        Ok(out)
    }

    /// Decode ids to text, replacing invalid UTF-8 (a token can hold part of a char) with U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.decode_bytes(ids)?).into_owned())
    }
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

/// Decodes ids to text as they arrive (for streaming samples): a token may end in the middle of
/// a UTF-8 char, so its bytes are held back until the char is complete.
#[derive(Default, Debug)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    pub fn new() -> StreamDecoder {
        StreamDecoder::default()
    }

    /// Add one id; return the text that is now complete (often all of it, sometimes nothing).
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> Result<String> {
        match tok.token_bytes(id) {
            Some(b) if !b.is_empty() => self.pending.extend_from_slice(b),
            _ => bail!("token id {id} is not in the vocabulary"),
        }
        let mut text = String::new();
        let mut used = 0;
        for chunk in self.pending.utf8_chunks() {
            text.push_str(chunk.valid());
            used += chunk.valid().len();
            let bad = chunk.invalid();
            if bad.is_empty() {
                continue;
            }
            let incomplete = std::str::from_utf8(bad)
                .err()
                .is_some_and(|e| e.error_len().is_none());
            if incomplete && used + bad.len() == self.pending.len() {
                break; // wait for the rest of this char
            }
            text.push('\u{FFFD}');
            used += bad.len();
        }
        self.pending.drain(..used);
        Ok(text)
    }

    /// The held-back bytes, if any, as replacement characters.
    pub fn finish(self) -> String {
        String::from_utf8_lossy(&self.pending).into_owned()
    }
}
