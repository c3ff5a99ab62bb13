//! Shards: header, round trips, validation errors; the loader: windows, seeds, save/restore;
//! `tokenize_jsonl`: every document lands in exactly one split, deterministically.

use crate::common::{Draw, Rng, fixture, temp_dir};
use pretrain::dataset::shard::{HEADER_LEN, read_header, write_shard};
use pretrain::dataset::{Loader, TokenizeOptions, read_shard, tokenize_jsonl};
use pretrain::tokenizer::{Split, formats};

#[test]
fn shard_round_trip_u16_and_u32() {
    let dir = temp_dir("shard_round_trip");
    let mut rng = Rng::new(3);
    for (vocab, bytes) in [(300usize, 2u32), (65536, 2), (65537, 4), (100277, 4)] {
        let n = 1 + rng.index(5000);
        let tokens: Vec<u32> = (0..n).map(|_| rng.index(vocab) as u32).collect();
        let path = dir.join(format!("s{vocab}.bin"));
        write_shard(&path, &tokens, vocab).unwrap();
        let (h, back) = read_shard(&path).unwrap();
        assert_eq!(
            (h.token_bytes, h.count, h.vocab_size),
            (bytes, n as u64, vocab as u32)
        );
        assert_eq!(back, tokens);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            (HEADER_LEN + n * bytes as usize) as u64
        );
        assert_eq!(read_header(&path).unwrap(), h);
    }
}

#[test]
fn bad_shards_name_the_file_and_offset() {
    let dir = temp_dir("bad_shards");
    let path = dir.join("train_000000.bin");
    write_shard(&path, &[1, 2, 3, 4], 10).unwrap();
    let good = std::fs::read(&path).unwrap();
    let err_of = |bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        format!("{:#}", read_shard(&path).unwrap_err())
    };
    let mut bad = good.clone();
    bad[0] = b'X';
    let e = err_of(&bad);
    assert!(e.contains("train_000000.bin: offset 0: wrong magic"), "{e}");
    let e = err_of(&good[..good.len() - 1]);
    assert!(
        e.contains("train_000000.bin") && e.contains("truncated"),
        "{e}"
    );
    let e = err_of(&good[..10]);
    assert!(e.contains("truncated header"), "{e}");
    let mut bad = good.clone();
    bad[8] = 9;
    assert!(err_of(&bad).contains("offset 8: version 9"));
    let mut bad = good.clone();
    bad[HEADER_LEN + 4] = 50; // third token = 50 >= vocab 10
    let e = err_of(&bad);
    assert!(
        e.contains(&format!(
            "offset {}: token 50 is not below the vocabulary size 10",
            HEADER_LEN + 4
        )),
        "{e}"
    );
    let e = format!(
        "{:#}",
        Loader::new(&dir, "train", 1, 2, 0, true).err().unwrap()
    );
    assert!(e.contains("train_000000.bin"), "{e}");
}

#[test]
fn sequential_batches_are_consecutive_windows() {
    let tokens: Vec<u32> = (0..100).collect();
    let mut l = Loader::from_tokens(tokens, 100, 2, 8, 0, true).unwrap();
    let (x, y) = l.next_batch();
    assert_eq!(x, (0..8).chain(8..16).collect::<Vec<u32>>());
    assert_eq!(y, (1..9).chain(9..17).collect::<Vec<u32>>());
    // After 6 batches (96 tokens of stride) it wraps to the start.
    for _ in 0..5 {
        l.next_batch();
    }
    let (x, _) = l.next_batch();
    assert_eq!(&x[..8], &(0..8).collect::<Vec<u32>>()[..]);
    assert_eq!(l.position().epoch, 1);
}

#[test]
fn random_batches_are_seeded_and_restorable() {
    let mut rng = Rng::new(11);
    let tokens: Vec<u32> = (0..10_000).map(|_| rng.index(500) as u32).collect();
    for sequential in [false, true] {
        let mut a = Loader::from_tokens(tokens.clone(), 500, 4, 33, 42, sequential).unwrap();
        let mut b = Loader::from_tokens(tokens.clone(), 500, 4, 33, 42, sequential).unwrap();
        for _ in 0..7 {
            assert_eq!(a.next_batch(), b.next_batch());
        }
        let saved = a.position();
        let json = serde_json::to_string(&saved).unwrap();
        let want: Vec<_> = (0..20).map(|_| a.next_batch()).collect();
        let mut c = Loader::from_tokens(tokens.clone(), 500, 4, 33, 42, sequential).unwrap();
        c.restore(serde_json::from_str(&json).unwrap()).unwrap();
        let got: Vec<_> = (0..20).map(|_| c.next_batch()).collect();
        assert_eq!(got, want);
        for (x, y) in &got {
            assert_eq!(x.len(), 4 * 33);
            assert_eq!(&x[1..33], &y[..32]);
        }
    }
    let mut d = Loader::from_tokens(tokens, 500, 4, 33, 43, false).unwrap();
    let mut e = Loader::from_tokens(
        (0..10_000).map(|i| i % 500).collect(),
        500,
        4,
        33,
        42,
        false,
    )
    .unwrap();
    assert_ne!(d.next_batch().0, e.next_batch().0);
    assert!(Loader::from_tokens(vec![1, 2, 3], 5, 1, 3, 0, true).is_err());
}

