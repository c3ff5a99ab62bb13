//! FineWeb's own rules (Penedo et al. 2024, "The FineWeb Datasets", section 3.3), as datatrove's
//! `FineWebQualityFilter` defaults them. They target list-like pages and boilerplate that the
//! Gopher and C4 rules let through.

use crate::data::filters::gopher::find_duplicates;
use crate::data::text::{char_len, is_terminal_punct, words};

/// Fewest non-blank lines that end in sentence punctuation.
pub const MIN_LINE_PUNCT_RATIO: f64 = 0.12;
/// A line this long or shorter (characters) is short...
pub const SHORT_LINE_LEN: usize = 30;
/// ...and at most this share of lines may be short.
pub const MAX_SHORT_LINE_RATIO: f64 = 0.67;
/// Most characters in duplicated lines (relative to all characters except newlines).
pub const MAX_CHAR_DUP_RATIO: f64 = 0.01;
/// Most newlines per word (a list-like page has many).
pub const MAX_NEWLINE_RATIO: f64 = 0.3;

/// Apply the FineWeb rules. `Err` carries the reason.
pub fn filter(text: &str) -> Result<(), &'static str> {
    let lines: Vec<&str> = text.split('\n').filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return Err("empty");
    }
    let n = lines.len() as f64;
    let punct = lines
        .iter()
        .filter(|l| l.chars().next_back().is_some_and(is_terminal_punct))
        .count();
    if (punct as f64 / n) < MIN_LINE_PUNCT_RATIO {
        return Err("fineweb_line_punct_ratio");
    }
    let short = lines
        .iter()
        .filter(|l| char_len(l) <= SHORT_LINE_LEN)
        .count();
    if short as f64 / n > MAX_SHORT_LINE_RATIO {
        return Err("fineweb_short_line_ratio");
    }
    let dup_chars = find_duplicates(lines.iter().copied()).1;
    let chars = char_len(text) - memchr::memchr_iter(b'\n', text.as_bytes()).count();
    if dup_chars as f64 / chars.max(1) as f64 > MAX_CHAR_DUP_RATIO {
        return Err("fineweb_char_dup_ratio");
    }
    let newlines = memchr::memchr_iter(b'\n', text.as_bytes()).count();
    if newlines as f64 / words(text).count().max(1) as f64 > MAX_NEWLINE_RATIO {
        return Err("fineweb_list_ratio");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prose_passes() {
        let text = "Rivers carry sediment to the sea, where it settles into deltas over time.\n\
                    Engineers study deltas because cities are built on them and they sink.";
        assert_eq!(filter(text), Ok(()));
    }

    #[test]
    fn failures() {
        assert_eq!(
            filter("Home\nAbout\nContact us today"),
            Err("fineweb_line_punct_ratio")
        );
        let short = "Yes.\nNo.\nMaybe so.\nA much longer line that goes on and on and on.";
        assert_eq!(filter(short), Err("fineweb_short_line_ratio"));
        let dup = "A line that repeats itself in this document.\n".repeat(3);
        assert_eq!(filter(dup.trim()), Err("fineweb_char_dup_ratio"));
        let list = "Internationalization considerations.\nMicrocontroller programming.\n\
                    Electroencephalography measurements.\nPhotosynthesis improvements.";
        assert_eq!(filter(list), Err("fineweb_list_ratio"));
    }
}
