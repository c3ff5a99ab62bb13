//! Gopher quality and repetition rules (Rae et al. 2021, "Scaling Language Models: Methods,
//! Analysis & Insights from Training Gopher", appendix A1 and table A1). Thresholds are the
//! paper's, as datatrove's `GopherQualityFilter` and `GopherRepetitionFilter` default them.
//! Words are whitespace-separated (see `text::words`).

use crate::data::text::{HashMap64, HashSet64, char_len, hash64, is_punct, words};

/// Fewest words (not counting words made only of punctuation).
pub const MIN_WORDS: usize = 50;
/// Most words.
pub const MAX_WORDS: usize = 100_000;
/// Mean word length must lie in this range (characters).
pub const MIN_MEAN_WORD_LEN: f64 = 3.0;
pub const MAX_MEAN_WORD_LEN: f64 = 10.0;
/// Most `#` per word, and most ellipses (`...` or `…`) per word.
pub const MAX_SYMBOL_WORD_RATIO: f64 = 0.1;
/// Most lines that start with a bullet (`•` or `-`).
pub const MAX_BULLET_LINES: f64 = 0.9;
/// Most lines that end with an ellipsis.
pub const MAX_ELLIPSIS_LINES: f64 = 0.3;
/// Fewest words that contain a letter.
pub const MIN_ALPHA_WORDS: f64 = 0.8;
/// Fewest distinct stop words from [`STOP_WORDS`] present.
pub const MIN_STOP_WORDS: usize = 2;
pub const STOP_WORDS: &[&str] = &["the", "be", "to", "of", "and", "that", "have", "with"];

/// Most duplicated lines and paragraphs (by count).
pub const MAX_DUP_LINE_FRAC: f64 = 0.3;
pub const MAX_DUP_PARA_FRAC: f64 = 0.3;
/// Most characters in duplicated lines and paragraphs.
pub const MAX_DUP_LINE_CHAR_FRAC: f64 = 0.2;
pub const MAX_DUP_PARA_CHAR_FRAC: f64 = 0.2;
/// Most characters covered by the single most frequent n-gram, for n = 2, 3, 4.
pub const TOP_NGRAM_CHAR_FRAC: [(usize, f64); 3] = [(2, 0.20), (3, 0.18), (4, 0.16)];
/// Most characters in repeated n-grams, for n = 5..10.
pub const DUP_NGRAM_CHAR_FRAC: [(usize, f64); 6] = [
    (5, 0.15),
    (6, 0.14),
    (7, 0.13),
    (8, 0.12),
    (9, 0.11),
    (10, 0.10),
];

/// The Gopher quality rules. `Err` carries the reason.
pub fn quality(text: &str) -> Result<(), &'static str> {
    let mut n_words = 0usize;
    let mut n_real = 0usize;
    let mut real_chars = 0usize;
    let mut alpha = 0usize;
    let mut stop_seen = [false; STOP_WORDS.len()];
    for w in words(text) {
        n_words += 1;
        if w.chars().any(|c| !is_punct(c)) {
            n_real += 1;
            real_chars += char_len(w);
        }
        if w.chars().any(char::is_alphabetic) {
            alpha += 1;
        }
        if let Some(k) = STOP_WORDS.iter().position(|&s| s == w) {
            stop_seen[k] = true;
        }
    }
    if n_real < MIN_WORDS {
        return Err("gopher_short_doc");
    }
    if n_real > MAX_WORDS {
        return Err("gopher_long_doc");
    }
    let mean = real_chars as f64 / n_real as f64;
    if mean < MIN_MEAN_WORD_LEN {
        return Err("gopher_below_avg_word_len");
    }
    if mean > MAX_MEAN_WORD_LEN {
        return Err("gopher_above_avg_word_len");
    }
    let per_word = |n: usize| n as f64 / n_words as f64;
    if per_word(memchr::memchr_iter(b'#', text.as_bytes()).count()) > MAX_SYMBOL_WORD_RATIO {
        return Err("gopher_too_many_hashes");
    }
    if per_word(text.matches("...").count() + text.matches('…').count()) > MAX_SYMBOL_WORD_RATIO {
        return Err("gopher_too_many_ellipsis");
    }
    let (mut lines, mut bullets, mut ellipses) = (0usize, 0usize, 0usize);
    for line in text.lines() {
        lines += 1;
        let l = line.trim_start();
        bullets += usize::from(l.starts_with('•') || l.starts_with('-'));
        let r = line.trim_end();
        ellipses += usize::from(r.ends_with("...") || r.ends_with('…'));
    }
    let lines = lines.max(1) as f64;
    if bullets as f64 / lines > MAX_BULLET_LINES {
        return Err("gopher_too_many_bullets");
    }
    if ellipses as f64 / lines > MAX_ELLIPSIS_LINES {
        return Err("gopher_too_many_end_ellipsis");
    }
    if per_word(alpha) < MIN_ALPHA_WORDS {
        return Err("gopher_below_alpha_threshold");
    }
    if stop_seen.iter().filter(|&&s| s).count() < MIN_STOP_WORDS {
        return Err("gopher_few_stop_words");
    }
    Ok(())
}