#[test]
fn tokenize_jsonl_splits_documents_deterministically() {
    let tok_dir = temp_dir("tokenize_jsonl_tok");
    let opts = pretrain::tokenizer::TrainOptions {
        vocab_size: 500,
        specials: vec![],
        split: Split::Gpt2,
        progress: false,
    };
    let tok = pretrain::tokenizer::train(&crate::common::sample_text(), &opts).unwrap();
    formats::save_dir(&tok_dir, &tok).unwrap();
    let input = fixture("tokenizer/docs.jsonl");
    let docs: Vec<String> = std::fs::read_to_string(&input)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let run = |name: &str, seed: u64| {
        let out = temp_dir(name);
        let mut t = formats::load(&tok_dir, None).unwrap();
        let o = TokenizeOptions {
            val_fraction: 0.2,
            seed,
            shard_tokens: 1000,
            max_docs: None,
        };
        let s = tokenize_jsonl(&mut t, std::slice::from_ref(&input), &out, &o).unwrap();
        (out, s, t)
    };
    let (out, s, t) = run("tokenize_jsonl_a", 7);
    assert_eq!(t.special_id("<|endoftext|>"), Some(500)); // added at the end
    assert_eq!(s.vocab_size, 501);
    assert!(
        s.train_shards.len() >= 2,
        "shards roll over every 1000 tokens"
    );
    assert_eq!(s.train_docs + s.val_docs, docs.len() as u64);
    assert!(s.val_docs > 0);
    // Decode both splits back into documents: together they are the input, each once, in order.
    let mut seen = Vec::new();
    for split in ["train", "val"] {
        let l = Loader::new(&out, split, 1, 1, 0, true).unwrap();
        assert_eq!(
            l.tokens()[0],
            500,
            "each document starts with <|endoftext|>"
        );
        let parts: Vec<String> = l.tokens()[1..]
            .split(|&id| id == 500)
            .map(|p| t.decode(p).unwrap())
            .collect();
        assert_eq!(
            parts.len() as u64,
            if split == "train" {
                s.train_docs
            } else {
                s.val_docs
            }
        );
        seen.extend(parts);
    }
    let mut want = docs.clone();
    want.sort();
    seen.sort();
    assert_eq!(seen, want);
    // Same seed: identical bytes. Another seed: another split.
    let (out2, _, _) = run("tokenize_jsonl_b", 7);
    for f in s.train_shards.iter().chain(&s.val_shards) {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(out2.join(f)).unwrap()
        );
    }
    let (_, s3, _) = run("tokenize_jsonl_c", 8);
    assert_ne!(
        (s3.train_tokens, s3.val_tokens),
        (s.train_tokens, s.val_tokens)
    );
    // The tokenizer is saved beside the shards.
    let again = formats::load(&out.join("tokenizer.json"), None).unwrap();
    assert_eq!(again.special_id("<|endoftext|>"), Some(500));
}

#[test]
fn bad_jsonl_names_file_and_line() {
    let dir = temp_dir("bad_jsonl");
    let input = dir.join("bad.jsonl");
    std::fs::write(&input, "{\"text\": \"ok\"}\n{\"txt\": 1}\n").unwrap();
    let mut t =
        formats::tiktoken::read(&fixture("tokenizer/r50k_base.tiktoken"), Split::Gpt2).unwrap();
    let o = TokenizeOptions {
        val_fraction: 0.1,
        seed: 0,
        shard_tokens: 1000,
        max_docs: None,
    };
    let e = format!(
        "{:#}",
        tokenize_jsonl(&mut t, &[input], &dir.join("out"), &o).unwrap_err()
    );
    assert!(e.contains("bad.jsonl: line 2"), "{e}");
}
