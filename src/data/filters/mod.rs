//! Step 5: quality filters. Each rule set is its own module with its thresholds as named
//! constants and the paper they come from. Which rule sets a document meets depends on its
//! language and on the kind of file it came from (see [`RuleSets`]).

pub mod c4;
pub mod cjk;
pub mod code;
pub mod fineweb;
pub mod gopher;

use super::lang::Lang;
use super::read::Format;

/// Which rule sets run on English (and other space-separated) prose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleSets {
    pub gopher_quality: bool,
    pub gopher_repetition: bool,
    pub c4: bool,
    pub fineweb: bool,
}

impl RuleSets {
    /// Every rule set: what FineWeb runs on web pages.
    pub const WEB: RuleSets = RuleSets {
        gopher_quality: true,
        gopher_repetition: true,
        c4: true,
        fineweb: true,
    };
    /// No rule set.
    pub const NONE: RuleSets = RuleSets {
        gopher_quality: false,
        gopher_repetition: false,
        c4: false,
        fineweb: false,
    };
}

/// The rule sets per kind of document.
#[derive(Clone, Copy, Debug)]
pub struct FilterConfig {
    /// Web pages (`.html`) and records (`.jsonl`).
    pub web: RuleSets,
    /// Books and articles (`.txt`, `.md`).
    pub books: RuleSets,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            web: RuleSets::WEB,
            // Plays and verse break the web line rules: C4 keeps only lines that end in `.?!`
            // and FineWeb counts every repeated speaker name ("HAMLET.") as duplicated text, so
            // books get the document-level Gopher rules only. Lesson 01 shows the numbers.
            books: RuleSets {
                gopher_quality: true,
                gopher_repetition: true,
                c4: false,
                fineweb: false,
            },
        }
    }
}

/// Run the filters that apply to a document. `Ok(Some(text))` when a rule (C4) rewrote the
/// text, `Ok(None)` when it passes unchanged, `Err(reason)` when it is removed.
pub fn apply(
    text: &str,
    lang: Lang,
    format: Format,
    cfg: &FilterConfig,
) -> Result<Option<String>, &'static str> {
    match lang {
        Lang::Code => code::filter(text).map(|_| None),
        Lang::Zh => cjk::filter(text).map(|_| None),
        Lang::En | Lang::Other => {
            let rules = match format {
                Format::Html | Format::Jsonl => cfg.web,
                Format::Text | Format::Code => cfg.books,
            };
            apply_rules(text, &rules)
        }
    }
}

/// Run the given rule sets in datatrove's FineWeb order: Gopher repetition, Gopher quality,
/// C4, FineWeb. The first failure wins.
pub fn apply_rules(text: &str, rules: &RuleSets) -> Result<Option<String>, &'static str> {
    if rules.gopher_repetition {
        gopher::repetition(text)?;
    }
    if rules.gopher_quality {
        gopher::quality(text)?;
    }
    let mut rewritten = None;
    if rules.c4 {
        let kept = c4::filter(text)?;
        if kept != text {
            rewritten = Some(kept);
        }
    }
    if rules.fineweb {
        fineweb::filter(rewritten.as_deref().unwrap_or(text))?;
    }
    Ok(rewritten)
}