/// Count repeated items: (how many are repeats of an earlier one, characters in those repeats).
pub fn find_duplicates<'a>(items: impl Iterator<Item = &'a str>) -> (usize, usize) {
    let mut seen = HashSet64::default();
    let (mut dups, mut chars) = (0, 0);
    for item in items {
        if !seen.insert(hash64(item.as_bytes(), 0)) {
            dups += 1;
            chars += char_len(item);
        }
    }
    (dups, chars)
}

/// Paragraphs: text split at runs of two or more newlines.
pub fn paragraphs(text: &str) -> impl Iterator<Item = &str> {
    text.trim()
        .split("\n\n")
        .filter(|p| !p.is_empty())
        .map(|p| p.trim_matches('\n'))
}

/// Line and paragraph repetition (language independent: shared by the Chinese rules).
pub fn line_repetition(text: &str, total_chars: usize) -> Result<(), &'static str> {
    let total = total_chars.max(1) as f64;
    let n_paras = paragraphs(text).count().max(1);
    let (dup, chars) = find_duplicates(paragraphs(text));
    if dup as f64 / n_paras as f64 > MAX_DUP_PARA_FRAC {
        return Err("gopher_dup_para_frac");
    }
    if chars as f64 / total > MAX_DUP_PARA_CHAR_FRAC {
        return Err("gopher_dup_para_char_frac");
    }
    let lines = || text.split('\n').filter(|l| !l.is_empty());
    let n_lines = lines().count().max(1);
    let (dup, chars) = find_duplicates(lines());
    if dup as f64 / n_lines as f64 > MAX_DUP_LINE_FRAC {
        return Err("gopher_dup_line_frac");
    }
    if chars as f64 / total > MAX_DUP_LINE_CHAR_FRAC {
        return Err("gopher_dup_line_char_frac");
    }
    Ok(())
}

/// The Gopher repetition rules. `Err` carries the reason.
pub fn repetition(text: &str) -> Result<(), &'static str> {
    if text.is_empty() {
        return Err("empty");
    }
    let total = char_len(text);
    line_repetition(text, total)?;
    // Per word: a hash and a length (no vector of the words themselves: keeps a huge document
    // at about 12 bytes per word).
    let (mut hashes, mut lens) = (Vec::new(), Vec::new());
    for w in words(text) {
        hashes.push(hash64(w.as_bytes(), 1));
        lens.push(char_len(w) as u32);
    }
    ngram_repetition(&hashes, &lens, total, true)
}

