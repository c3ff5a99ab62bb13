//! Exact deduplication: the first document with a given text is kept, later copies are removed.
//! The key is a 128-bit hash (two independent 64-bit hashes) of the normalized text, so the
//! index costs 16 bytes plus the kept id per distinct document, not the text itself.

use crate::data::text::hash64;
use std::collections::HashMap;

/// Seen documents: text hash → id of the first document with that text.
#[derive(Default)]
pub struct ExactDedup {
    seen: HashMap<(u64, u64), String>,
}

impl ExactDedup {
    /// The 128-bit key of a text.
    pub fn key(text: &str) -> (u64, u64) {
        (
            hash64(text.as_bytes(), 0x5eed),
            hash64(text.as_bytes(), 0xfeed),
        )
    }

    /// Record a document; returns the id of the earlier copy if it is a duplicate.
    pub fn check(&mut self, key: (u64, u64), id: &str) -> Option<String> {
        match self.seen.get(&key) {
            Some(first) => Some(first.clone()),
            None => {
                self.seen.insert(key, id.to_string());
                None
            }
        }
    }

    /// Distinct documents seen.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_copy_points_to_first() {
        let mut d = ExactDedup::default();
        assert_eq!(d.check(ExactDedup::key("same text"), "a"), None);
        assert_eq!(d.check(ExactDedup::key("other text"), "b"), None);
        assert_eq!(d.check(ExactDedup::key("same text"), "c"), Some("a".into()));
        assert_eq!(d.check(ExactDedup::key("same text "), "d"), None);
        assert_eq!(d.len(), 3);
    }
}
