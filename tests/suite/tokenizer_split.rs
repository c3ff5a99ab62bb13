//! The hand-written split patterns must cut every input exactly as tiktoken's regex does.
//! The oracle is `fancy-regex` with tiktoken's pattern strings (what tiktoken itself runs).

use crate::common::{Rng, corpus_texts, random_text, sample_text};
use pretrain::tokenizer::Split;

fn oracle(split: Split, text: &str) -> Vec<String> {
    thread_local! {
        static RE: [fancy_regex::Regex; 2] = [
            fancy_regex::Regex::new(Split::Gpt2.pattern()).unwrap(),
            fancy_regex::Regex::new(Split::Gpt4.pattern()).unwrap(),
        ];
    }
    RE.with(|re| {
        let re = &re[(split == Split::Gpt4) as usize];
        re.find_iter(text)
            .map(|m| m.unwrap().as_str().to_string())
            .collect()
    })
}

fn check(split: Split, text: &str) {
    let ours: Vec<&str> = split.pieces(text).collect();
    let want = oracle(split, text);
    assert_eq!(ours, want, "{split:?} split differs on {text:?}");
}

#[test]
fn patterns_match_tiktoken_strings() {
    // The pattern strings tiktoken-rs uses for r50k_base and cl100k_base.
    let src = include_str!("../fixtures/tokenizer/patterns.txt");
    let mut lines = src.lines().filter(|l| !l.starts_with('#'));
    assert_eq!(lines.next(), Some(Split::Gpt2.pattern()));
    assert_eq!(lines.next(), Some(Split::Gpt4.pattern()));
}

#[test]
fn splits_random_unicode_like_tiktoken() {
    let mut rng = Rng::new(0x9E3779B97F4A7C15);
    for _ in 0..30_000 {
        let text = random_text(&mut rng, 24);
        check(Split::Gpt2, &text);
        check(Split::Gpt4, &text);
    }
}

#[test]
fn splits_sample_text_like_tiktoken() {
    let text = sample_text();
    check(Split::Gpt2, &text);
    check(Split::Gpt4, &text);
    for line in text.lines() {
        check(Split::Gpt2, line);
        check(Split::Gpt4, line);
    }
}

#[test]
fn splits_edge_cases_like_tiktoken() {
    for text in [
        "",
        " ",
        "  ",
        "\n",
        "a",
        "'",
        "''s",
        "don't",
        "DON'T",
        "I'LL",
        "we'Re",
        "'ſ",
        "a  b",
        "a \n b",
        "a\t\tb",
        "x  \n\n y",
        "  ",
        "\r\n\r\n",
        "1234567",
        " 1234",
        "!!!\n\n",
        ". \n",
        "$100.50",
        "hello   ",
        "中文，中文。\n",
        "e\u{301}",
        "  \u{A0}a",
        "\u{3000}文",
    ] {
        check(Split::Gpt2, text);
        check(Split::Gpt4, text);
    }
}

#[test]
fn safe_cut_keeps_the_split() {
    let text = sample_text();
    for split in [Split::Gpt2, Split::Gpt4] {
        let whole: Vec<&str> = split.pieces(&text).collect();
        let mut parts = Vec::new();
        let mut rest = text.as_str();
        while let Some(c) = pretrain::tokenizer::pretokenize::safe_cut(rest, 200) {
            parts.extend(split.pieces(&rest[..c]));
            rest = &rest[c..];
        }
        parts.extend(split.pieces(rest));
        assert_eq!(whole, parts);
    }
}

#[test]
fn splits_bundled_corpus_like_tiktoken() {
    // Runs where the checkout has the bundled corpus (data/raw, from the clean stage).
    for (name, text) in corpus_texts() {
        for split in [Split::Gpt2, Split::Gpt4] {
            let ours: Vec<&str> = split.pieces(&text).collect();
            assert!(
                ours == oracle(split, &text),
                "{split:?} split differs on {name}"
            );
        }
    }
}
