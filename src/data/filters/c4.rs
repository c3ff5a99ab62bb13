//! C4 rules (Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified
//! Text-to-Text Transformer", section 2.2), as datatrove's `C4QualityFilter` applies them.
//! Most rules drop *lines*, so this filter returns the text that remains; two rules drop the page.

use crate::data::text::count_sentences;

/// A kept line must end with one of these.
pub const END_PUNCTUATION: [char; 5] = ['.', '?', '!', '"', '\''];
/// A kept line must have at least this many words.
pub const MIN_WORDS_PER_LINE: usize = 3;
/// A page must keep at least this many sentences.
pub const MIN_SENTENCES: usize = 5;
/// Lines with a word longer than this are dropped.
pub const MAX_WORD_LEN: usize = 1000;
/// Lines mentioning these (lower case) are dropped: cookie banners and legal notices.
pub const POLICY_SUBSTRINGS: &[&str] = &[
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
];

/// Remove Wikipedia-style citation marks: `[12]`, `[]`, `[edit]`, `[citation needed]`.
fn remove_citations(line: &str) -> std::borrow::Cow<'_, str> {
    if !line.contains('[') {
        return line.into();
    }
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find('[') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let digits = tail[1..].bytes().take_while(u8::is_ascii_digit).count();
        let skip = if tail[1 + digits..].starts_with(']') {
            digits + 2
        } else if tail.starts_with("[edit]") {
            6
        } else if tail.starts_with("[citation needed]") {
            17
        } else {
            out.push('[');
            1
        };
        rest = &tail[skip..];
    }
    out.push_str(rest);
    out.into()
}

/// Apply the C4 rules: `Ok(kept text)` or `Err(reason)` when the page is dropped.
pub fn filter(text: &str) -> Result<String, &'static str> {
    let mut kept = String::with_capacity(text.len());
    let mut sentences = 0usize;
    for line in text.lines() {
        let line = line.trim();
        let n_words = line.split_whitespace().count();
        if line
            .split_whitespace()
            .any(|w| w.chars().count() > MAX_WORD_LEN)
        {
            continue;
        }
        let line = remove_citations(line);
        if !line.ends_with(END_PUNCTUATION) || line.ends_with("...") {
            continue;
        }
        if n_words < MIN_WORDS_PER_LINE {
            continue;
        }
        let lower = line.to_lowercase();
        if lower.contains("lorem ipsum") {
            return Err("c4_lorem_ipsum");
        }
        if lower.contains("javascript") {
            continue;
        }
        if line.contains('{') {
            return Err("c4_curly_bracket");
        }
        if POLICY_SUBSTRINGS.iter().any(|p| lower.contains(p)) {
            continue;
        }
        sentences += count_sentences(&line);
        if !kept.is_empty() {
            kept.push('\n');
        }
        kept.push_str(&line);
    }
    if sentences < MIN_SENTENCES {
        return Err("c4_too_few_sentences");
    }
    let end = kept.trim_end().len();
    kept.truncate(end);
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sentences_drops_junk_lines() {
        let page = "Menu\nHome | About\nThe first line is a real sentence. It has two.\n\
            We use cookies to improve your experience.\nEnable JavaScript to view this site.\n\
            Rivers carry sediment to the sea[3]. Deltas form where it settles.\n\
            A last short line here!";
        let kept = filter(page).unwrap();
        assert_eq!(
            kept,
            "The first line is a real sentence. It has two.\n\
             Rivers carry sediment to the sea. Deltas form where it settles.\n\
             A last short line here!"
        );
    }

    #[test]
    fn page_rules() {
        assert_eq!(
            filter("One sentence only here."),
            Err("c4_too_few_sentences")
        );
        let lorem = "Lorem ipsum dolor sit amet. ".repeat(6);
        assert_eq!(filter(&lorem), Err("c4_lorem_ipsum"));
        let code =
            "We call it like this. Then that. And more. Yes it works.\nThe result is {a: 1}.";
        assert_eq!(filter(code), Err("c4_curly_bracket"));
        // A brace on a line that is dropped anyway (no end punctuation) does not drop the page.
        let ok = "function f() {\nOne two three. Four five six. Seven eight nine. Ten and eleven. Twelve and more.";
        assert!(filter(ok).is_ok());
    }

    #[test]
    fn citations() {
        assert_eq!(
            remove_citations("a[1] b[edit] c[citation needed] d[x]"),
            "a b c d[x]"
        );
    }
}
