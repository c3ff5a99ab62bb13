//! Near-duplicate detection with MinHash and locality-sensitive hashing (Broder 1997;
//! parameters from FineWeb / datatrove's `MinhashConfig`).
//!
//! 1. Shingles: each document becomes the set of its 5-grams: word 5-grams for space-separated
//!    text (lower-cased, punctuation dropped, digits folded to `0`), character 5-grams for Chinese.
//! 2. Signature: for each of `bands × rows` = 112 hash functions `h_i(x) = (a_i·x + b_i) >> 32`
//!    (Dietzfelbinger's multiply-shift, on the 32-bit shingle hash x), keep the minimum over the
//!    shingles. Two documents agree on one signature
//!    entry with probability equal to their Jaccard similarity |A∩B| / |A∪B|.
//! 3. LSH: the signature is cut into 14 bands of 8 rows. Documents that agree on a whole band land
//!    in the same bucket and become candidate pairs. A pair with similarity s is found with
//!    probability 1 − (1 − s⁸)¹⁴: 0.52 at s = 0.69, 0.99 at s = 0.85, 0.001 at s = 0.3.
//! 4. Check: a candidate pair is a duplicate when the estimated Jaccard (share of equal signature
//!    entries) is at least the threshold. Duplicates are joined by union-find into clusters, and
//!    each cluster keeps its earliest document (input order), so the result is deterministic.

use crate::data::lang::Lang;
use crate::data::text::{HashMap64, fmix64, hash64, is_han, is_punct};

/// Shingle size (tokens per shingle).
pub const NGRAM: usize = 5;
/// Bands and rows per band: 112 hash functions.
pub const BANDS: usize = 14;
pub const ROWS: usize = 8;
/// Estimated Jaccard at or above which a candidate pair is a duplicate.
pub const THRESHOLD: f64 = 0.75;
/// Seed of the hash functions.
pub const SEED: u64 = 1;
/// Most earlier members of a bucket a new document is compared with.
pub const MAX_BUCKET_CHECKS: usize = 32;

/// MinHash parameters.
#[derive(Clone, Copy, Debug)]
pub struct MinHashConfig {
    pub ngram: usize,
    pub bands: usize,
    pub rows: usize,
    pub threshold: f64,
}

impl Default for MinHashConfig {
    fn default() -> Self {
        MinHashConfig {
            ngram: NGRAM,
            bands: BANDS,
            rows: ROWS,
            threshold: THRESHOLD,
        }
    }
}

/// Computes signatures with fixed random hash functions.
pub struct MinHasher {
    cfg: MinHashConfig,
    /// The 64-bit multipliers split in 32-bit halves (see [`MinHasher::signature`]).
    a_lo: Vec<u64>,
    a_hi: Vec<u64>,
    b: Vec<u64>,
}

/// SplitMix64: a tiny, well-mixed generator for the hash-function coefficients.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    fmix64(*state)
}

impl MinHasher {
    pub fn new(cfg: MinHashConfig) -> Self {
        let n = cfg.bands * cfg.rows;
        let mut s = SEED;
        let a: Vec<u64> = (0..n).map(|_| splitmix(&mut s) | 1).collect();
        let b = (0..n).map(|_| splitmix(&mut s)).collect();
        let a_lo = a.iter().map(|&x| x & 0xffff_ffff).collect();
        let a_hi = a.iter().map(|&x| x >> 32).collect();
        MinHasher { cfg, a_lo, a_hi, b }
    }

    pub fn config(&self) -> &MinHashConfig {
        &self.cfg
    }

