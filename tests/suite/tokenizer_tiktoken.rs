//! Our encoder must give exactly tiktoken's ids for r50k_base (GPT-2) and cl100k_base (GPT-4).
//! The oracle is `tiktoken-rs`; the rank files are vendored in `tests/fixtures/tokenizer/`.

use crate::common::{Rng, corpus_texts, fixture, random_text, sample_text};
use pretrain::tokenizer::{Specials, Split, Tokenizer, formats};
use std::sync::OnceLock;

fn r50k() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        formats::tiktoken::read(&fixture("tokenizer/r50k_base.tiktoken"), Split::Gpt2).unwrap()
    })
}

fn cl100k() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        formats::tiktoken::read(&fixture("tokenizer/cl100k_base.tiktoken"), Split::Gpt4).unwrap()
    })
}

fn oracles() -> &'static (tiktoken_rs::CoreBPE, tiktoken_rs::CoreBPE) {
    static T: OnceLock<(tiktoken_rs::CoreBPE, tiktoken_rs::CoreBPE)> = OnceLock::new();
    T.get_or_init(|| {
        (
            tiktoken_rs::r50k_base().unwrap(),
            tiktoken_rs::cl100k_base().unwrap(),
        )
    })
}

fn check(text: &str) {
    let (o50, o100) = oracles();
    let want: Vec<u32> = o50.encode_ordinary(text);
    assert_eq!(
        r50k().encode_ordinary(text),
        want,
        "r50k ids differ on {text:?}"
    );
    let want: Vec<u32> = o100.encode_ordinary(text);
    assert_eq!(
        cl100k().encode_ordinary(text),
        want,
        "cl100k ids differ on {text:?}"
    );
}

#[test]
fn same_ids_as_tiktoken_on_sample_text() {
    let text = sample_text();
    check(&text);
    for line in text.lines() {
        check(line);
    }
}

#[test]
fn same_ids_as_tiktoken_on_random_text() {
    let mut rng = Rng::new(12345);
    for _ in 0..3000 {
        check(&random_text(&mut rng, 40));
    }
}

#[test]
fn same_ids_on_long_pieces() {
    // Long pre-tokens take the heap-based merge path.
    check(&"中文分词效率".repeat(40));
    check(&"abcdefghij".repeat(30));
    check(&"!?".repeat(100));
    check(&" ".repeat(300));
    check(&"ab".repeat(500));
}

#[test]
fn gpt2_files_equal_r50k() {
    let dir = fixture("tokenizer");
    let gpt2 = formats::gpt2::read(
        &dir.join("encoder.json"),
        &dir.join("vocab.bpe"),
        Split::Gpt2,
    )
    .unwrap();
    assert_eq!(gpt2.vocab_size(), 50257);
    assert_eq!(gpt2.special_id("<|endoftext|>"), Some(50256));
    let text = sample_text();
    assert_eq!(gpt2.encode_ordinary(&text), r50k().encode_ordinary(&text));
}

#[test]
fn special_tokens_allowed_refused_or_text() {
    let t = cl100k();
    let text = "hi<|endoftext|>there";
    let ids = t.encode(text, Specials::Allow).unwrap();
    assert!(ids.contains(&100257));
    let (_, o100) = oracles();
    assert_eq!(ids, o100.encode_with_special_tokens(text));
    let err = t.encode(text, Specials::Refuse).unwrap_err().to_string();
    assert!(
        err.contains("<|endoftext|>") && err.contains("byte 2"),
        "{err}"
    );
    assert!(!t.encode(text, Specials::AsText).unwrap().contains(&100257));
}

#[test]
fn roundtrip_any_text() {
    let mut rng = Rng::new(777);
    for t in [r50k(), cl100k()] {
        for _ in 0..2000 {
            let text = random_text(&mut rng, 40);
            let ids = t.encode(&text, Specials::Allow).unwrap();
            assert_eq!(t.decode(&ids).unwrap(), text);
        }
    }
}

