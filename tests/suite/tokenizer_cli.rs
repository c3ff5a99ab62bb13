//! The two binaries on real and bad input: exact output format, exit code 2 and one-line errors.

use crate::common::{fixture, run_bin as run, temp_dir};

const TRAIN: &str = env!("CARGO_BIN_EXE_train-tokenizer");
const TOKENIZE: &str = env!("CARGO_BIN_EXE_tokenize");

fn assert_clean_error(code: i32, stderr: &str, want: &str) {
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(want), "{want:?} not in {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("internal error"),
        "{stderr}"
    );
}

#[test]
fn print_ids_matches_tiktoken() {
    let text = "Hello world, 你好世界! <|endoftext|> don't\n";
    let tk = fixture("tokenizer/cl100k_base.tiktoken");
    let (code, out, err) = run(
        TOKENIZE,
        &[
            "--tokenizer",
            tk.to_str().unwrap(),
            "--split",
            "gpt4",
            "--print-ids",
        ],
        text.as_bytes(),
    );
    assert_eq!(code, 0, "{err}");
    let want: Vec<String> = tiktoken_rs::cl100k_base()
        .unwrap()
        .encode_ordinary(text)
        .iter()
        .map(|i| i.to_string())
        .collect();
    assert_eq!(out, format!("{}\n", want.join(" ")));
    // GPT-2's encoder.json + vocab.bpe directory.
    let (code, out, _) = run(
        TOKENIZE,
        &[
            "--tokenizer",
            fixture("tokenizer").to_str().unwrap(),
            "--print-ids",
        ],
        text.as_bytes(),
    );
    assert_eq!(code, 0);
    let want: Vec<String> = tiktoken_rs::r50k_base()
        .unwrap()
        .encode_ordinary(text)
        .iter()
        .map(|i| i.to_string())
        .collect();
    assert_eq!(out, format!("{}\n", want.join(" ")));
}