    /// Token hashes of a text: characters for Chinese, simplified words otherwise.
    pub fn tokens(text: &str, lang: Lang) -> Vec<u64> {
        let mut out = Vec::with_capacity(text.len() / 5);
        if lang == Lang::Zh {
            for c in text.chars() {
                if !c.is_whitespace() && !is_punct(c) {
                    out.push(fmix64(c as u64 ^ 0xc4a2));
                }
            }
            return out;
        }
        if text.is_ascii() {
            return Self::ascii_tokens(text.as_bytes(), out);
        }
        let mut word: Vec<u8> = Vec::with_capacity(32);
        let flush = |word: &mut Vec<u8>, out: &mut Vec<u64>| {
            if !word.is_empty() {
                out.push(hash64(word, 0x70c));
                word.clear();
            }
        };
        for c in text.chars() {
            if c.is_ascii_digit() {
                if word.last() != Some(&b'0') {
                    word.push(b'0');
                }
            } else if c.is_ascii_alphabetic() {
                word.push(c.to_ascii_lowercase() as u8);
            } else if c.is_alphanumeric() && !is_han(c) {
                for l in c.to_lowercase() {
                    let mut buf = [0u8; 4];
                    word.extend_from_slice(l.encode_utf8(&mut buf).as_bytes());
                }
            } else if is_han(c) {
                flush(&mut word, &mut out);
                out.push(fmix64(c as u64 ^ 0xc4a2));
            } else {
                flush(&mut word, &mut out);
            }
        }
        flush(&mut word, &mut out);
        out
    }

    /// [`MinHasher::tokens`] for ASCII text: the same words, found byte by byte.
    fn ascii_tokens(b: &[u8], mut out: Vec<u64>) -> Vec<u64> {
        let mut word = [0u8; 64];
        let mut len = 0usize;
        let mut long: Vec<u8> = Vec::new(); // words longer than the buffer (rare)
        let flush = |word: &[u8], long: &mut Vec<u8>, out: &mut Vec<u64>| {
            if !long.is_empty() {
                long.extend_from_slice(word);
                out.push(hash64(long, 0x70c));
                long.clear();
            } else if !word.is_empty() {
                out.push(hash64(word, 0x70c));
            }
        };
        for &c in b {
            let folded = if c.is_ascii_digit() {
                if len > 0 && word[len - 1] == b'0' || len == 0 && long.last() == Some(&b'0') {
                    continue;
                }
                b'0'
            } else if c.is_ascii_alphabetic() {
                c.to_ascii_lowercase()
            } else {
                flush(&word[..len], &mut long, &mut out);
                len = 0;
                continue;
            };
            if len == word.len() {
                long.extend_from_slice(&word);
                len = 0;
            }
            word[len] = folded;
            len += 1;
        }
        flush(&word[..len], &mut long, &mut out);
        out
    }

    /// The MinHash signature of a text (`bands × rows` values).
    pub fn signature(&self, text: &str, lang: Lang) -> Vec<u32> {
        self.signature_of_tokens(&Self::tokens(text, lang))
    }

    /// The signature of a text given its [`MinHasher::tokens`].
    pub fn signature_of_tokens(&self, tokens: &[u64]) -> Vec<u32> {
        let n = self.cfg.ngram;
        let mut sig = vec![u32::MAX; self.b.len()];
        let (a_lo, a_hi, b) = (&self.a_lo[..], &self.a_hi[..], &self.b[..]);
        let mut shingle = |h: u64| {
            // h_i(x) = (a_i·x + b_i) >> 32 over 64 bits, for a 32-bit x. Written with the two
            // 32-bit halves of a_i, every product is 32 × 32 → 64 bits, which the compiler turns
            // into SIMD (`pmuludq`) for all 112 functions at once. Bits 32..63 of a·x + b are
            // ((a_lo·x + b) >> 32) + a_hi·x, modulo 2^32.
            let x = u64::from(h as u32 ^ (h >> 32) as u32);
            min_hashes(&mut sig, a_lo, a_hi, b, x);
        };
        if tokens.is_empty() {
            return sig;
        }
        if tokens.len() < n {
            shingle(shingle_hash(tokens));
            return sig;
        }
        for w in tokens.windows(n) {
            shingle(shingle_hash(w));
        }
        sig
    }

    /// One hash per band: documents that share a band key are candidates.
    pub fn band_keys(&self, sig: &[u32]) -> Vec<u64> {
        sig.chunks(self.cfg.rows)
            .enumerate()
            .map(|(i, band)| hash64(bytemuck::cast_slice(band), i as u64))
            .collect()
    }
}

/// The hash of a shingle (a window of token hashes): each token times a multiplier that depends
/// on its position, summed, then mixed once. Order matters: "a b" and "b a" differ.
fn shingle_hash(tokens: &[u64]) -> u64 {
    const K: [u64; 4] = [
        0x9e37_79b9_7f4a_7c15,
        0xc2b2_ae3d_27d4_eb4f,
        0x1656_67b1_9e37_79f9,
        0xd6e8_feb8_6659_fd93,
    ];
    let mut h = tokens.len() as u64;
    for (i, &t) in tokens.iter().enumerate() {
        h = h.wrapping_add(t.rotate_left(i as u32 * 13).wrapping_mul(K[i % 4]));
    }
    fmix64(h)
}

