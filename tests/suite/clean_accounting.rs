//! `clean` accounts for every byte it removes, names the file when writing fails, and removes
//! the temps of runs that died.

use crate::common::{DEAD_PID, names_in};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

const CLEAN: &str = env!("CARGO_BIN_EXE_clean");

fn clean(input: &Path, dir: &Path) -> Output {
    Command::new(CLEAN)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(dir.join("out.jsonl"))
        .arg("--report")
        .arg(dir.join("rep.json"))
        .arg("-q")
        .output()
        .unwrap()
}

/// The bytes a step removed: the bytes out of the step before (or read) less its own.
fn step_drop(report: &Value, step: usize) -> i64 {
    let out = |i: usize| report["steps"][i]["bytes_out"].as_i64().unwrap();
    let before = if step == 0 {
        report["bytes_in"].as_i64().unwrap()
    } else {
        out(step - 1)
    };
    before - out(step)
}

#[test]
fn every_removed_byte_is_attributed_to_a_rule() {
    let dir = crate::common::temp_dir("clean_accounting_bytes");
    let o = clean(Path::new("tests/fixtures/clean"), &dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("rep.json")).unwrap()).unwrap();
    let by_rule = report["bytes_removed"].as_object().expect("bytes_removed");
    let rule = |r: &str| by_rule.get(r).and_then(Value::as_i64).unwrap_or(0);
    let total: i64 = by_rule.values().map(|v| v.as_i64().unwrap()).sum();
    let (bytes_in, bytes_out) = (
        report["bytes_in"].as_i64().unwrap(),
        report["bytes_out"].as_i64().unwrap(),
    );
    assert_eq!(total, bytes_in - bytes_out, "{by_rule:?}");
    for reason in report["removed"].as_object().unwrap().keys() {
        assert!(by_rule.contains_key(reason), "{reason} has no bytes");
    }
    // Each step's bytes are those of its own rules: the lines C4 drops from pages it keeps are
    // quality filtering (step 6), not boilerplate (step 5).
    assert!(report["c4_docs_rewritten"].as_u64().unwrap() > 0);
    assert!(rule("c4_lines") > 0);
    assert_eq!(step_drop(&report, 1), rule("exact_duplicate"));
    assert_eq!(step_drop(&report, 2), rule("boilerplate_lines"));
    assert_eq!(step_drop(&report, 4), rule("near_duplicate"));
    assert_eq!(step_drop(&report, 5), rule("pii_scrub"));
}

#[test]
fn stale_temps_are_removed_and_a_full_disk_names_the_file() {
    let dir = crate::common::temp_dir("clean_accounting_temps");
    let input = dir.join("in");
    std::fs::create_dir(&input).unwrap();
    // More than the 1 MiB write buffer, so the disk fills while a document is being written.
    let docs: String = (0..3000)
        .map(|i| {
            let text = format!("Document {i} is about rivers and deserts. ").repeat(12);
            format!("{}\n", serde_json::json!({ "text": text }))
        })
        .collect();
    std::fs::write(input.join("docs.jsonl"), docs).unwrap();
    let out_dir = dir.join("out");
    std::fs::create_dir(&out_dir).unwrap();
    for kind in ["spool1", "spool2", "tmp"] {
        std::fs::write(out_dir.join(format!(".out.jsonl.{kind}-{DEAD_PID}")), b"x").unwrap();
    }
    std::fs::write(out_dir.join(format!(".rep.json.tmp-{DEAD_PID}")), b"x").unwrap();
    // Files may grow to 128 blocks (64 or 128 KiB, by the shell); writing past that fails with
    // EFBIG ("File too large") rather than killing the run, as SIGXFSZ is ignored.
    let o = Command::new("sh")
        .args([
            "-c",
            "trap '' XFSZ; ulimit -f 128 && exec \"$@\"",
            "sh",
            CLEAN,
        ])
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(out_dir.join("out.jsonl"))
        .arg("--report")
        .arg(out_dir.join("rep.json"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(".out.jsonl.spool1-"), "names the file: {err}");
    assert!(err.contains("File too large"), "{err}");
    assert!(names_in(&out_dir).is_empty(), "{:?}", names_in(&out_dir));
    // Without the limit the run succeeds.
    let o = clean(&input, &out_dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(names_in(&out_dir), ["out.jsonl", "rep.json"]);
}

#[test]
fn a_failed_run_leaves_no_folder_it_made() {
    let dir = crate::common::temp_dir("clean_accounting_folders");
    std::fs::write(dir.join("bad.jsonl"), "{\"text\": \"fine\"}\nnot json\n").unwrap();
    let o = Command::new(CLEAN)
        .arg("--input")
        .arg(dir.join("bad.jsonl"))
        .arg("--output")
        .arg(dir.join("a/b/out.jsonl"))
        .arg("--report")
        .arg(dir.join("a/report.json"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(names_in(&dir), ["bad.jsonl"]);
}