#[test]
fn train_then_tokenize_end_to_end() {
    let dir = temp_dir("cli_end_to_end");
    let tok = dir.join("tok");
    let docs = fixture("tokenizer/docs.jsonl");
    let (code, out, err) = run(
        TRAIN,
        &[
            "--input",
            docs.to_str().unwrap(),
            "--vocab-size",
            "400",
            "--special",
            "<|endoftext|>",
            "--split",
            "gpt4",
            "--output",
            tok.to_str().unwrap(),
            "-q",
        ],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("learned 143 merges") || out.contains("merges"),
        "{out}"
    );
    for f in ["vocab.json", "merges.txt", "tokenizer.json"] {
        assert!(tok.join(f).is_file(), "{f}");
    }
    let shards = dir.join("shards");
    let (code, out, err) = run(
        TOKENIZE,
        &[
            "--tokenizer",
            tok.to_str().unwrap(),
            "--input",
            docs.to_str().unwrap(),
            "--output",
            shards.to_str().unwrap(),
            "--val-fraction",
            "0.1",
            "--seed",
            "3",
        ],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("train: ") && out.contains("val: "), "{out}");
    assert!(shards.join("train_000000.bin").is_file() && shards.join("val_000000.bin").is_file());
    let (code, out, _) = run(
        TOKENIZE,
        &["--tokenizer", tok.to_str().unwrap(), "--print-ids"],
        "héllo <|endoftext|>".as_bytes(),
    );
    assert_eq!(code, 0);
    assert!(
        !out.split_whitespace().any(|id| id == "399"),
        "special text is ordinary text here: {out}"
    );
    // --decode gives the text back; --check validates the shards.
    let (code, text, _) = run(
        TOKENIZE,
        &["--tokenizer", tok.to_str().unwrap(), "--decode"],
        out.as_bytes(),
    );
    assert_eq!((code, text.as_str()), (0, "héllo <|endoftext|>"));
    let (code, out, err) = run(
        TOKENIZE,
        &[
            "--tokenizer",
            tok.to_str().unwrap(),
            "--check",
            shards.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("all shards valid"), "{out}");
}

#[test]
fn bad_input_is_one_line_exit_2() {
    let dir = temp_dir("cli_bad_input");
    let text = dir.join("a.txt");
    std::fs::write(&text, b"hello \xFF world, hello again\n").unwrap();
    let t = text.to_str().unwrap();
    let out = dir.join("o");
    let o = out.to_str().unwrap();
    let (code, _, err) = run(
        TRAIN,
        &["--input", t, "--vocab-size", "100", "--output", o],
        b"",
    );
    assert_clean_error(code, &err, "below 256");
    let (code, _, err) = run(
        TRAIN,
        &[
            "--input",
            t,
            "--vocab-size",
            "300",
            "--split",
            "gpt5",
            "--output",
            o,
        ],
        b"",
    );
    assert_clean_error(code, &err, "unknown split \"gpt5\"");
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, b"").unwrap();
    let (code, _, err) = run(
        TRAIN,
        &[
            "--input",
            empty.to_str().unwrap(),
            "--vocab-size",
            "300",
            "--output",
            o,
        ],
        b"",
    );
    assert_clean_error(code, &err, "empty");
    let (code, _, err) = run(
        TRAIN,
        &[
            "--input",
            dir.join("nope.txt").to_str().unwrap(),
            "--vocab-size",
            "300",
            "--output",
            o,
        ],
        b"",
    );
    assert_clean_error(code, &err, "nope.txt");
    // Invalid UTF-8 is replaced, counted and warned about.
    let (code, stdout, err) = run(
        TRAIN,
        &["--input", t, "--vocab-size", "260", "--output", o],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("replaced 1 invalid UTF-8"), "{err}");
    assert!(
        stdout.contains("1 invalid UTF-8 sequences replaced"),
        "{stdout}"
    );
    let (code, _, err) = run(
        TOKENIZE,
        &[
            "--tokenizer",
            dir.join("missing").to_str().unwrap(),
            "--print-ids",
        ],
        b"x",
    );
    assert_clean_error(code, &err, "missing: no such file");
    let (code, _, err) = run(TOKENIZE, &["--tokenizer", o, "--print-ids"], b"ok \xFF");
    assert_clean_error(code, &err, "invalid UTF-8 at byte 3");
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, "{\"text\": \"a\"}\nnot json\n").unwrap();
    let (code, _, err) = run(
        TOKENIZE,
        &[
            "--tokenizer",
            o,
            "--input",
            bad.to_str().unwrap(),
            "--output",
            dir.join("s").to_str().unwrap(),
        ],
        b"",
    );
    assert_clean_error(code, &err, "bad.jsonl: line 2");
}

#[test]
fn streamed_training_equals_library_training() {
    // 3-byte chars only, so the 1 MiB read blocks end inside a char (2^20 is not a multiple of 3),
    // plus a few lines, 1.5 MB in all: the binary's streaming must not change anything.
    let dir = temp_dir("cli_streamed_training");
    let line = "学而时习之，不亦说乎？有朋自远方来，不亦乐乎？人不知而不愠，不亦君子乎？\n";
    let text: String = (0..14000)
        .map(|i| {
            if i % 7 == 0 {
                line.replace('学', "问")
            } else {
                line.to_string()
            }
        })
        .collect();
    assert!(text.len() > 1_400_000);
    let path = dir.join("zh.txt");
    std::fs::write(&path, &text).unwrap();
    let out = dir.join("tok");
    let (code, stdout, err) = run(
        TRAIN,
        &[
            "--input",
            path.to_str().unwrap(),
            "--vocab-size",
            "300",
            "--split",
            "gpt4",
            "--output",
            out.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains(" 0 invalid UTF-8"), "{stdout}");
    let opts = pretrain::tokenizer::TrainOptions {
        vocab_size: 300,
        specials: vec![],
        split: pretrain::tokenizer::Split::Gpt4,
        progress: false,
    };
    let want = pretrain::tokenizer::train(&text, &opts).unwrap();
    let got = pretrain::tokenizer::formats::load(&out, None).unwrap();
    assert_eq!(got.merges(), want.merges());
}