/// Fold one shingle hash `x` (< 2^32) into the signature: `sig[i] = min(sig[i], h_i(x))`.
#[inline(always)]
fn min_hashes_body(sig: &mut [u32], a_lo: &[u64], a_hi: &[u64], b: &[u64], x: u64) {
    let n = sig.len().min(b.len()).min(a_lo.len()).min(a_hi.len());
    for i in 0..n {
        let lo = (a_lo[i] * x).wrapping_add(b[i]);
        let v = ((lo >> 32) as u32).wrapping_add((a_hi[i] * x) as u32);
        sig[i] = sig[i].min(v);
    }
}

/// The same loop compiled for AVX2 (4 lanes of `vpmuludq`, 8 of `vpminud`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn min_hashes_avx2(sig: &mut [u32], a_lo: &[u64], a_hi: &[u64], b: &[u64], x: u64) {
    min_hashes_body(sig, a_lo, a_hi, b, x);
}

/// The same loop compiled for AVX-512 (8 lanes of `vpmuludq`, 16 of `vpminud`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn min_hashes_avx512(sig: &mut [u32], a_lo: &[u64], a_hi: &[u64], b: &[u64], x: u64) {
    min_hashes_body(sig, a_lo, a_hi, b, x);
}

fn min_hashes(sig: &mut [u32], a_lo: &[u64], a_hi: &[u64], b: &[u64], x: u64) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F (checked just above), the only requirement of
        // `min_hashes_avx512`; the function itself is ordinary safe Rust.
        unsafe { min_hashes_avx512(sig, a_lo, a_hi, b, x) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above), the only requirement of
        // `min_hashes_avx2`; the function itself is ordinary safe Rust.
        unsafe { min_hashes_avx2(sig, a_lo, a_hi, b, x) };
        return;
    }
    min_hashes_body(sig, a_lo, a_hi, b, x);
}

/// Estimated Jaccard similarity: the share of equal signature entries.
pub fn jaccard(a: &[u32], b: &[u32]) -> f64 {
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    same as f64 / a.len().max(1) as f64
}

/// Union-find over document indices; the root of a set is always its smallest index.
pub struct UnionFind {
    parent: Vec<u32>,
}

impl UnionFind {
    pub fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n as u32).collect(),
        }
    }

    pub fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize]; // path halving
            x = p;
        }
        x
    }

    pub fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[hi as usize] = lo;
        }
    }
}

/// The LSH index: documents are added in input order with their signatures.
pub struct Lsh {
    buckets: Vec<HashMap64<Vec<u32>>>,
    sigs: Vec<Vec<u32>>,
    threshold: f64,
    /// Candidate pairs checked, and pairs found similar enough.
    pub candidates: usize,
    pub matches: Vec<(u32, u32, f64)>,
}

impl Lsh {
    pub fn new(cfg: &MinHashConfig) -> Self {
        Lsh {
            buckets: (0..cfg.bands).map(|_| HashMap64::default()).collect(),
            sigs: Vec::new(),
            threshold: cfg.threshold,
            candidates: 0,
            matches: Vec::new(),
        }
    }

    /// Add the next document (its index is the number added before it).
    pub fn add(&mut self, hasher: &MinHasher, sig: Vec<u32>) {
        let me = self.sigs.len() as u32;
        let mut checked: Vec<u32> = Vec::new();
        for (band, key) in hasher.band_keys(&sig).into_iter().enumerate() {
            let bucket = self.buckets[band].entry(key).or_default();
            for &other in bucket.iter().take(MAX_BUCKET_CHECKS) {
                if checked.contains(&other) {
                    continue;
                }
                checked.push(other);
                self.candidates += 1;
                let j = jaccard(&sig, &self.sigs[other as usize]);
                if j >= self.threshold {
                    self.matches.push((other, me, j));
                }
            }
            bucket.push(me);
        }
        self.sigs.push(sig);
    }

