//! The tokenizer files: `vocab.json` + `merges.txt`, `encoder.json` + `vocab.bpe`,
//! `tokenizer.json` and `.tiktoken`. The valid files are those of a small trained tokenizer (so
//! an input is a few kilobytes); a tokenizer that loads must also encode and decode.

use super::mutate::{Kind, damage, mutate};
use super::{check, each_input, iters};
use crate::common::{Draw, Rng, fixture, sample_text, temp_dir};
use pretrain::tokenizer::formats::{self, gpt2, hf_json, tiktoken};
use pretrain::tokenizer::{ENDOFTEXT, Specials, Split, Tokenizer, TrainOptions, train};
use std::path::Path;

/// A 300-token tokenizer trained on the sample text, with `<|endoftext|>`.
pub(super) fn small_tokenizer() -> Tokenizer {
    let opts = TrainOptions {
        vocab_size: 300,
        specials: vec![ENDOFTEXT.to_string()],
        split: Split::Gpt2,
        progress: false,
    };
    train(&sample_text(), &opts).unwrap()
}

/// A loaded tokenizer must work: encode text with specials, decode what it made.
fn exercise(tok: &Tokenizer) -> anyhow::Result<()> {
    let ids = tok.encode("Hello world <|endoftext|> 你好, don't 123", Specials::Allow)?;
    tok.decode_bytes(&ids)?;
    Ok(())
}

/// The files `tok` is written as: (name, bytes) for each format.
fn valid_files(dir: &Path, tok: &Tokenizer) -> Vec<(&'static str, Vec<u8>)> {
    formats::save_dir(dir, tok).unwrap();
    tiktoken::write(&dir.join("t.tiktoken"), tok).unwrap();
    ["vocab.json", "merges.txt", "tokenizer.json", "t.tiktoken"]
        .into_iter()
        .map(|name| (name, std::fs::read(dir.join(name)).unwrap()))
        .collect()
}

#[test]
fn vocab_json_and_merges_txt_load_or_refuse() {
    let dir = temp_dir("fuzz-gpt2-files");
    let files = valid_files(&dir.join("valid"), &small_tokenizer());
    let (vocab, merges) = (&files[0].1, &files[1].1);
    each_input("vocab.json + merges.txt", 21, |rng, what| {
        // Damage one file of the pair; read them under both names GPT-2 used.
        let which = rng.index(2);
        let input = if which == 0 {
            damage(rng, vocab, Kind::Json)
        } else {
            damage(rng, merges, Kind::Lines)
        };
        let (v_name, m_name) = if rng.index(2) == 0 {
            ("vocab.json", "merges.txt")
        } else {
            ("encoder.json", "vocab.bpe")
        };
        let case = dir.join("case");
        check(what, &input, |b| {
            let _ = std::fs::remove_dir_all(&case);
            std::fs::create_dir_all(&case)?;
            let (v, m) = if which == 0 {
                (b, &merges[..])
            } else {
                (&vocab[..], b)
            };
            std::fs::write(case.join(v_name), v)?;
            std::fs::write(case.join(m_name), m)?;
            exercise(&gpt2::read(
                &case.join(v_name),
                &case.join(m_name),
                Split::Gpt2,
            )?)
        })
    });
}

#[test]
fn tokenizer_json_loads_or_refuses() {
    let dir = temp_dir("fuzz-hf-json");
    let files = valid_files(&dir.join("valid"), &small_tokenizer());
    let path = dir.join("tokenizer.json");
    each_input("tokenizer.json", 22, |rng, what| {
        let input = damage(rng, &files[2].1, Kind::Json);
        check(what, &input, |b| {
            std::fs::write(&path, b)?;
            exercise(&hf_json::read(&path)?)
        })
    });
}

#[test]
fn tiktoken_files_load_or_refuse() {
    let dir = temp_dir("fuzz-tiktoken");
    let files = valid_files(&dir.join("valid"), &small_tokenizer());
    let path = dir.join("t.tiktoken");
    each_input(".tiktoken", 23, |rng, what| {
        let input = damage(rng, &files[3].1, Kind::Lines);
        check(what, &input, |b| {
            std::fs::write(&path, b)?;
            exercise(&tiktoken::read(&path, Split::Gpt2)?)
        })
    });
}

#[test]
fn the_real_gpt2_and_r50k_files_survive_damage() {
    // The published files are large (0.5 to 1.6 MB): one input per 100 of the other targets.
    let dir = temp_dir("fuzz-real-tokenizers");
    let encoder = std::fs::read(fixture("tokenizer/encoder.json")).unwrap();
    let bpe = std::fs::read(fixture("tokenizer/vocab.bpe")).unwrap();
    let ranks = std::fs::read(fixture("tokenizer/r50k_base.tiktoken")).unwrap();
    let mut rng = Rng::new(24);
    for i in 0..iters().div_ceil(100) {
        let what = format!("encoder.json + vocab.bpe (seed 24, input {i})");
        let (e, b) = (
            damage(&mut rng, &encoder, Kind::Json),
            mutate(&mut rng, &bpe),
        );
        check(&what, &e, |e| {
            std::fs::write(dir.join("encoder.json"), e)?;
            std::fs::write(dir.join("vocab.bpe"), &b)?;
            exercise(&gpt2::read(
                &dir.join("encoder.json"),
                &dir.join("vocab.bpe"),
                Split::Gpt2,
            )?)
        });
        let what = format!("r50k_base.tiktoken (seed 24, input {i})");
        check(&what, &damage(&mut rng, &ranks, Kind::Lines), |r| {
            std::fs::write(dir.join("r50k_base.tiktoken"), r)?;
            exercise(&tiktoken::read(
                &dir.join("r50k_base.tiktoken"),
                Split::Gpt2,
            )?)
        });
    }
}
