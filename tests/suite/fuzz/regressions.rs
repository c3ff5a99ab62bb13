//! The smallest inputs of the bugs fuzzing found (and of the blind allocations it looks for),
//! each with the error it must now give.

use super::check;
use crate::common::{fixture, temp_dir};
use pretrain::tokenizer::Split;
use pretrain::tokenizer::formats::{gpt2, hf_json};

/// The error `read` gives for `input`, checked to be one line and not a panic or an
/// allocation above the bound.
fn error_of(what: &str, input: &[u8], read: impl Fn(&[u8]) -> anyhow::Result<()>) -> String {
    let mut message = None;
    check(what, input, |b| {
        let e = read(b).err();
        message = e.as_ref().map(|e| format!("{e:#}"));
        e.map_or(Ok(()), Err)
    });
    message.unwrap_or_else(|| panic!("{what}: loaded, expected an error"))
}

#[test]
fn vocab_json_with_one_huge_id_is_an_error() {
    let dir = temp_dir("regress-vocab-huge-id");
    let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
    std::fs::write(&merges, "#version: 0.2\n").unwrap();
    let err = error_of("vocab.json", br#"{"a": 4000000000}"#, |b| {
        std::fs::write(&vocab, b)?;
        gpt2::read(&vocab, &merges, Split::Gpt2).map(|_| ())
    });
    assert!(
        err.contains("id 4000000000 is too large for 1 tokens"),
        "{err}"
    );
}

#[test]
fn tokenizer_json_with_one_huge_id_is_an_error() {
    let dir = temp_dir("regress-hf-huge-id");
    let path = dir.join("tokenizer.json");
    for (input, id) in [
        (r#"{"model": {"vocab": {"a": 4000000000}}}"#, "4000000000"),
        (
            r#"{"added_tokens": [{"id": 18446744073709551615, "content": "x"}], "model": {"vocab": {}}}"#,
            "18446744073709551615",
        ),
    ] {
        let err = error_of("tokenizer.json", input.as_bytes(), |b| {
            std::fs::write(&path, b)?;
            hf_json::read(&path).map(|_| ())
        });
        assert!(err.contains(&format!("id {id} is too large")), "{err}");
    }
}

#[test]
fn a_config_json_with_more_layers_than_the_file_holds_is_an_error() {
    let dir = temp_dir("regress-config-layers");
    let weights = fixture("gpt2_tiny/model.safetensors");
    let path = dir.join("config.json");
    let input = br#"{"n_layer": 100000000000000, "n_head": 2, "n_embd": 16, "n_positions": 16, "vocab_size": 67}"#;
    let err = error_of("config.json", input, |b| {
        std::fs::write(&path, b)?;
        let config = pretrain::model::config::GptConfig::from_hf_json(&path)?;
        pretrain::model::checkpoint::load_gpt2_params(&weights, &config).map(|_| ())
    });
    assert!(
        err.contains("config.json says 100000000000000 layers"),
        "{err}"
    );
}

#[test]
fn a_config_json_whose_parameter_count_overflows_is_an_error() {
    let dir = temp_dir("regress-config-overflow");
    let path = dir.join("config.json");
    let input =
        br#"{"n_layer": 1, "n_head": 1, "n_embd": 4294967296, "n_positions": 1, "vocab_size": 1}"#;
    let err = error_of("config.json", input, |b| {
        std::fs::write(&path, b)?;
        pretrain::model::config::GptConfig::from_hf_json(&path).map(|_| ())
    });
    assert!(
        err.contains("more parameters than a usize can count"),
        "{err}"
    );
}

/// A shard header: u32 tokens, `count` of them, a vocabulary of `vocab`.
fn shard_header(token_bytes: u32, count: u64, vocab: u32) -> Vec<u8> {
    let mut h = b"PRETOKEN".to_vec();
    h.extend(1u32.to_le_bytes());
    h.extend(token_bytes.to_le_bytes());
    h.extend(count.to_le_bytes());
    h.extend(vocab.to_le_bytes());
    h.extend(0u32.to_le_bytes());
    h
}

#[test]
fn a_shard_header_with_a_huge_vocabulary_is_an_error() {
    let dir = temp_dir("regress-shard-vocab");
    let path = dir.join("train_000.bin");
    for (bytes, vocab, want) in [
        (4, 1u32 << 31, "16777216"),
        (2, 70_000, "65536"),
        (2, 0, "65536"),
    ] {
        let err = error_of("shard", &shard_header(bytes, 0, vocab), |b| {
            std::fs::write(&path, b)?;
            pretrain::dataset::shard::read_header(&path).map(|_| ())
        });
        let expect = format!("offset 24: vocabulary size {vocab}, expected 1 to {want}");
        assert!(err.contains(&expect), "{err}");
    }
}

#[test]
fn a_shard_header_promising_more_tokens_than_the_file_holds_is_an_error() {
    let dir = temp_dir("regress-shard-count");
    let path = dir.join("train_000.bin");
    let err = error_of("shard", &shard_header(4, u64::MAX / 2, 300), |b| {
        std::fs::write(&path, b)?;
        pretrain::dataset::shard::read_header(&path).map(|_| ())
    });
    assert!(
        err.contains("file is 32 bytes but the header promises"),
        "{err}"
    );
}

/// A `tokenizer.json` with the 256 byte tokens and `added_tokens` as given.
fn byte_level_tokenizer_json(added: serde_json::Value) -> Vec<u8> {
    let table = gpt2::bytes_to_unicode();
    let vocab: serde_json::Map<String, serde_json::Value> = (0..256)
        .map(|b| (table[b].to_string(), serde_json::json!(b)))
        .collect();
    let doc = serde_json::json!({"added_tokens": added, "model": {"vocab": vocab, "merges": []}});
    serde_json::to_vec(&doc).unwrap()
}

#[test]
fn an_empty_special_token_is_an_error_not_an_endless_encode() {
    // Encoding stopped at an empty special token forever, growing its output without end.
    let dir = temp_dir("regress-empty-special");
    let path = dir.join("tokenizer.json");
    let input = byte_level_tokenizer_json(serde_json::json!([{"id": 256, "content": ""}]));
    let err = error_of("tokenizer.json", &input, |b| {
        std::fs::write(&path, b)?;
        let tok = hf_json::read(&path)?;
        tok.encode("ab", pretrain::tokenizer::Specials::Allow)?;
        Ok(())
    });
    assert!(err.contains("special token 256 is empty"), "{err}");
}

#[test]
fn a_shard_is_not_written_for_a_vocabulary_the_reader_refuses() {
    let dir = temp_dir("regress-shard-write-vocab");
    let path = dir.join("train_000.bin");
    let huge = pretrain::dataset::shard::MAX_VOCAB as usize + 1;
    for vocab in [0, huge] {
        let err = pretrain::dataset::shard::write_shard(&path, &[], vocab).unwrap_err();
        let want = format!("vocabulary size {vocab}, expected 1 to 16777216");
        assert!(err.to_string().contains(&want), "{err}");
        assert!(!path.exists());
    }
}
