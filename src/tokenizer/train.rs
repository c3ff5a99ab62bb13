//! Training: learn merges from text.
//!
//! 1. Split the text on special tokens, pre-tokenize each part and count distinct pre-tokens
//!    (in parallel, on chunks cut where pre-tokenization is unaffected).
//! 2. Each distinct pre-token becomes a "word": a list of byte tokens with a count.
//! 3. Count every neighbouring pair, weighted by word count. Repeatedly merge the most frequent
//!    pair (ties: the lexicographically greatest pair of byte strings, left token first) into a
//!    new token. Only the words that contain the pair change, and only the pairs next to each
//!    merge site change count, so we update those counts in place. A max-heap holds candidate
//!    pairs; an entry whose count went stale is re-pushed with its current count when popped.
//!
//! Memory is bounded by the number of distinct pre-tokens, not by the size of the text. One
//! pre-token longer than [`MAX_PRETOKEN_BYTES`] (a 50 MB "word" of one letter repeated, a
//! minified file, a run of spaces) is counted as pieces of at most that many bytes, cut at
//! character boundaries, as production trainers bound their words: so a learned token is never
//! longer than the bound, and a corpus of one endless word costs a few distinct pieces, not one
//! word as long as the corpus with merges of every power of two of its length. Encoding does not
//! cut (its ids stay those of tiktoken); it only never finds a merge across a cut.
//! The text itself is counted in blocks cut where the split cannot change ([`StreamCounter`]):
//! a stretch with no such cut point (one line of no spaces) is held whole while it is counted,
//! so it costs its own size once, never a multiple of it.

use super::{Split, Tokenizer};
use anyhow::{Result, bail};
use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::rc::Rc;

/// What to train.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Total vocabulary: 256 bytes + special tokens + merges.
    pub vocab_size: usize,
    /// Special tokens; they never merge and the text is split on them.
    pub specials: Vec<String>,
    /// The split pattern.
    pub split: Split,
    /// Show a progress bar over merges.
    pub progress: bool,
}

impl TrainOptions {
    /// Refuse a vocabulary that cannot hold the bytes and special tokens, or that token ids (u32)
    /// cannot address, and special tokens that are empty or repeated (one token, two ids).
    pub fn validate(&self) -> Result<()> {
        let mut seen = FxHashSet::default();
        for s in &self.specials {
            if s.is_empty() {
                bail!("a special token is empty");
            }
            if !seen.insert(s.as_str()) {
                bail!("special token {s:?} is given twice; each special token gets one id");
            }
        }
        let base = 256 + self.specials.len();
        if self.vocab_size < base {
            bail!(
                "vocab size {} is below 256 bytes + {} special tokens = {base}",
                self.vocab_size,
                self.specials.len()
            );
        }
        check_vocab_size(self.vocab_size).map_err(anyhow::Error::msg)?;
        Ok(())
    }
}

/// A vocabulary size that u32 token ids can address (at most [`MAX_VOCAB_SIZE`]). The message
/// is for a command-line flag's parser.
pub fn check_vocab_size(n: usize) -> std::result::Result<usize, String> {
    if n > MAX_VOCAB_SIZE {
        return Err(format!(
            "{n} is above {MAX_VOCAB_SIZE}, the largest vocabulary u32 token ids can address"
        ));
    }
    Ok(n)
}

/// The largest vocabulary: token ids are u32, and shards record the vocabulary size as a u32.
pub const MAX_VOCAB_SIZE: usize = u32::MAX as usize;

/// Distinct pre-tokens and how often each occurs.
pub type Counts = FxHashMap<String, u64>;

/// The longest pre-token training counts whole, in bytes; longer ones are counted in pieces of
/// at most this many bytes (see the module docs). No pre-token of the bundled corpus is close.
pub const MAX_PRETOKEN_BYTES: usize = 256;

/// `piece` cut into parts of at most [`MAX_PRETOKEN_BYTES`] bytes at character boundaries
/// (just `piece` when it is short enough).
pub fn bounded_pieces(piece: &str) -> impl Iterator<Item = &str> {
    let mut rest = piece;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut cut = rest.len().min(MAX_PRETOKEN_BYTES);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        rest = tail;
        Some(head)
    })
}