#[test]
fn streaming_equals_whole() {
    let text = sample_text().repeat(400); // about 2.4 MB, several blocks
    let t = r50k();
    let mut ids = Vec::new();
    let n = t
        .encode_stream(text.as_bytes(), Specials::AsText, |chunk| {
            ids.extend_from_slice(chunk)
        })
        .unwrap();
    assert_eq!(n as usize, text.len());
    assert_eq!(ids, t.encode_ordinary(&text));
    let err = t
        .encode_stream(&b"ok\xFFbad"[..], Specials::AsText, |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("byte 2"), "{err}");
}

#[test]
fn batch_equals_one_by_one() {
    let text = sample_text();
    let lines: Vec<&str> = text.lines().collect();
    let batch = cl100k().encode_batch(&lines);
    for (line, ids) in lines.iter().zip(&batch) {
        assert_eq!(&cl100k().encode_ordinary(line), ids);
    }
}

#[test]
fn same_ids_as_tiktoken_on_bundled_corpus() {
    // Runs where the checkout has the bundled corpus (data/raw, from the clean stage).
    let texts = corpus_texts();
    if texts.is_empty() {
        crate::common::skip(
            "same_ids_as_tiktoken_on_bundled_corpus",
            "data/raw not found",
        );
        return;
    }
    for (name, text) in &texts {
        let (o50, o100) = oracles();
        assert!(
            r50k().encode_ordinary(text) == o50.encode_ordinary(text),
            "r50k ids differ on {name}"
        );
        assert!(
            cl100k().encode_ordinary(text) == o100.encode_ordinary(text),
            "cl100k ids differ on {name}"
        );
    }
}

#[test]
fn stream_decoder_equals_decode() {
    use pretrain::tokenizer::StreamDecoder;
    let mut rng = Rng::new(31);
    for t in [r50k(), cl100k()] {
        for _ in 0..500 {
            let text = random_text(&mut rng, 30) + "中文分词🙂";
            let ids = t.encode_ordinary(&text);
            let mut d = StreamDecoder::new();
            let mut out = String::new();
            for &id in &ids {
                out.push_str(&d.push(t, id).unwrap());
            }
            out.push_str(&d.finish());
            assert_eq!(out, text);
        }
    }
    // GPT-2 splits 你 into two tokens: nothing comes out until the second.
    let t = r50k();
    let ids = t.encode_ordinary("你");
    assert_eq!(ids.len(), 2);
    let mut d = StreamDecoder::new();
    assert_eq!(d.push(t, ids[0]).unwrap(), "");
    assert_eq!(d.push(t, ids[1]).unwrap(), "你");
}

#[test]
fn reads_gpt2_style_tokenizer_json() {
    // Built like HF's gpt2 tokenizer.json: GPT-2's vocab (with <|endoftext|> in it and in
    // added_tokens), "A B" merges, and a ByteLevel pre-tokenizer with its built-in regex.
    let dir = fixture("tokenizer");
    let vocab: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("encoder.json")).unwrap()).unwrap();
    let merges: Vec<String> = std::fs::read_to_string(dir.join("vocab.bpe"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("#version") && !l.is_empty())
        .map(String::from)
        .collect();
    let doc = serde_json::json!({
        "added_tokens": [{"id": 50256, "content": "<|endoftext|>", "special": true}],
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "vocab": vocab, "merges": merges}
    });
    let path = crate::common::temp_dir("gpt2_tokenizer_json").join("tokenizer.json");
    std::fs::write(&path, serde_json::to_string(&doc).unwrap()).unwrap();
    let t = formats::load(&path, None).unwrap();
    assert_eq!(t.split(), Split::Gpt2);
    assert_eq!(t.special_id("<|endoftext|>"), Some(50256));
    let text = sample_text();
    assert_eq!(
        t.encode(&text, Specials::Allow).unwrap(),
        r50k().encode(&text, Specials::Allow).unwrap()
    );
}
