//! Line-level boilerplate removal.
//!
//! Navigation menus, cookie banners and footers repeat, line for line, on every page of a site.
//! We count in how many web documents each distinct line occurs (one hash per line, counted once
//! per document), and afterwards drop the lines that occur in at least [`MIN_DOCS`] documents
//! and at least [`MIN_DOC_FRACTION`] of all web documents. The same idea, at paragraph level,
//! is CCNet's (Wenzek et al. 2019) and at line level FineWeb-2's. Books, Chinese records and code
//! are not counted: a play's "Exeunt." or a `return None` repeats for good reasons.

use crate::data::text::{HashMap64, HashSet64, hash64};

/// A line must occur in at least this many documents to be boilerplate...
pub const MIN_DOCS: u32 = 3;
/// ...and in at least this share of the web documents.
pub const MIN_DOC_FRACTION: f64 = 0.5;

/// Hash of a line as the counter sees it (surrounding whitespace ignored).
pub fn line_key(line: &str) -> u64 {
    hash64(line.trim().as_bytes(), 0x11e5)
}

/// The distinct keys of a document's non-blank lines, in first-seen order.
pub fn distinct_keys(text: &str) -> Vec<u64> {
    let mut here = HashSet64::default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(line_key)
        .filter(|&k| here.insert(k))
        .collect()
}

/// Document frequency of lines across web documents.
#[derive(Default)]
pub struct LineCounter {
    counts: HashMap64<u32>,
    docs: u32,
}

impl LineCounter {
    /// Count the distinct non-blank lines of one document.
    pub fn add(&mut self, text: &str) {
        self.add_keys(&distinct_keys(text));
    }

    /// Count one document given its distinct line keys (from [`distinct_keys`]).
    pub fn add_keys(&mut self, keys: &[u64]) {
        self.docs += 1;
        for &k in keys {
            *self.counts.entry(k).or_insert(0) += 1;
        }
    }

    /// Freeze the counts into the set of boilerplate line hashes.
    pub fn boilerplate(&self) -> Boilerplate {
        let need = MIN_DOCS.max((MIN_DOC_FRACTION * self.docs as f64).ceil() as u32);
        Boilerplate {
            lines: self
                .counts
                .iter()
                .filter(|(_, c)| **c >= need)
                .map(|(k, _)| *k)
                .collect(),
        }
    }
}

/// The boilerplate lines found by a [`LineCounter`].
#[derive(Default)]
pub struct Boilerplate {
    lines: HashSet64,
}

impl Boilerplate {
    /// Number of distinct boilerplate lines.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Remove boilerplate lines. Returns the new text (if anything was removed) and the count.
    pub fn strip(&self, text: &str) -> (Option<String>, usize) {
        let (t, removed) = self.strip_lines(text);
        (t, removed.len())
    }

    /// Remove boilerplate lines. Returns the new text (if anything was removed) and the lines removed.
    pub fn strip_lines<'a>(&self, text: &'a str) -> (Option<String>, Vec<&'a str>) {
        let mut removed = Vec::new();
        if self.lines.is_empty() {
            return (None, removed);
        }
        let mut out = String::with_capacity(text.len());
        for line in text.split('\n') {
            if !line.trim().is_empty() && self.lines.contains(&line_key(line)) {
                removed.push(line);
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        if removed.is_empty() {
            return (None, removed);
        }
        // Re-normalize blank lines left behind by removed lines.
        let out = crate::data::normalize::normalize(out, false);
        (Some(out), removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_navigation_is_removed_unique_text_kept() {
        let pages = [
            "Home\nDocs\nBlog\nFirst page text about rivers.\nCopyright Example Inc.",
            "Home\nDocs\nBlog\nSecond page text about deserts.\nCopyright Example Inc.",
            "Home\nDocs\nBlog\nThird page about mountains.\nCopyright Example Inc.",
            "A page without menu. Home is where the heart is.",
        ];
        let mut c = LineCounter::default();
        for p in pages {
            c.add(p);
        }
        let b = c.boilerplate();
        assert_eq!(b.len(), 4);
        assert_eq!(
            b.strip(pages[0]),
            (Some("First page text about rivers.".into()), 4)
        );
        assert_eq!(b.strip(pages[3]), (None, 0));
    }

    #[test]
    fn too_few_documents_means_no_boilerplate() {
        let mut c = LineCounter::default();
        c.add("Menu\nText one.");
        c.add("Menu\nText two.");
        assert!(c.boilerplate().is_empty());
    }
}
