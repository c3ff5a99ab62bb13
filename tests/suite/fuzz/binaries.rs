//! The binaries on damaged inputs: `tokenize` writing shards with a damaged `tokenizer.json` or
//! from damaged JSONL, and `train` on a damaged shard. Each run must end with exit code 0, or 2
//! and one error line on stderr (`NAME: error: ...`): never a panic (`internal error`, exit 101)
//! or an abort (134). A run costs a process, so there is one per 20 inputs of the other targets.

use super::iters;
use super::mutate::{Kind, damage};
use crate::common::{Draw, Rng, fixture, temp_dir};
use pretrain::dataset::shard::{HEADER_LEN, write_shard};
use pretrain::tokenizer::formats;
use std::path::Path;
use std::process::Command;

/// Runs `bin` (called `name` in its messages) with `args` and checks how it ended; `what` names
/// the input for the report. Returns whether it succeeded.
fn ends_cleanly(name: &str, bin: &str, args: &[&str], what: &str) -> bool {
    let out = Command::new(bin)
        .args(args)
        .env_remove("PRETRAIN_QUICK")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => true,
        Some(2) => {
            let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
            let prefix = format!("{name}: error: ");
            assert!(
                errors.len() == 1 && errors[0].starts_with(&prefix) && !stderr.contains("panicked"),
                "{what}: not one error line: {stderr}"
            );
            false
        }
        code => panic!("{what}: {name} ended with {code:?}: {stderr}"),
    }
}

/// Writes `input` to `dir/name`, after emptying `dir`.
fn fresh_file(dir: &Path, name: &str, input: &[u8]) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), input).unwrap();
}

#[test]
fn tokenize_ends_cleanly_on_damaged_tokenizers_and_jsonl() {
    let root = temp_dir("fuzz-bin-tokenize");
    let valid = root.join("valid");
    formats::save_dir(&valid, &super::tokenizer_files::small_tokenizer()).unwrap();
    let tokenizer_json = std::fs::read(valid.join("tokenizer.json")).unwrap();
    let jsonl = std::fs::read(fixture("tokenizer/docs.jsonl")).unwrap();
    let (tok, data, out) = (root.join("tok"), root.join("data"), root.join("out"));
    let mut rng = Rng::new(51);
    let runs = iters().div_ceil(20);
    let mut succeeded = 0;
    for i in 0..runs {
        let (t, d) = if i % 2 == 0 {
            (damage(&mut rng, &tokenizer_json, Kind::Json), jsonl.clone())
        } else {
            (
                tokenizer_json.clone(),
                damage(&mut rng, &jsonl, Kind::Lines),
            )
        };
        fresh_file(&tok, "tokenizer.json", &t);
        fresh_file(&data, "docs.jsonl", &d);
        let what = format!("tokenize (seed 51, run {i}) on {}", root.display());
        let input = data.join("docs.jsonl");
        let args = [
            "--tokenizer",
            tok.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "-q",
        ];
        succeeded +=
            ends_cleanly("tokenize", env!("CARGO_BIN_EXE_tokenize"), &args, &what) as usize;
    }
    eprintln!("tokenize: {succeeded} of {runs} runs succeeded, the others were refused");
}

/// A shard with one token replaced by a random u16: often still valid (below the vocabulary of
/// 300), so that the run trains, else a token the shard's own vocabulary does not hold.
fn retoken(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    let mut b = valid.to_vec();
    let at = HEADER_LEN + 2 * rng.index((b.len() - HEADER_LEN) / 2);
    let id = rng.index(400) as u16;
    b[at..at + 2].copy_from_slice(&id.to_le_bytes());
    b
}

#[test]
fn train_ends_cleanly_on_damaged_shards() {
    let root = temp_dir("fuzz-bin-train");
    let mut rng = Rng::new(52);
    let tokens: Vec<u32> = (0..2000).map(|_| rng.below(300) as u32).collect();
    write_shard(&root.join("valid.bin"), &tokens, 300).unwrap();
    let valid = std::fs::read(root.join("valid.bin")).unwrap();
    let (data, out) = (root.join("data"), root.join("run"));
    let runs = iters().div_ceil(20);
    let mut succeeded = 0;
    for i in 0..runs {
        let input = if i % 2 == 0 {
            damage(&mut rng, &valid, Kind::Bytes)
        } else {
            retoken(&mut rng, &valid)
        };
        fresh_file(&data, "train_000.bin", &input);
        let _ = std::fs::remove_dir_all(&out);
        let what = format!("train (seed 52, run {i}) on {}", data.display());
        let args = [
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--device",
            "cpu",
            "--steps",
            "1",
            "--n-layer",
            "1",
            "--n-head",
            "1",
            "--n-embd",
            "8",
            "--seq-len",
            "8",
            "--batch-size",
            "1",
            "--eval-batches",
            "1",
            "-q",
        ];
        succeeded += ends_cleanly("train", env!("CARGO_BIN_EXE_train"), &args, &what) as usize;
    }
    eprintln!("train: {succeeded} of {runs} runs succeeded, the others were refused");
}
