//! Sizes from flags and files are checked before anything large is allocated: `train`,
//! `kernels` and `sample` refuse a run that cannot fit in one line with exit code 2, naming
//! what it needs and what there is. The sizes here need a terabyte or more, so no machine runs
//! them; the arithmetic of the estimate is unit-tested in `src/model/memory.rs`.

use crate::common::{skip, temp_dir};
use pretrain::dataset::shard::write_shard;
use std::path::Path;
use std::process::Command;

/// Runs `bin` with `args`; returns the exit code and stderr.
fn run(bin: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(bin)
        .args(args)
        .env_remove("PRETRAIN_QUICK")
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Whether this machine says how much memory it has (Linux's `/proc/meminfo`); else skip.
fn memory_known(test: &str) -> bool {
    let known = pretrain::tensor::devices::available_memory(pretrain::tensor::Device::Cpu);
    if known.is_none() {
        skip(
            test,
            "no MemAvailable in /proc/meminfo: the check has nothing to compare with",
        );
    }
    known.is_some()
}

/// Exit code 2 and one line holding every piece of `want`.
fn assert_refused(code: i32, stderr: &str, want: &[&str]) {
    assert_eq!(code, 2, "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line: {stderr}");
    for w in want {
        assert!(lines[0].contains(w), "{w:?} not in {stderr}");
    }
    assert!(!stderr.contains("internal error"), "{stderr}");
}

/// A data folder with one train shard (a vocabulary of 300) long enough for a window of two
/// million tokens, so that `--seq-len` is refused for its memory and not for the data.
fn small_data(dir: &Path) {
    let tokens: Vec<u32> = (0..2_100_000).map(|i| i % 300).collect();
    write_shard(&dir.join("train_000.bin"), &tokens, 300).unwrap();
}

#[test]
fn train_refuses_a_model_or_batch_that_cannot_fit() {
    if !memory_known("train_refuses_a_model_or_batch_that_cannot_fit") {
        return;
    }
    let dir = temp_dir("memory-train");
    small_data(&dir);
    let (data, out) = (dir.to_str().unwrap(), dir.join("run"));
    let out = out.to_str().unwrap();
    for flags in [
        &["--n-layer", "100000000"][..],
        &["--n-embd", "1000000"],
        &["--batch-size", "100000000000"],
        &["--seq-len", "2000000"],
    ] {
        let mut args = vec![
            "--data", data, "--out", out, "--device", "cpu", "--steps", "1",
        ];
        args.extend(flags);
        let (code, err) = run(env!("CARGO_BIN_EXE_train"), &args);
        assert_refused(
            code,
            &err,
            &[
                "train: error: training needs about",
                "(parameters ",
                "available on the CPU",
            ],
        );
    }
}

#[test]
fn kernels_refuses_a_shape_that_cannot_fit() {
    if !memory_known("kernels_refuses_a_shape_that_cannot_fit") {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_kernels");
    let (code, err) = run(bin, &["--device", "cpu", "--shape", "262144x1x262144"]);
    assert_refused(
        code,
        &err,
        &[
            "--shape 262144x1x262144 needs about 2.2 TB (matrices 2.2 TB)",
            "on the CPU",
        ],
    );
}

#[test]
fn kernels_refuses_a_shape_whose_product_overflows() {
    // 2^32 · 2^32 · 16 wraps around to 0 in 64 bits: the product must be checked, not wrapped.
    let bin = env!("CARGO_BIN_EXE_kernels");
    let (code, err) = run(
        bin,
        &["--device", "cpu", "--shape", "4294967296x4294967296x16"],
    );
    assert_refused(code, &err, &["product ≤ 2^36"]);
}

/// A checkpoint folder with a tokenizer and a `config.json` of context `block_size`, and no
/// weights: the memory check must refuse before they are read.
fn weightless_checkpoint(dir: &Path, block_size: usize) {
    let tok = pretrain::tokenizer::train(
        "hello world, hello there",
        &pretrain::tokenizer::TrainOptions {
            vocab_size: 260,
            specials: vec![],
            split: pretrain::tokenizer::Split::Gpt2,
            progress: false,
        },
    )
    .unwrap();
    pretrain::tokenizer::formats::save_dir(dir, &tok).unwrap();
    let config = pretrain::model::config::GptConfig {
        n_layer: 2,
        n_head: 2,
        n_embd: 16,
        block_size,
        vocab_size: 260,
    };
    std::fs::write(dir.join("config.json"), config.to_hf_json(None).to_string()).unwrap();
}

#[test]
fn sample_refuses_a_context_or_a_stream_that_cannot_fit_before_reading_the_weights() {
    if !memory_known("sample_refuses_a_context_or_a_stream_that_cannot_fit") {
        return;
    }
    // A billion-token context fills a KV cache of terabytes; ten trillion new tokens in a
    // 64-token context keep 80 TB of tokens.
    for (block_size, max_new, part) in [
        (1_000_000_000, "2000000000", "KV cache"),
        (64, "10000000000000", "tokens 80.0 TB"),
    ] {
        let dir = temp_dir(&format!("memory-sample-{block_size}"));
        weightless_checkpoint(&dir, block_size);
        let args = [
            "--checkpoint",
            dir.to_str().unwrap(),
            "--prompt",
            "hello",
            "--max-new-tokens",
            max_new,
        ];
        let (code, err) = run(env!("CARGO_BIN_EXE_sample"), &args);
        assert_refused(
            code,
            &err,
            &[
                "sample: error: sampling needs about",
                part,
                "available on the CPU",
            ],
        );
    }
}