/// N-gram repetition over tokens given by their hashes and character lengths (words for English,
/// characters for Chinese). `spaced`: n-grams are written with spaces between tokens.
pub fn ngram_repetition(
    hashes: &[u64],
    lens: &[u32],
    total_chars: usize,
    spaced: bool,
) -> Result<(), &'static str> {
    const TOP: [&str; 3] = [
        "gopher_top_2_gram",
        "gopher_top_3_gram",
        "gopher_top_4_gram",
    ];
    const DUP: [&str; 6] = [
        "gopher_dup_5_gram",
        "gopher_dup_6_gram",
        "gopher_dup_7_gram",
        "gopher_dup_8_gram",
        "gopher_dup_9_gram",
        "gopher_dup_10_gram",
    ];
    let total = total_chars.max(1) as f64;
    let sum = |i: usize, n: usize| lens[i..i + n].iter().map(|&l| l as usize).sum::<usize>();
    let gram_len = |i: usize, n: usize| sum(i, n) + if spaced { n - 1 } else { 0 };
    // grams[i] is the hash of the n-gram starting at token i; growing n by one token is one mix
    // per position, so all n from 2 to 10 cost about 9 passes, not 9 × n.
    let mut grams: Vec<u64> = hashes.to_vec();
    let mut n_now = 1;
    let mut grow_to = |grams: &mut Vec<u64>, n: usize| {
        while n_now < n {
            let keep = grams.len().saturating_sub(1);
            for i in 0..keep {
                grams[i] = crate::data::text::fmix64(grams[i].rotate_left(23) ^ hashes[i + n_now]);
            }
            grams.truncate(keep);
            n_now += 1;
        }
    };
    let mut counts: HashMap64<(usize, usize)> = HashMap64::default();
    counts.reserve(hashes.len().min(1 << 16));
    for (k, &(n, frac)) in TOP_NGRAM_CHAR_FRAC.iter().enumerate() {
        grow_to(&mut grams, n);
        if grams.is_empty() {
            continue;
        }
        // count, first position; the most frequent n-gram wins, ties go to the earliest.
        counts.clear();
        for (i, &g) in grams.iter().enumerate() {
            counts.entry(g).or_insert((0, i)).0 += 1;
        }
        let (count, first) = counts
            .values()
            .copied()
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
            .expect("at least one n-gram");
        if (count * gram_len(first, n)) as f64 / total > frac {
            return Err(TOP[k]);
        }
    }
    drop(counts);
    // A repeated n-gram (n >= 5) starts with a repeated 5-gram. Positions whose 5-gram occurs
    // once can never repeat nor be repeated, so they skip the set entirely: in real prose that
    // is most positions, which makes these six passes cheap. The verdicts are unchanged.
    grow_to(&mut grams, DUP_NGRAM_CHAR_FRAC[0].0);
    let mut once: HashMap64<u32> = HashMap64::default();
    once.reserve(grams.len().min(1 << 16));
    for &g in &grams {
        *once.entry(g).or_insert(0) += 1;
    }
    let multi: Vec<bool> = grams.iter().map(|g| once[g] > 1).collect();
    drop(once);
    let mut seen = HashSet64::default();
    for (k, &(n, frac)) in DUP_NGRAM_CHAR_FRAC.iter().enumerate() {
        grow_to(&mut grams, n);
        seen.clear();
        let (mut repeated, mut i) = (0usize, 0usize);
        while i < grams.len() {
            if !multi[i] || seen.insert(grams[i]) {
                i += 1;
            } else {
                // A repeat: count its characters and jump past it, as the paper's code does.
                repeated += sum(i, n);
                i += n;
            }
        }
        if repeated as f64 / total > frac {
            return Err(DUP[k]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "The history of the printing press begins in the fifteenth century, when \
        Johannes Gutenberg combined movable metal type with an oil-based ink and a screw press \
        adapted from the wine makers of the Rhine valley. Within fifty years printers were working \
        in more than two hundred towns across Europe, and the price of a book fell to a fraction \
        of what a copied manuscript had cost. Scholars could now compare identical copies of the \
        same text, which changed how knowledge was checked and shared with others.";

    #[test]
    fn good_prose_passes_both() {
        assert_eq!(quality(GOOD), Ok(()));
        assert_eq!(repetition(GOOD), Ok(()));
    }

    #[test]
    fn quality_failures() {
        assert_eq!(quality("The cat and the dog."), Err("gopher_short_doc"));
        let long_words = "the and ".to_string() + &"incomprehensibilities ".repeat(60);
        assert_eq!(quality(&long_words), Err("gopher_above_avg_word_len"));
        let short_words = "the and ".to_string() + &"a b c ".repeat(30);
        assert_eq!(quality(&short_words), Err("gopher_below_avg_word_len"));
        let hashes = GOOD.to_string() + &" #tag".repeat(20);
        assert_eq!(quality(&hashes), Err("gopher_too_many_hashes"));
        let bullets = "- the item with a few words of text\n".repeat(60);
        assert_eq!(quality(&bullets), Err("gopher_too_many_bullets"));
        let ellipsis = "the story goes on and on with words...\nand then\n".repeat(20);
        assert_eq!(quality(&ellipsis), Err("gopher_too_many_end_ellipsis"));
        let numbers = "the and ".to_string() + &"1234 5678 word ".repeat(30);
        assert_eq!(quality(&numbers), Err("gopher_below_alpha_threshold"));
        let no_stop = "Lorem ipsum dolor sit amet consectetur adipiscing elit sed do. ".repeat(8);
        assert_eq!(quality(&no_stop), Err("gopher_few_stop_words"));
    }

    #[test]
    fn repetition_failures() {
        // A menu repeated five times: 12 of 15 menu lines are repeats.
        let menu = "Home\nAbout us\nContact\n".repeat(5) + GOOD;
        assert_eq!(repetition(&menu), Err("gopher_dup_line_frac"));
        let paras = format!("{GOOD}\n\n{GOOD}\n\nA last short paragraph.");
        assert_eq!(repetition(&paras), Err("gopher_dup_para_frac"));
        // One long paragraph repeated once among many distinct short ones: few repeats by count,
        // many by characters.
        let distinct: String = (0..8)
            .map(|i| format!("Paragraph number {i} is here.\n\n"))
            .collect();
        let para_chars = format!("{distinct}{GOOD}\n\n{GOOD}");
        assert_eq!(repetition(&para_chars), Err("gopher_dup_para_char_frac"));
        let spam = "buy cheap watches now ".repeat(40);
        assert_eq!(repetition(&spam), Err("gopher_top_2_gram"));
        let dup_run = format!(
            "{GOOD} {}",
            "one two three four five six seven eight nine ten eleven twelve ".repeat(4)
        );
        assert!(
            repetition(&dup_run).unwrap_err().starts_with("gopher_dup_"),
            "{:?}",
            repetition(&dup_run)
        );
        assert_eq!(repetition(""), Err("empty"));
    }
}