/// Count the pre-tokens of `text` in parallel, skipping special-token strings.
pub fn count_pretokens(text: &str, split: Split, specials: &[String]) -> Counts {
    // Parts between special tokens, then chunks of about 256 KB at safe cut points.
    let mut chunks = Vec::new();
    for part in split_on_specials(text, specials) {
        let mut rest = part;
        while rest.len() > 1 << 18 {
            match super::pretokenize::safe_cut(rest, 1 << 18) {
                Some(c) => {
                    chunks.push(&rest[..c]);
                    rest = &rest[c..];
                }
                None => break,
            }
        }
        chunks.push(rest);
    }
    chunks
        .par_iter()
        .fold(FxHashMap::<&str, u64>::default, |mut m, chunk| {
            for piece in split.pieces(chunk).flat_map(bounded_pieces) {
                *m.entry(piece).or_default() += 1;
            }
            m
        })
        .map(|m| {
            m.into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect::<Counts>()
        })
        .reduce(Counts::default, |mut a, b| {
            let (mut big, small) = if a.len() >= b.len() {
                (a, b)
            } else {
                (b, std::mem::take(&mut a))
            };
            for (k, v) in small {
                *big.entry(k).or_default() += v;
            }
            big
        })
}

/// Counts pre-tokens of text that arrives in pieces (file blocks, documents), holding at most
/// about [`StreamCounter::FLUSH`] bytes of text at a time: whenever that much is pending, it is
/// cut at the last place where cutting cannot change the split, and the head is counted.
pub struct StreamCounter {
    split: Split,
    specials: Vec<String>,
    pending: String,
    counts: Counts,
}

impl StreamCounter {
    /// Pending text above this size is counted.
    pub const FLUSH: usize = 8 << 20;

    pub fn new(split: Split, specials: &[String]) -> StreamCounter {
        StreamCounter {
            split,
            specials: specials.to_vec(),
            pending: String::new(),
            counts: Counts::default(),
        }
    }

    /// Append text (the pieces are joined as they come).
    pub fn push(&mut self, text: &str) {
        self.pending.push_str(text);
        if self.pending.len() >= Self::FLUSH {
            let target = self.pending.len() - Self::FLUSH / 4;
            if let Some(cut) = super::pretokenize::safe_cut(&self.pending, target) {
                self.count(cut);
            }
        }
    }

    fn count(&mut self, upto: usize) {
        let part = count_pretokens(&self.pending[..upto], self.split, &self.specials);
        merge_counts(&mut self.counts, part);
        self.pending.drain(..upto);
    }

    /// Count what is pending and return all counts.
    pub fn finish(mut self) -> Counts {
        self.count(self.pending.len());
        self.counts
    }
}

/// Add the counts of `b` to `a`.
pub fn merge_counts(a: &mut Counts, b: Counts) {
    if a.is_empty() {
        *a = b;
        return;
    }
    for (k, v) in b {
        *a.entry(k).or_default() += v;
    }
}

/// The parts of `text` between occurrences of any special token.
pub fn split_on_specials<'a>(text: &'a str, specials: &[String]) -> Vec<&'a str> {
    let mut parts = vec![text];
    for s in specials.iter().filter(|s| !s.is_empty()) {
        parts = parts
            .into_iter()
            .flat_map(|p| p.split(s.as_str()))
            .collect();
    }
    parts.retain(|p| !p.is_empty());
    parts
}

/// A candidate merge in the heap: ordered by count, then by the two tokens' bytes.
struct Cand {
    count: u64,
    left: Rc<[u8]>,
    right: Rc<[u8]>,
    pair: (u32, u32),
}

