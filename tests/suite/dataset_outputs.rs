//! A dataset folder is the output of one `tokenize` run or nothing: a failed run keeps the old
//! one and leaves no temps, a half-done swap is finished or rolled back, a folder whose shards
//! are not the ones its `meta.json` lists is refused by `tokenize --check` and by the `Loader`,
//! and nonsense sizes are refused when the flags are parsed.

use crate::common::{DEAD_PID, assert_one_line_error, fixture, names_in, run_bin, temp_dir};
use pretrain::dataset::Loader;
use pretrain::dataset::shard::write_shard;
use std::collections::BTreeMap;
use std::path::Path;

const TOKENIZE: &str = env!("CARGO_BIN_EXE_tokenize");

/// `n` JSONL documents, each different.
fn docs(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"text\": \"Document {i} says hello to number {}.\"}}\n",
                i * 7
            )
        })
        .collect()
}

/// Run `tokenize` with the GPT-2 fixture tokenizer and small shards.
fn tokenize(input: &Path, out: &Path, seed: &str) -> (i32, String, String) {
    let tok = fixture("tokenizer");
    let args = [
        "--tokenizer",
        tok.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--shard-tokens",
        "40",
        "--val-fraction",
        "0.2",
        "--seed",
        seed,
        "-q",
    ];
    run_bin(TOKENIZE, &args, b"")
}

fn check(dir: &Path) -> (i32, String, String) {
    let tok = fixture("tokenizer");
    let args = ["--tokenizer", tok.to_str().unwrap(), "--check"];
    let mut args = args.to_vec();
    args.push(dir.to_str().unwrap());
    run_bin(TOKENIZE, &args, b"")
}

/// Every file of a folder with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    names_in(dir)
        .into_iter()
        .map(|n| {
            let bytes = std::fs::read(dir.join(&n)).unwrap();
            (n, bytes)
        })
        .collect()
}

/// The folder `dir` with a good and a bad input, and a dataset tokenized from the good one.
fn setup(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = temp_dir(name);
    std::fs::write(dir.join("good.jsonl"), docs(30)).unwrap();
    std::fs::write(dir.join("bad.jsonl"), "{\"text\": \"fine\"}\nnot json\n").unwrap();
    let out = dir.join("out");
    let (code, _, err) = tokenize(&dir.join("good.jsonl"), &out, "1");
    assert_eq!(code, 0, "{err}");
    (dir, out)
}

#[test]
fn a_failed_retokenize_keeps_the_old_dataset_and_leaves_no_temps() {
    let (dir, out) = setup("outputs_failed_retokenize");
    let before = snapshot(&out);
    assert!(before.keys().filter(|n| n.starts_with("train_")).count() >= 2);
    let (code, _, err) = tokenize(&dir.join("bad.jsonl"), &out, "1");
    assert_one_line_error(code, &err, "bad.jsonl: line 2");
    assert_eq!(snapshot(&out), before, "the old dataset is intact");
    assert_eq!(
        names_in(&dir),
        ["bad.jsonl", "good.jsonl", "out"],
        "no temps"
    );
    // A failed first run leaves no (empty) output folder, nor the folders made to hold it.
    for new in ["new", "new/sub/ds"] {
        let (code, _, err) = tokenize(&dir.join("bad.jsonl"), &dir.join(new), "1");
        assert_one_line_error(code, &err, "bad.jsonl: line 2");
        assert_eq!(names_in(&dir), ["bad.jsonl", "good.jsonl", "out"]);
    }
    // Temps of a dead run, beside the folder and inside it, are removed by the next run.
    let stale_dir = dir.join(format!(".out.tmp-{DEAD_PID}"));
    std::fs::create_dir(&stale_dir).unwrap();
    std::fs::write(stale_dir.join("train_000000.bin"), b"half").unwrap();
    std::fs::write(out.join(format!(".train_000000.bin.tmp-{DEAD_PID}")), b"x").unwrap();
    let (code, _, err) = tokenize(&dir.join("good.jsonl"), &out, "1");
    assert_eq!(code, 0, "{err}");
    assert_eq!(names_in(&dir), ["bad.jsonl", "good.jsonl", "out"]);
    assert_eq!(snapshot(&out), before, "same input, same dataset, no temps");
    // A folder holding files tokenize does not write is not replaced.
    std::fs::write(out.join("notes.txt"), b"mine").unwrap();
    let (code, _, err) = tokenize(&dir.join("good.jsonl"), &out, "1");
    assert_one_line_error(code, &err, "notes.txt");
    assert!(out.join("notes.txt").exists() && out.join("meta.json").exists());
}

