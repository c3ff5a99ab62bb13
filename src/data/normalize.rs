//! Step 1: decode bytes to text and normalize it.
//!
//! - Invalid UTF-8 sequences become U+FFFD and are counted (a file is never rejected for them).
//! - Unicode NFC: "é" typed as `e` + combining accent and "é" as one code point become the same
//!   string, so dedup and the tokenizer see one spelling.
//! - Control characters (except newline and tab) and the byte-order mark are removed.
//! - Line endings become `\n`. In prose, runs of spaces and tabs become one space, lines are
//!   trimmed and more than one blank line collapses to one (a paragraph break). Code keeps its
//!   indentation and only loses trailing spaces.

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

/// Most blank lines kept in a row (one blank line = a paragraph break).
pub const MAX_BLANK_LINES: usize = 1;

/// Decode bytes as UTF-8, replacing each invalid sequence with U+FFFD.
/// Returns the text and the number of invalid sequences replaced.
pub fn decode(bytes: &[u8]) -> (String, usize) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_owned(), 0),
        Err(_) => decode_lossy(bytes),
    }
}

/// [`decode`] for owned bytes: valid UTF-8 (the common case) is reused without a copy.
pub fn decode_owned(bytes: Vec<u8>) -> (String, usize) {
    match String::from_utf8(bytes) {
        Ok(s) => (s, 0),
        Err(e) => decode_lossy(e.as_bytes()),
    }
}

fn decode_lossy(bytes: &[u8]) -> (String, usize) {
    let mut out = String::with_capacity(bytes.len() + 16);
    let mut bad = 0;
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            out.push('\u{fffd}');
            bad += 1;
        }
    }
    (out, bad)
}

/// Unicode NFC, skipping the work when a quick check says the text already is NFC.
pub fn nfc(text: String) -> String {
    if text.is_ascii() || is_nfc_quick(text.chars()) == IsNormalized::Yes {
        text
    } else {
        text.nfc().collect()
    }
}

/// True for characters removed by normalization: C0/C1 controls other than `\n` and `\t`,
/// DEL and the byte-order mark / zero-width no-break space.
fn is_removed(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t' && c != '\r') || c == '\u{feff}'
}

/// Horizontal whitespace that prose collapses to one space (tab, no-break space, ideographic space...).
fn is_hspace(c: char) -> bool {
    c != '\n' && c != '\r' && c.is_whitespace()
}

/// NFC, then control characters, line endings and whitespace (see the module docs).
/// `code` keeps indentation and inner spacing.
pub fn normalize(text: String, code: bool) -> String {
    let text = nfc(text);
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0usize;
    // `\r\n` and lone `\r` both end a line.
    for raw in text.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        for line in raw.split('\r') {
            let start = out.len();
            if code {
                out.extend(line.chars().filter(|&c| !is_removed(c)));
                let kept = out[start..].trim_end().len();
                out.truncate(start + kept);
            } else {
                let mut pending_space = false;
                for c in line.chars() {
                    if is_removed(c) {
                        continue;
                    }
                    if is_hspace(c) {
                        pending_space = out.len() > start;
                        continue;
                    }
                    if pending_space {
                        out.push(' ');
                        pending_space = false;
                    }
                    out.push(c);
                }
            }
            if out.len() == start {
                blank_run += 1;
                if blank_run > MAX_BLANK_LINES || start == 0 {
                    continue; // drop extra blank lines and leading ones
                }
            } else {
                blank_run = 0;
            }
            out.push('\n');
        }
    }
    let end = out.trim_end().len();
    out.truncate(end);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_replaced_and_counted() {
        let (s, bad) = decode(b"ok \xff\xfe then \xc3");
        // Each byte that cannot start a sequence is replaced on its own, as Python does.
        assert_eq!(s, "ok \u{fffd}\u{fffd} then \u{fffd}");
        assert_eq!(bad, 3);
        assert_eq!(decode("fine 汉字".as_bytes()), ("fine 汉字".to_string(), 0));
    }

    #[test]
    fn nfc_joins_combining_marks() {
        assert_eq!(normalize("cafe\u{301}".into(), false), "caf\u{e9}");
    }

    #[test]
    fn prose_whitespace_and_controls() {
        let raw =
            "\u{feff}  Hello\t\tworld  \r\n\r\n\r\n\r\nnext\u{7}\u{0} line\u{a0}here \rlast\n\n";
        assert_eq!(
            normalize(raw.into(), false),
            "Hello world\n\nnext line here\nlast"
        );
    }

    #[test]
    fn code_keeps_indentation() {
        let raw = "def f():\r\n    return 1   \n\n\n\n\tx = 2\n";
        assert_eq!(
            normalize(raw.into(), true),
            "def f():\n    return 1\n\n\tx = 2"
        );
    }
}