impl Ord for Cand {
    fn cmp(&self, o: &Self) -> Ordering {
        self.count
            .cmp(&o.count)
            .then_with(|| self.left.cmp(&o.left))
            .then_with(|| self.right.cmp(&o.right))
    }
}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl PartialEq for Cand {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Cand {}

/// Add word `w` to a pair's word list unless it was just added (words come in increasing order).
#[inline]
fn push_unique(list: &mut Vec<u32>, w: u32) {
    if list.last() != Some(&w) {
        list.push(w);
    }
}

/// Train on `text`.
pub fn train(text: &str, opts: &TrainOptions) -> Result<Tokenizer> {
    let counts = count_pretokens(text, opts.split, &opts.specials);
    train_from_counts(&counts, opts)
}

/// Train from pre-token counts (see [`count_pretokens`]); returns the tokenizer with ids
/// 0..256 = bytes, then one id per merge, then the special tokens.
pub fn train_from_counts(counts: &Counts, opts: &TrainOptions) -> Result<Tokenizer> {
    opts.validate()?;
    let base = 256 + opts.specials.len();
    if counts.is_empty() {
        bail!("the training text is empty");
    }
    // Each merge shortens some word by one symbol, so the words bound the merges: memory is
    // reserved for what the text can give, not for what was asked.
    let possible: usize = counts.keys().map(|w| w.len().saturating_sub(1)).sum();
    let want = (opts.vocab_size - base).min(possible);
    // Words in a fixed order (sorted) so that training is deterministic.
    let mut entries: Vec<(&String, &u64)> = counts.iter().collect();
    entries.sort_unstable();
    // All words in one buffer: word w is syms[start[w]..start[w] + len[w]]. Merges only shrink
    // words, so each is rewritten in place and the buffer never moves.
    let mut syms: Vec<u32> = Vec::with_capacity(entries.iter().map(|(w, _)| w.len()).sum());
    let mut start: Vec<usize> = Vec::with_capacity(entries.len());
    let mut len: Vec<u32> = Vec::with_capacity(entries.len());
    for (w, _) in &entries {
        start.push(syms.len());
        len.push(w.len() as u32);
        syms.extend(w.bytes().map(u32::from));
    }
    let freq: Vec<u64> = entries.iter().map(|&(_, &c)| c).collect();
    drop(entries);

    let mut vocab: Vec<Rc<[u8]>> = (0..=255u8).map(|b| Rc::from(&[b][..])).collect();
    let mut pair_count: FxHashMap<(u32, u32), i64> = FxHashMap::default();
    let mut where_: FxHashMap<(u32, u32), Vec<u32>> = FxHashMap::default();
    for w in 0..start.len() {
        for p in syms[start[w]..start[w] + len[w] as usize].windows(2) {
            let key = (p[0], p[1]);
            *pair_count.entry(key).or_default() += freq[w] as i64;
            let list = where_.entry(key).or_default();
            if list.last() != Some(&(w as u32)) {
                list.push(w as u32);
            }
        }
    }
    let cand = |vocab: &[Rc<[u8]>], pair: (u32, u32), count: i64| Cand {
        count: count as u64,
        left: vocab[pair.0 as usize].clone(),
        right: vocab[pair.1 as usize].clone(),
        pair,
    };
    let mut heap: BinaryHeap<Cand> = pair_count
        .iter()
        .map(|(&p, &c)| cand(&vocab, p, c))
        .collect();

    let bar = crate::cli::progress(want as u64, "merges");
    if !opts.progress {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut merges: Vec<(u32, u32)> = Vec::with_capacity(want);
    let mut touched: FxHashSet<(u32, u32)> = FxHashSet::default();
    while merges.len() < want {
        let Some(top) = heap.pop() else { break };
        let current = pair_count.get(&top.pair).copied().unwrap_or(0);
        if current <= 0 {
            continue;
        }
        if current as u64 != top.count {
            heap.push(cand(&vocab, top.pair, current));
            continue;
        }
        let (a, b) = top.pair;
        let new = vocab.len() as u32;
        vocab.push(
            [&vocab[a as usize][..], &vocab[b as usize][..]]
                .concat()
                .into(),
        );
        merges.push((a, b));
        touched.clear();
        // The words that contained the pair when it was counted, sorted and unique (each list is
        // built in word order); some may have lost the pair since (stale) and are skipped.
        let list = where_.remove(&top.pair).unwrap_or_default();
        for &w in &list {
            let word = &mut syms[start[w as usize]..start[w as usize] + len[w as usize] as usize];
            let f = freq[w as usize] as i64;
            let Some(first) = word.windows(2).position(|p| p[0] == a && p[1] == b) else {
                continue;
            };
            // Rewrite in place: `out` (written so far) never overtakes `i` (read position).
            let n = word.len();
            let (mut out, mut i) = (first, first);
            while i < n {
                if i + 1 < n && word[i] == a && word[i + 1] == b {
                    if out > 0 {
                        let x = word[out - 1];
                        *pair_count.entry((x, a)).or_default() -= f;
                        *pair_count.entry((x, new)).or_default() += f;
                        touched.insert((x, new));
                        push_unique(where_.entry((x, new)).or_default(), w);
                    }
                    *pair_count.entry((a, b)).or_default() -= f;
                    if i + 2 < n {
                        let y = word[i + 2];
                        *pair_count.entry((b, y)).or_default() -= f;
                        *pair_count.entry((new, y)).or_default() += f;
                        touched.insert((new, y));
                        push_unique(where_.entry((new, y)).or_default(), w);
                    }
                    word[out] = new;
                    i += 2;
                } else {
                    word[out] = word[i];
                    i += 1;
                }
                out += 1;
            }
            len[w as usize] = out as u32;
        }
        for &p in &touched {
            let c = pair_count.get(&p).copied().unwrap_or(0);
            if c > 0 {
                heap.push(cand(&vocab, p, c));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if merges.len() < opts.vocab_size - base {
        crate::info!(
            "warning: the text only supports {} merges; the vocabulary has {} tokens instead of {}",
            merges.len(),
            base + merges.len(),
            opts.vocab_size
        );
    }
    let mut slots: Vec<Option<Vec<u8>>> = vocab.iter().map(|v| Some(v.to_vec())).collect();
    let mut specials = Vec::new();
    for s in &opts.specials {
        specials.push((s.clone(), slots.len() as u32));
        slots.push(None);
    }
    Tokenizer::new(opts.split, slots, &merges, specials)
}
