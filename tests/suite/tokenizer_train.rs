//! Training must produce exactly the merges of a plain reference trainer that recounts every pair
//! after each merge (slow, obviously right), with the same tie-break rule.

use crate::common::{Draw, Rng, random_text, sample_text, temp_dir};
use pretrain::tokenizer::{Specials, Split, TrainOptions, formats, train};
use std::collections::HashMap;

/// The reference: words from the same pre-tokenizer, full recount per merge.
fn reference_merges(
    text: &str,
    split: Split,
    specials: &[String],
    n_merges: usize,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    for part in pretrain::tokenizer::train::split_on_specials(text, specials) {
        for p in split.pieces(part) {
            *counts.entry(p.to_string()).or_default() += 1;
        }
    }
    let mut words: Vec<(Vec<Vec<u8>>, u64)> = counts
        .into_iter()
        .map(|(w, c)| (w.bytes().map(|b| vec![b]).collect(), c))
        .collect();
    let mut merges = Vec::new();
    while merges.len() < n_merges {
        let mut pairs: HashMap<(Vec<u8>, Vec<u8>), u64> = HashMap::new();
        for (w, c) in &words {
            for p in w.windows(2) {
                *pairs.entry((p[0].clone(), p[1].clone())).or_default() += c;
            }
        }
        // Most frequent; ties to the greatest (left bytes, right bytes).
        let Some((best, _)) = pairs
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)))
        else {
            break;
        };
        for (w, _) in &mut words {
            let mut out = Vec::new();
            let mut i = 0;
            while i < w.len() {
                if i + 1 < w.len() && w[i] == best.0 && w[i + 1] == best.1 {
                    out.push([best.0.clone(), best.1.clone()].concat());
                    i += 2;
                } else {
                    out.push(w[i].clone());
                    i += 1;
                }
            }
            *w = out;
        }
        merges.push(best);
    }
    merges
}

fn check(text: &str, split: Split, specials: &[&str], vocab_size: usize) {
    let specials: Vec<String> = specials.iter().map(|s| s.to_string()).collect();
    let opts = TrainOptions {
        vocab_size,
        specials: specials.clone(),
        split,
        progress: false,
    };
    let tok = train(text, &opts).unwrap();
    let ours: Vec<(Vec<u8>, Vec<u8>)> = tok
        .merges()
        .iter()
        .map(|&(a, b, _)| {
            (
                tok.token_bytes(a).unwrap().to_vec(),
                tok.token_bytes(b).unwrap().to_vec(),
            )
        })
        .collect();
    let want = reference_merges(text, split, &specials, vocab_size - 256 - specials.len());
    assert_eq!(ours.len(), want.len(), "number of merges");
    for (i, (o, w)) in ours.iter().zip(&want).enumerate() {
        assert_eq!(o, w, "merge {i} differs ({split:?}, vocab {vocab_size})");
    }
    for (k, s) in specials.iter().enumerate() {
        assert_eq!(tok.special_id(s), Some((256 + want.len() + k) as u32));
    }
}

#[test]
fn merges_equal_reference_on_sample_text() {
    let text = sample_text();
    check(&text, Split::Gpt2, &[], 256 + 300);
    check(&text, Split::Gpt4, &["<|endoftext|>"], 256 + 1 + 300);
}

#[test]
fn merges_equal_reference_on_random_text() {
    let mut rng = Rng::new(99);
    for round in 0..20 {
        let text: String = (0..30)
            .map(|_| random_text(&mut rng, 12))
            .collect::<Vec<_>>()
            .join(" ");
        let split = if round % 2 == 0 {
            Split::Gpt2
        } else {
            Split::Gpt4
        };
        check(&text, split, &["<|endoftext|>"], 256 + 1 + 60);
    }
}

#[test]
fn ties_go_to_the_greatest_pair() {
    // "ab" and "cd" both occur twice; (c, d) > (a, b) so it merges first.
    check("ab cd ab cd", Split::Gpt2, &[], 256 + 4);
    let opts = TrainOptions {
        vocab_size: 257,
        specials: vec![],
        split: Split::Gpt2,
        progress: false,
    };
    let tok = train("abab cdcd", &opts).unwrap();
    assert_eq!(tok.token_bytes(256).unwrap(), b"cd");
}

#[test]
fn special_tokens_never_merge_and_encode() {
    let text = "<|endoftext|>hello<|endoftext|>hello<|endoftext|>";
    let opts = TrainOptions {
        vocab_size: 256 + 1 + 10,
        specials: vec!["<|endoftext|>".into()],
        split: Split::Gpt2,
        progress: false,
    };
    let tok = train(text, &opts).unwrap();
    for i in 256..tok.vocab_size() as u32 {
        let b = tok.token_bytes(i).unwrap();
        assert!(
            !b.contains(&b'|') || tok.is_special(i),
            "{:?}",
            String::from_utf8_lossy(b)
        );
    }
    let ids = tok.encode(text, Specials::Allow).unwrap();
    assert_eq!(ids.iter().filter(|&&i| tok.is_special(i)).count(), 3);
    assert_eq!(tok.decode(&ids).unwrap(), text);
}

