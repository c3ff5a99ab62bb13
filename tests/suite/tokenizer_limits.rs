//! `train-tokenizer` refuses what it cannot do before it does any work (a repeated special
//! token, a vocabulary u32 ids cannot address, an output it cannot write), never leaves a
//! half-written or temp folder, and trains on one endless word in bounded memory.

use crate::common::{DEAD_PID, assert_one_line_error, names_in, run_bin, temp_dir};
use pretrain::tokenizer::train::{MAX_PRETOKEN_BYTES, count_pretokens};
use pretrain::tokenizer::{Split, TrainOptions, train};

const TRAIN: &str = env!("CARGO_BIN_EXE_train-tokenizer");

/// A folder with a small training text `a.txt`.
fn setup(name: &str) -> std::path::PathBuf {
    let dir = temp_dir(name);
    std::fs::write(dir.join("a.txt"), "hello world, hello again, and again\n").unwrap();
    dir
}

fn train_cli(dir: &std::path::Path, out: &str, extra: &[&str]) -> (i32, String, String) {
    let input = dir.join("a.txt");
    let out = dir.join(out);
    let mut args = vec![
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    run_bin(TRAIN, &args, b"")
}

#[test]
fn a_repeated_special_token_is_refused() {
    let dir = setup("limits_repeated_special");
    let twice = [
        "--vocab-size",
        "300",
        "--special",
        "<|x|>",
        "--special",
        "<|x|>",
    ];
    let (code, stdout, err) = train_cli(&dir, "tok", &twice);
    assert_one_line_error(code, &err, "\"<|x|>\" is given twice");
    assert!(stdout.is_empty(), "refused before reading: {stdout}");
    assert_eq!(names_in(&dir), ["a.txt"]);
    let two = [
        "--vocab-size",
        "300",
        "--special",
        "<|x|>",
        "--special",
        "<|y|>",
    ];
    let (code, _, err) = train_cli(&dir, "tok", &two);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_vocabulary_u32_ids_cannot_address_is_refused() {
    let dir = setup("limits_vocab_size");
    for size in ["4294967297", "4294967296", "99999999999999999999999"] {
        let (code, _, err) = train_cli(&dir, "tok", &["--vocab-size", size]);
        assert_one_line_error(code, &err, "--vocab-size");
    }
    let (code, _, err) = train_cli(&dir, "tok", &["--vocab-size", "4294967297"]);
    assert_one_line_error(code, &err, "4294967295");
    // The largest size is accepted; memory goes to the merges the text has, not those asked for.
    let (code, stdout, err) = train_cli(&dir, "tok", &["--vocab-size", "4294967295"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("the text only supports"), "{err}");
    assert!(stdout.contains("learned"), "{stdout}");
}

#[test]
fn an_unusable_output_fails_before_training() {
    let dir = setup("limits_unusable_output");
    std::fs::write(dir.join("file"), b"not a folder").unwrap();
    let (code, stdout, err) = train_cli(&dir, "file/tok", &["--vocab-size", "300"]);
    assert_one_line_error(code, &err, "file");
    assert!(stdout.is_empty(), "nothing read or learned first: {stdout}");
    // A folder of other files is not replaced, and says so before training.
    std::fs::create_dir(dir.join("mine")).unwrap();
    std::fs::write(dir.join("mine/notes.txt"), b"keep me").unwrap();
    let (code, stdout, err) = train_cli(&dir, "mine", &["--vocab-size", "300"]);
    assert_one_line_error(code, &err, "notes.txt");
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(names_in(&dir.join("mine")), ["notes.txt"]);
}

#[test]
fn a_failed_run_leaves_nothing_and_stale_temps_are_removed() {
    let dir = setup("limits_temps");
    std::fs::write(dir.join("empty.txt"), b"").unwrap();
    let args = ["--vocab-size", "300"];
    let empty = dir.join("empty.txt");
    let out = dir.join("tok");
    let (code, _, err) = run_bin(
        TRAIN,
        &[
            "--input",
            empty.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            args[0],
            args[1],
        ],
        b"",
    );
    assert_one_line_error(code, &err, "empty");
    assert_eq!(
        names_in(&dir),
        ["a.txt", "empty.txt"],
        "no folder, no temps"
    );
    let stale = dir.join(format!(".tok.tmp-{DEAD_PID}"));
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("vocab.json"), b"{").unwrap();
    let (code, _, err) = train_cli(&dir, "tok", &args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(names_in(&dir), ["a.txt", "empty.txt", "tok"]);
    assert_eq!(
        names_in(&out),
        ["merges.txt", "tokenizer.json", "vocab.json"]
    );
}

#[test]
fn one_endless_word_trains_in_bounded_memory() {
    // 50 MB of one letter is one pre-token. Counted whole, training held it as 50 M symbols with
    // their pair lists (gigabytes); cut into pieces of MAX_PRETOKEN_BYTES it is a few distinct
    // pieces. The run gets 512 MiB of address space (two threads, two malloc arenas, so the
    // limit does not depend on the machine's core count) and must succeed within it.
    let dir = temp_dir("limits_endless_word");
    let input = dir.join("word.txt");
    std::fs::write(&input, "a".repeat(50_000_000)).unwrap();
    let out = dir.join("tok");
    let script = "ulimit -v 524288 && exec \"$@\"";
    let o = std::process::Command::new("sh")
        .args(["-c", script, "sh", TRAIN, "--input"])
        .arg(&input)
        .args(["--vocab-size", "1000", "--output"])
        .arg(&out)
        .env("RAYON_NUM_THREADS", "2")
        .env("MALLOC_ARENA_MAX", "2")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let tok = pretrain::tokenizer::formats::load(&out, None).unwrap();
    let longest = (0..tok.vocab_size() as u32)
        .filter_map(|id| tok.token_bytes(id).map(<[u8]>::len))
        .max()
        .unwrap();
    assert!(longest <= MAX_PRETOKEN_BYTES, "{longest}");
}

#[test]
fn over_long_pretokens_are_counted_in_bounded_pieces() {
    // 1 MB of one letter, then a short word: the long one is counted as whole pieces of the bound
    // and one remainder; the short one as it is. Multi-byte letters are never cut inside.
    let long = "é".repeat(500_000); // 1,000,000 bytes, 2 per char
    let text = format!("{long} word");
    let counts = count_pretokens(&text, Split::Gpt2, &[]);
    let max = counts.keys().map(String::len).max().unwrap();
    assert!(max <= MAX_PRETOKEN_BYTES, "{max}");
    let bytes: u64 = counts.iter().map(|(k, n)| k.len() as u64 * n).sum();
    assert_eq!(bytes, text.len() as u64, "every byte counted once");
    assert_eq!(counts.get(" word"), Some(&1));
    assert!(counts.len() <= 3, "{counts:?}");
    let opts = TrainOptions {
        vocab_size: 300,
        specials: vec![],
        split: Split::Gpt2,
        progress: false,
    };
    let tok = train(&text, &opts).unwrap();
    let ids = tok.encode_ordinary(&text);
    assert_eq!(
        tok.decode(&ids).unwrap(),
        text,
        "encoding still round-trips"
    );
}