/// `tokenize --check` and the `Loader` both refuse `out` as it is now.
fn assert_refused(out: &Path, want: &str) {
    let (code, _, err) = check(out);
    assert_one_line_error(code, &err, want);
    let e = Loader::new(out, "train", 1, 4, 0, true)
        .err()
        .expect("refused");
    assert!(format!("{e:#}").contains(want), "{e:#}");
}

#[test]
fn a_folder_whose_shards_are_not_its_meta_json_is_refused() {
    let (_dir, out) = setup("outputs_mixed_folder");
    let (code, stdout, err) = check(&out);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("sizes and checksums"), "{stdout}");
    let first = out.join("train_000000.bin");
    let original = std::fs::read(&first).unwrap();
    // A shard of another run beside this run's.
    std::fs::write(out.join("train_000099.bin"), &original).unwrap();
    assert_refused(&out, "train_000099.bin");
    std::fs::remove_file(out.join("train_000099.bin")).unwrap();
    // A shard replaced by one of another size.
    write_shard(&first, &[1, 2, 3], 50258).unwrap();
    assert_refused(&out, "train_000000.bin");
    // The same size, other tokens: only the checksum tells, and only --check reads the tokens.
    let mut changed = original.clone();
    let last = changed.len() - 1;
    changed[last] ^= 1;
    std::fs::write(&first, &changed).unwrap();
    let (code, _, err) = check(&out);
    assert_one_line_error(code, &err, "checksum");
    assert!(Loader::new(&out, "train", 1, 4, 0, true).is_ok());
    std::fs::write(&first, &original).unwrap();
    // A meta.json without the shard list: a clear request to tokenize again.
    let meta = out.join("meta.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta).unwrap()).unwrap();
    let listed = v.as_object_mut().unwrap().remove("shards").unwrap();
    std::fs::write(&meta, v.to_string()).unwrap();
    assert_refused(&out, "run tokenize again");
    v["shards"] = listed;
    std::fs::write(&meta, v.to_string()).unwrap();
    assert_eq!(check(&out).0, 0);
}

#[test]
fn a_half_done_swap_is_finished_or_rolled_back() {
    let (dir, out) = setup("outputs_half_swap");
    let (code, _, err) = tokenize(&dir.join("good.jsonl"), &dir.join("b"), "2");
    assert_eq!(code, 0, "{err}");
    let (a, b) = (snapshot(&out), snapshot(&dir.join("b")));
    assert_ne!(a, b, "another seed, another split");
    let old = dir.join(format!(".out.old-{DEAD_PID}"));
    let new = dir.join(format!(".out.tmp-{DEAD_PID}"));
    // Stopped between the two renames: the new folder is complete, so the swap is finished.
    std::fs::rename(&out, &old).unwrap();
    std::fs::rename(dir.join("b"), &new).unwrap();
    assert_eq!(check(&out).0, 0);
    assert_eq!(snapshot(&out), b);
    assert_eq!(names_in(&dir), ["bad.jsonl", "good.jsonl", "out"]);
    // Stopped with only the old folder moved aside: it is put back (here by the Loader).
    std::fs::rename(&out, &old).unwrap();
    assert!(Loader::new(&out, "train", 1, 4, 0, true).is_ok());
    assert_eq!(snapshot(&out), b);
    // Stopped after the swap, before the old folder was removed: it is removed.
    std::fs::create_dir(&old).unwrap();
    std::fs::write(old.join("meta.json"), b"{}").unwrap();
    assert_eq!(check(&out).0, 0);
    assert_eq!(names_in(&dir), ["bad.jsonl", "good.jsonl", "out"]);
}

#[test]
fn nonsense_sizes_are_refused_when_the_flags_are_parsed() {
    // The tokenizer does not exist: a flag error comes first, before anything is read.
    let base = ["--tokenizer", "no/such/tokenizer", "--input", "x.jsonl"];
    let bad: [(&str, &str); 6] = [
        ("--shard-tokens", "0"),
        ("--val-fraction", "1"),
        ("--val-fraction", "1.5"),
        ("--val-fraction", "-0.1"),
        ("--val-fraction", "NaN"),
        ("--val-fraction", "inf"),
    ];
    for (flag, value) in bad {
        let set = format!("{flag}={value}"); // `=`, so that "-0.1" is not read as a flag
        let mut args = base.to_vec();
        args.extend(["--output", "out", &set]);
        let (code, _, err) = run_bin(TOKENIZE, &args, b"");
        assert_one_line_error(code, &err, flag);
    }
    for value in ["0", "0.5", "0.999"] {
        let mut args = base.to_vec();
        args.extend(["--output", "out", "--val-fraction", value]);
        let (code, _, err) = run_bin(TOKENIZE, &args, b"");
        assert_one_line_error(code, &err, "no/such/tokenizer");
    }
}
