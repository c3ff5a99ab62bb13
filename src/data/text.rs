//! Small text helpers shared by the cleaning steps: words, punctuation, character classes, hashing.
//!
//! The quality rules count "words" the way C4 and `str.split()` in Python do: runs of characters
//! between whitespace. Keeping one definition everywhere is what lets our verdicts match datatrove's
//! when datatrove is given the same splitter (see `benches/compare/clean_datatrove.py`).

/// Words: maximal runs of non-whitespace characters (ASCII text takes a faster splitter).
pub fn words(text: &str) -> Words<'_> {
    if text.is_ascii() {
        Words::Ascii(text.split_ascii_whitespace())
    } else {
        Words::Unicode(text.split_whitespace())
    }
}

/// The iterator returned by [`words`].
pub enum Words<'a> {
    Ascii(std::str::SplitAsciiWhitespace<'a>),
    Unicode(std::str::SplitWhitespace<'a>),
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        match self {
            Words::Ascii(w) => w.next(),
            Words::Unicode(w) => w.next(),
        }
    }
}

/// ASCII punctuation plus the Unicode punctuation that appears in English and Chinese text.
/// A "symbol word" (Gopher) is a word made only of these characters.
pub fn is_punct(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation() || c.is_ascii_control();
    }
    matches!(
        c,
        '—' | '–'
            | '“'
            | '”'
            | '‘'
            | '’'
            | '„'
            | '…'
            | '«'
            | '»'
            | '´'
            | '∶'
            | '━'
            | '►'
            | '、'
            | '。'
            | '，'
            | '！'
            | '？'
            | '：'
            | '；'
            | '．'
            | '（'
            | '）'
            | '【'
            | '】'
            | '「'
            | '」'
            | '『'
            | '』'
            | '《'
            | '》'
            | '〈'
            | '〉'
            | '～'
            | '％'
            | '·'
            | '・'
            | '\u{80}'..='\u{9f}'
    ) || is_terminal_punct(c)
}

/// Sentence-ending marks: the Unicode `Sentence_Terminal` characters of the scripts we meet
/// (Latin, CJK, Arabic, Devanagari, Armenian, and the doubled `‼ ⁇ ⁈ ⁉`). FineWeb's
/// "line ends in punctuation" rule uses this set.
pub fn is_terminal_punct(c: char) -> bool {
    matches!(
        c,
        '.' | '!'
            | '?'
            | '\u{589}'
            | '\u{61d}'..='\u{61f}'
            | '\u{6d4}'
            | '\u{964}'
            | '\u{965}'
            | '\u{203c}'
            | '\u{203d}'
            | '\u{2047}'..='\u{2049}'
            | '\u{3002}'
            | '\u{fe52}'
            | '\u{fe56}'
            | '\u{fe57}'
            | '\u{ff01}'
            | '\u{ff0e}'
            | '\u{ff1f}'
            | '\u{ff61}'
    )
}

/// CJK ideographs (Han characters): the unified blocks, extension A and the compatibility block,
/// plus the supplementary-plane extensions.
pub fn is_han(c: char) -> bool {
    matches!(c,
        '\u{3400}'..='\u{4dbf}' | '\u{4e00}'..='\u{9fff}' | '\u{f900}'..='\u{faff}'
        | '\u{20000}'..='\u{3134f}')
}

/// Length in characters (code points), as Python's `len()` counts. ASCII text takes a fast path.
pub fn char_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

/// A 64-bit hash of bytes: 8 bytes at a time through a multiply-xor mix, then the MurmurHash3
/// finalizer. Fast, deterministic across runs and machines, and good enough to index documents,
/// lines and shingles (not cryptographic).
pub fn hash64(bytes: &[u8], seed: u64) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = seed ^ (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = (h ^ v).wrapping_mul(K).rotate_left(31);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut buf = [0u8; 8];
        buf[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(buf))
            .wrapping_mul(K)
            .rotate_left(31);
    }
    fmix64(h)
}

/// MurmurHash3's 64-bit finalizer: every input bit flips about half the output bits.
pub fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A hasher for maps whose keys are already good 64-bit hashes: it passes them through.
#[derive(Default, Clone, Copy)]
pub struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b) ^ (self.0 >> 56);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// `HashMap`/`HashSet` build-hasher for pre-hashed `u64` keys.
pub type BuildIdentity = std::hash::BuildHasherDefault<IdentityHasher>;
/// A set of pre-hashed keys.
pub type HashSet64 = std::collections::HashSet<u64, BuildIdentity>;
/// A map from pre-hashed keys.
pub type HashMap64<V> = std::collections::HashMap<u64, V, BuildIdentity>;

/// Number of sentences in a line: a sentence ends at a run of `.`, `!` or `?` (optionally followed
/// by closing quotes or brackets) that is followed by whitespace or the end of the line. A line
/// with no such end counts as one sentence. The comparison script gives datatrove the same rule.
pub fn count_sentences(line: &str) -> usize {
    let b = line.as_bytes();
    let n = b.len();
    let (mut count, mut start, mut i) = (0, 0, 0);
    while i < n {
        if matches!(b[i], b'.' | b'!' | b'?') {
            let mut j = i + 1;
            while j < n && matches!(b[j], b'.' | b'!' | b'?') {
                j += 1;
            }
            while j < n && matches!(b[j], b'"' | b'\'' | b')' | b']') {
                j += 1;
            }
            if j == n || b[j].is_ascii_whitespace() {
                if !line[start..j].trim().is_empty() {
                    count += 1;
                }
                start = j;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    if !line[start..].trim().is_empty() {
        count += 1;
    }
    count.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_are_counted_at_terminal_marks() {
        assert_eq!(count_sentences("One. Two! Three?"), 3);
        assert_eq!(count_sentences("Version 1.2 is out."), 1);
        assert_eq!(count_sentences("He said \"stop.\" Then left."), 2);
        assert_eq!(count_sentences("no end"), 1);
        assert_eq!(count_sentences(""), 1);
    }

    #[test]
    fn hash_depends_on_every_byte_and_seed() {
        assert_ne!(hash64(b"abcdefghi", 0), hash64(b"abcdefghj", 0));
        assert_ne!(hash64(b"abc", 0), hash64(b"abc", 1));
        assert_ne!(hash64(b"", 0), hash64(b"\0", 0));
        assert_eq!(hash64(b"same", 7), hash64(b"same", 7));
    }

    #[test]
    fn char_classes() {
        assert!(is_han('学') && !is_han('a') && !is_han('。'));
        assert!(is_punct('。') && is_punct('#') && !is_punct('a'));
        assert!(is_terminal_punct('。') && is_terminal_punct('?') && !is_terminal_punct(','));
        assert_eq!(char_len("汉字ab"), 4);
    }
}
