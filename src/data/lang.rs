//! Step 3: language identification by script.
//!
//! We count letters by script. A document is `zh` when Han characters are at least
//! [`ZH_MIN_HAN_SHARE`] of its letters and Japanese kana are rare; it is `en` when Latin letters
//! are at least [`EN_MIN_LATIN_SHARE`] of its letters and at least [`EN_MIN_FUNCTION_WORDS`] of its
//! words are common English function words (this tells English from French or Latin); everything
//! else is `other`. Code is decided by the file type, not here. This is cruder than a trained
//! classifier (fastText `lid.176`, used by FineWeb) but it is transparent and needs no model file,
//! and for our two languages it is reliable: their scripts do not overlap.

use super::text::is_han;
use serde::{Deserialize, Serialize};

/// Share of letters that must be Han characters for `zh`.
pub const ZH_MIN_HAN_SHARE: f64 = 0.3;
/// Share of letters that must be Latin for `en`.
pub const EN_MIN_LATIN_SHARE: f64 = 0.5;
/// Share of words that must be English function words for `en`.
pub const EN_MIN_FUNCTION_WORDS: f64 = 0.05;
/// The function words counted (lower case). Early-modern spellings of these are the same.
pub const EN_FUNCTION_WORDS: &[&str] = &[
    "the", "and", "of", "to", "a", "in", "is", "that", "it", "for", "with", "as", "on", "be",
    "not", "this", "you", "he", "i", "are", "by", "or", "but", "his", "my", "if", "an", "from",
    "we", "they", "will", "can", "all", "have", "what", "so", "at", "me", "your", "thou", "thy",
];

/// The language label written to the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    En,
    Zh,
    Code,
    Other,
}

impl Lang {
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
            Lang::Code => "code",
            Lang::Other => "other",
        }
    }
}

/// Identify the language of prose text (see the module docs).
pub fn identify(text: &str) -> Lang {
    let (mut han, mut kana, mut latin, mut letters) = (0usize, 0usize, 0usize, 0usize);
    for c in text.chars() {
        if c.is_ascii() {
            if c.is_ascii_alphabetic() {
                latin += 1;
                letters += 1;
            }
        } else if is_han(c) {
            han += 1;
            letters += 1;
        } else if ('\u{3040}'..='\u{30ff}').contains(&c) {
            kana += 1;
            letters += 1;
        } else if c.is_alphabetic() {
            letters += 1;
            if ('\u{c0}'..='\u{24f}').contains(&c) {
                latin += 1;
            }
        }
    }
    if letters == 0 {
        return Lang::Other;
    }
    let share = |n: usize| n as f64 / letters as f64;
    if share(han) >= ZH_MIN_HAN_SHARE && kana * 10 < han {
        return Lang::Zh;
    }
    if share(latin) >= EN_MIN_LATIN_SHARE {
        let (mut n, mut function) = (0usize, 0usize);
        for w in text.split_whitespace() {
            n += 1;
            let w = w.trim_matches(|c: char| !c.is_alphanumeric());
            if w.len() <= 5 && EN_FUNCTION_WORDS.iter().any(|f| f.eq_ignore_ascii_case(w)) {
                function += 1;
            }
        }
        if n > 0 && function as f64 / n as f64 >= EN_MIN_FUNCTION_WORDS {
            return Lang::En;
        }
    }
    Lang::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts() {
        assert_eq!(
            identify("The cat sat on the mat and it was happy."),
            Lang::En
        );
        assert_eq!(
            identify("学而时习之，不亦说乎？有朋自远方来，不亦乐乎？"),
            Lang::Zh
        );
        assert_eq!(
            identify("Le chat est assis sur le tapis rouge."),
            Lang::Other
        );
        assert_eq!(identify("Кошка сидит на ковре."), Lang::Other);
        assert_eq!(identify("吾輩は猫である。名前はまだ無い。"), Lang::Other);
        assert_eq!(identify("12345 !!! ---"), Lang::Other);
        // Chinese with some English words is still Chinese.
        assert_eq!(
            identify("使用 Node.js 的 fs 模块读取文件，然后处理数据。"),
            Lang::Zh
        );
    }
}