#[test]
fn bad_options_are_clear_errors() {
    let opts = TrainOptions {
        vocab_size: 256,
        specials: vec!["<|endoftext|>".into()],
        split: Split::Gpt2,
        progress: false,
    };
    let err = train("hello", &opts).unwrap_err().to_string();
    assert!(err.contains("below 256"), "{err}");
    let opts = TrainOptions {
        vocab_size: 300,
        specials: vec![],
        split: Split::Gpt2,
        progress: false,
    };
    assert!(train("", &opts).unwrap_err().to_string().contains("empty"));
}

#[test]
fn trained_tokenizer_roundtrips_and_reloads() {
    let text = sample_text();
    let opts = TrainOptions {
        vocab_size: 256 + 1 + 400,
        specials: vec!["<|endoftext|>".into()],
        split: Split::Gpt4,
        progress: false,
    };
    let tok = train(&text, &opts).unwrap();
    let dir = temp_dir("trained_tokenizer_roundtrips");
    formats::save_dir(&dir, &tok).unwrap();
    // tokenizer.json, then vocab.json + merges.txt alone, then a .tiktoken file.
    let a = formats::load(&dir, None).unwrap();
    assert_eq!(a.split(), Split::Gpt4);
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    let b = formats::load(&dir, Some(Split::Gpt4)).unwrap();
    formats::tiktoken::write(&dir.join("ours.tiktoken"), &tok).unwrap();
    let c = formats::load(&dir.join("ours.tiktoken"), Some(Split::Gpt4)).unwrap();
    let mut rng = Rng::new(5);
    for _ in 0..500 {
        let s = random_text(&mut rng, 30);
        let ids = tok.encode_ordinary(&s);
        assert_eq!(tok.decode(&ids).unwrap(), s);
        assert_eq!(a.encode_ordinary(&s), ids);
        assert_eq!(b.encode_ordinary(&s), ids);
        assert_eq!(c.encode_ordinary(&s), ids);
    }
    assert_eq!(a.merges(), tok.merges());
    assert_eq!(b.merges(), tok.merges());
    assert_eq!(
        a.special_id("<|endoftext|>"),
        tok.special_id("<|endoftext|>")
    );
    assert_eq!(
        b.special_id("<|endoftext|>"),
        tok.special_id("<|endoftext|>")
    );
}

#[test]
fn corrupt_files_name_file_and_line() {
    let dir = temp_dir("corrupt_files");
    let tok = train(
        &sample_text(),
        &TrainOptions {
            vocab_size: 300,
            specials: vec![],
            split: Split::Gpt2,
            progress: false,
        },
    )
    .unwrap();
    formats::save_dir(&dir, &tok).unwrap();
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    let merges = std::fs::read_to_string(dir.join("merges.txt")).unwrap();
    let broken = merges.replacen('\n', "\nnotatoken ZZZ\n", 2);
    std::fs::write(dir.join("merges.txt"), broken).unwrap();
    let err = format!("{:#}", formats::load(&dir, None).unwrap_err());
    assert!(
        err.contains("merges.txt: line 2") || err.contains("merges.txt: line 3"),
        "{err}"
    );
    std::fs::write(dir.join("vocab.json"), "{\"a\": 0,").unwrap();
    let err = format!("{:#}", formats::load(&dir, None).unwrap_err());
    assert!(
        err.contains("vocab.json") && err.contains("line 1"),
        "{err}"
    );
    let tk = dir.join("bad.tiktoken");
    std::fs::write(&tk, "YQ== 0\n!!! 1\n").unwrap();
    let err = format!("{:#}", formats::load(&tk, None).unwrap_err());
    assert!(err.contains("bad.tiktoken: line 2"), "{err}");
    let err = format!(
        "{:#}",
        formats::load(&dir.join("missing"), None).unwrap_err()
    );
    assert!(err.contains("missing: no such file"), "{err}");
}

#[test]
fn parallel_counting_equals_sequential() {
    // About 1.2 MB: several 256 KB chunks counted on different threads.
    let text = sample_text().repeat(200);
    let specials = vec!["<|endoftext|>".to_string()];
    for split in [Split::Gpt2, Split::Gpt4] {
        let got = pretrain::tokenizer::train::count_pretokens(&text, split, &specials);
        let mut want: HashMap<String, u64> = HashMap::new();
        for part in text.split("<|endoftext|>") {
            for p in split.pieces(part) {
                *want.entry(p.to_string()).or_default() += 1;
            }
        }
        assert_eq!(got.len(), want.len());
        for (k, v) in &want {
            assert_eq!(got.get(k), Some(v), "{k:?}");
        }
    }
}

#[test]
fn stream_counter_equals_whole_text() {
    // About 9 MB in random pieces: the counter flushes (at 8 MB) at a safe cut.
    let text = sample_text().repeat(1500);
    let specials = vec!["<|endoftext|>".to_string()];
    let mut counter = pretrain::tokenizer::train::StreamCounter::new(Split::Gpt4, &specials);
    let mut rng = Rng::new(21);
    let mut pos = 0;
    while pos < text.len() {
        let mut end = (pos + 1 + rng.index(300_000)).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        counter.push(&text[pos..end]);
        pos = end;
    }
    let got = counter.finish();
    let want = pretrain::tokenizer::train::count_pretokens(&text, Split::Gpt4, &specials);
    assert_eq!(got, want);
}
