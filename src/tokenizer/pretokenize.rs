//! Pre-tokenization: cut text into pieces ("pre-tokens") before BPE sees it, so that merges never
//! cross a word boundary. GPT-2 and GPT-4 (cl100k) define the pieces with a regular expression;
//! here each pattern is written by hand as a small state machine over chars, which is both faster
//! and easier to read than a regex engine. The tests check every split against tiktoken's regex.
//!
//! GPT-2:  `'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s`
//!
//! GPT-4:  `'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s`
//!
//! The alternatives are tried left to right at each position; the first that matches wins.

use super::unicode_tables::{LETTER, NUMBER, WHITE_SPACE};
use std::sync::OnceLock;

/// Which split pattern to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Split {
    /// GPT-2's pattern (also r50k_base, p50k_base).
    #[default]
    Gpt2,
    /// GPT-4's pattern (cl100k_base): case-insensitive contractions, digits in groups of 3.
    Gpt4,
}

impl Split {
    /// The regex this split implements, as tiktoken and HF `tokenizers` write it.
    pub fn pattern(self) -> &'static str {
        match self {
            Split::Gpt2 => GPT2_PATTERN,
            Split::Gpt4 => GPT4_PATTERN,
        }
    }

    /// Parse `gpt2` or `gpt4` (`cl100k` is accepted as another name for `gpt4`).
    pub fn parse(name: &str) -> anyhow::Result<Split> {
        match name {
            "gpt2" => Ok(Split::Gpt2),
            "gpt4" | "cl100k" => Ok(Split::Gpt4),
            _ => anyhow::bail!("unknown split {name:?} (expected gpt2 or gpt4)"),
        }
    }

    /// The name [`Split::parse`] accepts.
    pub fn name(self) -> &'static str {
        match self {
            Split::Gpt2 => "gpt2",
            Split::Gpt4 => "gpt4",
        }
    }

    /// Iterate over the pre-tokens of `text`. Concatenated, they give back `text`.
    pub fn pieces(self, text: &str) -> Pieces<'_> {
        Pieces {
            bytes: text.as_bytes(),
            text,
            pos: 0,
            split: self,
            class: classes(),
        }
    }
}

/// GPT-2's split pattern as tiktoken writes it.
pub const GPT2_PATTERN: &str =
    r"'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s";
/// GPT-4's (cl100k_base) split pattern as tiktoken writes it.
pub const GPT4_PATTERN: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s";

/// Character classes the patterns care about.
const OTHER: u8 = 0;
const LET: u8 = 1;
const NUM: u8 = 2;
const SPACE: u8 = 3;

/// One class byte per code point (1.1 MB), built once from the generated range tables.
fn classes() -> &'static [u8] {
    static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = vec![OTHER; 0x110000];
        for (ranges, class) in [(LETTER, LET), (NUMBER, NUM), (WHITE_SPACE, SPACE)] {
            for &(a, b) in ranges {
                t[a as usize..=b as usize].fill(class);
            }
        }
        t
    })
}

/// Decode the char starting at byte `i` of valid UTF-8: (code point, length in bytes).
#[inline(always)]
fn char_at(b: &[u8], i: usize) -> (u32, usize) {
    let x = b[i] as u32;
    if x < 0x80 {
        (x, 1)
    } else if x < 0xE0 {
        (((x & 0x1F) << 6) | (b[i + 1] as u32 & 0x3F), 2)
    } else if x < 0xF0 {
        let c = ((x & 0x0F) << 12) | ((b[i + 1] as u32 & 0x3F) << 6) | (b[i + 2] as u32 & 0x3F);
        (c, 3)
    } else {
        let c = ((x & 0x07) << 18)
            | ((b[i + 1] as u32 & 0x3F) << 12)
            | ((b[i + 2] as u32 & 0x3F) << 6)
            | (b[i + 3] as u32 & 0x3F);
        (c, 4)
    }
}

/// Iterator over pre-tokens; see [`Split::pieces`].
pub struct Pieces<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    split: Split,
    class: &'static [u8],
}

impl<'a> Pieces<'a> {
    /// Class of the char at `i`, with its code point and length. Past the end: a fake OTHER of length 0.
    #[inline(always)]
    fn at(&self, i: usize) -> (u8, u32, usize) {
        if i >= self.bytes.len() {
            return (u8::MAX, 0, 0);
        }
        let (c, n) = char_at(self.bytes, i);
        (self.class[c as usize], c, n)
    }

    /// End of the run of chars of class `class` starting at `i`.
    #[inline(always)]
    fn run(&self, mut i: usize, class: u8) -> usize {
        let b = self.bytes;
        while i < b.len() {
            if b[i] < 0x80 {
                if self.class[b[i] as usize] != class {
                    break;
                }
                i += 1;
            } else {
                let (c, n) = char_at(b, i);
                if self.class[c as usize] != class {
                    break;
                }
                i += n;
            }
        }
        i
    }

