//! End-to-end tests of the `clean` binary: the fixture folder, determinism and bad input.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FIXTURES: &str = "tests/fixtures/clean";

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pretrain-clean-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn clean(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clean"))
        .args(args)
        .arg("-q")
        .output()
        .expect("run clean")
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn run_fixtures(dir: &Path) -> (Vec<Value>, Vec<Value>, Value) {
    let (out, rej, rep) = (
        dir.join("out.jsonl"),
        dir.join("rej.jsonl"),
        dir.join("rep.json"),
    );
    let o = clean(&[
        "--input",
        FIXTURES,
        "--output",
        out.to_str().unwrap(),
        "--report",
        rep.to_str().unwrap(),
        "--rejects",
        rej.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = serde_json::from_str(&std::fs::read_to_string(&rep).unwrap()).unwrap();
    (jsonl(&out), jsonl(&rej), report)
}

fn reason_of<'a>(rejects: &'a [Value], id_end: &str) -> Option<&'a Value> {
    rejects
        .iter()
        .find(|r| r["id"].as_str().unwrap().ends_with(id_end))
}

#[test]
fn fixture_folder_end_to_end() {
    let dir = tmp_dir("e2e");
    let (out, rejects, report) = run_fixtures(&dir);
    let kept: Vec<&str> = out.iter().map(|d| d["id"].as_str().unwrap()).collect();
    for d in &out {
        for k in ["id", "text", "source", "lang"] {
            assert!(d[k].is_string(), "{k} missing in {d}");
        }
        assert!(["en", "zh", "code", "other"].contains(&d["lang"].as_str().unwrap()));
    }
    // Kept: good English, Chinese, web pages, code.
    for id in [
        "en/printing.txt",
        "en/rivers.md",
        "web/deserts.html",
        "zh/poems.jsonl:1",
        "code/stats.py",
    ] {
        assert!(
            kept.iter().any(|k| k.ends_with(id)),
            "{id} should be kept: {kept:?}"
        );
    }
    let lang = |id: &str| {
        out.iter()
            .find(|d| d["id"].as_str().unwrap().ends_with(id))
            .unwrap()["lang"]
            .clone()
    };
    assert_eq!(lang("zh/poems.jsonl:1"), "zh");
    assert_eq!(lang("en/rivers.md"), "en");
    assert_eq!(lang("code/stats.py"), "code");
    // Removed, each for the expected reason.
    let expect = [
        ("en/printing_copy.txt", "exact_duplicate"),
        ("zh/poems.jsonl:5", "exact_duplicate"),
        ("en/printing_edited.txt", "near_duplicate"),
        ("junk/spam.txt", "gopher_dup_line_frac"),
        ("junk/keywords.txt", "gopher_top_2_gram"),
        ("zh/poems.jsonl:3", "zh_too_short"),
        ("zh/poems.jsonl:4", "zh_dup_line_frac"),
        ("code/bundle.js", "code_max_line_len"),
    ];
    for (id, reason) in expect {
        let r = reason_of(&rejects, id).unwrap_or_else(|| panic!("{id} not rejected"));
        assert_eq!(r["reason"], reason, "{id}");
    }
    assert!(
        reason_of(&rejects, "en/printing_copy.txt").unwrap()["dup_of"]
            .as_str()
            .unwrap()
            .ends_with("en/printing.txt")
    );
    assert!(
        reason_of(&rejects, "en/printing_edited.txt").unwrap()["dup_of"]
            .as_str()
            .unwrap()
            .ends_with("en/printing.txt")
    );
    // Boilerplate navigation and page chrome are gone; the page text stays.
    let deserts = out
        .iter()
        .find(|d| d["id"].as_str().unwrap().ends_with("deserts.html"))
        .unwrap();
    let text = deserts["text"].as_str().unwrap();
    assert!(text.starts_with("Deserts cover about one third"), "{text}");
    for chrome in [
        "Home",
        "Documentation",
        "About this site",
        "Copyright",
        "not text",
        "font:",
    ] {
        assert!(!text.contains(chrome), "{chrome} left in {text}");
    }
    // PII scrubbed.
    let printing = out
        .iter()
        .find(|d| d["id"].as_str().unwrap().ends_with("en/printing.txt"))
        .unwrap();
    let t = printing["text"].as_str().unwrap();
    assert!(t.contains("<EMAIL>") && t.contains("<IP>") && !t.contains("archive.desk@"));
    // Report counts.
    assert_eq!(report["files"]["skipped_binary"], 1);
    assert_eq!(report["files"]["skipped_empty"], 1);
    assert_eq!(report["files"]["skipped_unsupported"], 1);
    assert!(report["invalid_utf8_replaced"].as_u64().unwrap() > 0);
    assert_eq!(report["docs_out"].as_u64().unwrap() as usize, out.len());
    assert_eq!(
        report["docs_in"].as_u64().unwrap() as usize,
        out.len() + rejects.len()
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn same_input_gives_byte_identical_output() {
    let (a, b) = (tmp_dir("det-a"), tmp_dir("det-b"));
    run_fixtures(&a);
    run_fixtures(&b);
    for f in ["out.jsonl", "rej.jsonl"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
    let _ = std::fs::remove_dir_all(a);
    let _ = std::fs::remove_dir_all(b);
}

#[test]
fn malformed_jsonl_names_file_and_line_and_writes_nothing() {
    let dir = tmp_dir("badjson");
    let input = dir.join("bad.jsonl");
    std::fs::write(
        &input,
        "{\"text\": \"fine\"}\n{\"text\": oops}\n{\"no_text\": 1}\n",
    )
    .unwrap();
    let out = dir.join("out.jsonl");
    let o = clean(&[
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("bad.jsonl:2:") && err.contains("--skip-bad-lines"),
        "{err}"
    );
    assert!(!out.exists(), "output must not appear on failure");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "temp files left behind"
    );
    // With the flag both bad lines are skipped and counted.
    let rep = dir.join("rep.json");
    let o = clean(&[
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--skip-bad-lines",
        "--report",
        rep.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&rep).unwrap()).unwrap();
    assert_eq!(report["files"]["bad_lines_skipped"], 2);
    assert_eq!(report["docs_in"], 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn missing_and_unreadable_inputs_are_one_line_errors() {
    let dir = tmp_dir("missing");
    let out = dir.join("out.jsonl");
    let o = clean(&["--input", "no/such/path", "--output", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("clean: error: reading no/such/path"),
        "{err}"
    );
    // A dangling symlink inside a directory cannot be read.
    let sub = dir.join("in");
    std::fs::create_dir_all(&sub).unwrap();
    std::os::unix::fs::symlink(dir.join("gone.txt"), sub.join("link.txt")).unwrap();
    let o = clean(&[
        "--input",
        sub.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("link.txt") && !err.contains("panicked"),
        "{err}"
    );
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn huge_single_lines_are_cleaned() {
    // 4 MB on one line, as prose and as broken HTML, are cleaned without error. (Speed on such
    // lines is measured by the `huge_line` case of benches/clean.rs, not timed here.)
    let dir = tmp_dir("huge");
    let sentence = "the quick brown fox jumps over the lazy dog and runs to the river. ";
    let line: String = sentence.repeat(4_000_000 / sentence.len());
    std::fs::write(dir.join("line.txt"), &line).unwrap();
    std::fs::write(dir.join("tags.html"), "<a <b x=\"".repeat(400_000)).unwrap();
    std::fs::write(dir.join("mail.txt"), "a@b.".repeat(1_000_000)).unwrap();
    let out = dir.join("out.jsonl");
    let rep = dir.join("rep.json");
    let o = clean(&[
        "--input",
        dir.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--report",
        rep.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&rep).unwrap()).unwrap();
    assert_eq!(report["docs_in"], 3);
    let _ = std::fs::remove_dir_all(dir);
}