    /// Estimated Jaccard similarity of two added documents.
    pub fn similarity(&self, a: usize, b: usize) -> f64 {
        jaccard(&self.sigs[a], &self.sigs[b])
    }

    /// Number of documents added.
    pub fn len(&self) -> usize {
        self.sigs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sigs.is_empty()
    }

    /// The cluster root of every document: itself if unique, else the earliest member.
    pub fn clusters(&self) -> Vec<u32> {
        let mut uf = UnionFind::new(self.sigs.len());
        for &(a, b, _) in &self.matches {
            uf.union(a, b);
        }
        (0..self.sigs.len() as u32).map(|i| uf.find(i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(n: usize, seed: u64) -> Vec<String> {
        let mut s = seed;
        // Letters only: the shingler folds digits, so "w12" and "w34" would be the same word.
        let word = |mut v: u64| {
            let mut w = String::new();
            for _ in 0..4 {
                w.push((b'a' + (v % 26) as u8) as char);
                v /= 26;
            }
            w
        };
        (0..n).map(|_| word(splitmix(&mut s))).collect()
    }

    /// The exact Jaccard similarity of two token lists' 5-gram sets.
    fn true_jaccard(a: &[String], b: &[String]) -> f64 {
        use std::collections::HashSet;
        let sh = |v: &[String]| v.windows(5).map(|w| w.join(" ")).collect::<HashSet<_>>();
        let (x, y) = (sh(a), sh(b));
        x.intersection(&y).count() as f64 / x.union(&y).count() as f64
    }

    #[test]
    fn estimate_tracks_true_jaccard() {
        let h = MinHasher::new(MinHashConfig::default());
        let base = words(400, 7);
        for changes in [0usize, 5, 20, 60, 150] {
            let mut other = base.clone();
            let mut s = 99 + changes as u64;
            for _ in 0..changes {
                let i = (splitmix(&mut s) % 400) as usize;
                other[i] = format!("zz{}", words(1, splitmix(&mut s))[0]);
            }
            let (a, b) = (base.join(" "), other.join(" "));
            let est = jaccard(&h.signature(&a, Lang::En), &h.signature(&b, Lang::En));
            let truth = true_jaccard(&base, &other);
            // 112 hashes: standard error sqrt(J(1-J)/112) <= 0.048; allow 3 of them.
            assert!(
                (est - truth).abs() < 0.15,
                "changes {changes}: est {est} true {truth}"
            );
        }
    }

    #[test]
    fn ascii_fast_path_matches_general_path() {
        let long = "x".repeat(150);
        for t in [
            "The Year 1999, the END!",
            "a1b22c333 d",
            "",
            "  ..  ",
            long.as_str(),
            "9 99 x9y",
        ] {
            // Appending a non-ASCII space forces the general path; it adds no token.
            let general = MinHasher::tokens(&format!("{t}\u{a0}"), Lang::En);
            assert_eq!(MinHasher::tokens(t, Lang::En), general, "{t:?}");
        }
    }

    #[test]
    fn tokens_simplify_words_and_split_chinese() {
        let a = MinHasher::tokens("The Year 1999, the END!", Lang::En);
        let b = MinHasher::tokens("the year 2024 the end", Lang::En);
        assert_eq!(a, b);
        assert_eq!(MinHasher::tokens("学而，时习", Lang::Zh).len(), 4);
    }

    #[test]
    fn lsh_clusters_near_duplicates_only() {
        let cfg = MinHashConfig::default();
        let h = MinHasher::new(cfg);
        let base = words(300, 1);
        let mut near = base.clone();
        near[10] = "changed".into();
        near[200] = "edited".into();
        let other = words(300, 2);
        let docs = [
            base.join(" "),
            other.join(" "),
            near.join(" "),
            base.join(" "),
        ];
        let mut lsh = Lsh::new(&cfg);
        for d in &docs {
            lsh.add(&h, h.signature(d, Lang::En));
        }
        assert_eq!(lsh.clusters(), vec![0, 1, 0, 0]);
    }

    #[test]
    fn union_find_root_is_smallest() {
        let mut uf = UnionFind::new(6);
        uf.union(5, 3);
        uf.union(3, 4);
        uf.union(4, 1);
        assert_eq!(
            (0..6).map(|i| uf.find(i)).collect::<Vec<_>>(),
            vec![0, 1, 2, 1, 1, 1]
        );
    }
}