    /// `\s++$|\s+(?!\S)|\s` (plus GPT-4's `\s*[\r\n]` when `newline` is set), at a whitespace char.
    fn whitespace(&self, i: usize, newline: bool) -> usize {
        let b = self.bytes;
        let end = self.run(i, SPACE);
        if end == b.len() {
            return end;
        }
        if newline && let Some(k) = b[i..end].iter().rposition(|&x| x == b'\n' || x == b'\r') {
            return i + k + 1;
        }
        // Back off one char so that the last space can join the next piece.
        let mut last = end - 1;
        while b[last] & 0xC0 == 0x80 {
            last -= 1;
        }
        if last > i { last } else { end }
    }

    fn next_gpt2(&self, i: usize) -> usize {
        let b = self.bytes;
        let (c0, cp0, _) = self.at(i);
        if cp0 == '\'' as u32 {
            match b.get(i + 1..i + 3) {
                Some([b'l', b'l']) | Some([b'v', b'e']) | Some([b'r', b'e']) => return i + 3,
                _ => {}
            }
            if let Some(b's' | b'd' | b'm' | b't') = b.get(i + 1) {
                return i + 2;
            }
        }
        if cp0 == ' ' as u32 {
            let (c1, _, _) = self.at(i + 1);
            if c1 == LET || c1 == NUM || c1 == OTHER {
                return self.run(i + 1, c1);
            }
        }
        if c0 == SPACE {
            return self.whitespace(i, false);
        }
        self.run(i, c0)
    }

    fn next_gpt4(&self, i: usize) -> usize {
        let b = self.bytes;
        let (c0, cp0, n0) = self.at(i);
        if cp0 == '\'' as u32 {
            let (_, cp1, n1) = self.at(i + 1);
            match char::from_u32(cp1) {
                Some('s' | 'S' | 'd' | 'D' | 'm' | 'M' | 't' | 'T' | '\u{17F}') => {
                    return i + 1 + n1;
                }
                Some('l' | 'L' | 'v' | 'V' | 'r' | 'R') => {
                    let (_, cp2, _) = self.at(i + 2);
                    let ok = match (cp1 as u8).to_ascii_lowercase() {
                        b'l' => cp2 == 'l' as u32 || cp2 == 'L' as u32,
                        _ => cp2 == 'e' as u32 || cp2 == 'E' as u32,
                    };
                    if ok {
                        return i + 3;
                    }
                }
                _ => {}
            }
        }
        // [^\r\n\p{L}\p{N}]?+\p{L}++
        if c0 == LET {
            return self.run(i, LET);
        }
        if c0 != NUM && cp0 != '\r' as u32 && cp0 != '\n' as u32 {
            let (c1, _, _) = self.at(i + n0);
            if c1 == LET {
                return self.run(i + n0, LET);
            }
        }
        // \p{N}{1,3}+
        if c0 == NUM {
            let mut j = i;
            for _ in 0..3 {
                let (c, _, n) = self.at(j);
                if c != NUM {
                    break;
                }
                j += n;
            }
            return j;
        }
        // ' ?[^\s\p{L}\p{N}]++[\r\n]*+'
        let start = if cp0 == ' ' as u32 && self.at(i + 1).0 == OTHER {
            i + 1
        } else {
            i
        };
        if self.at(start).0 == OTHER {
            let mut j = self.run(start, OTHER);
            while j < b.len() && (b[j] == b'\r' || b[j] == b'\n') {
                j += 1;
            }
            return j;
        }
        self.whitespace(i, true)
    }
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        let i = self.pos;
        if i >= self.bytes.len() {
            return None;
        }
        let end = match self.split {
            Split::Gpt2 => self.next_gpt2(i),
            Split::Gpt4 => self.next_gpt4(i),
        };
        debug_assert!(end > i);
        self.pos = end;
        Some(&self.text[i..end])
    }
}

/// Is `c` whitespace in the patterns' sense (`\s`, the Unicode White_Space property)?
pub fn is_space(c: char) -> bool {
    classes()[c as usize] == SPACE
}

/// A byte offset near `target` where `text` can be cut into two halves that pre-tokenize exactly
/// as the whole does: just after a `\n` that has a non-space char on both sides. `None` if there
/// is no such place after `target`. Used to split work across threads and to stream large files.
pub fn safe_cut(text: &str, target: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut from = target.max(1);
    while from < b.len() {
        let k = from + memchr::memchr(b'\n', &b[from..])?;
        let next = k + 1;
        if next < b.len() && k > 0 {
            let prev = text[..k].chars().next_back().map(is_space);
            let after = text[next..].chars().next().map(is_space);
            if prev == Some(false) && after == Some(false) {
                return Some(next);
            }
        }
        from = k + 1;
    }
    None
}
