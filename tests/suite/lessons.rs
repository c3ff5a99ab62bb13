//! Runs every runnable code block of every lesson, so a lesson cannot rot.
//!
//! The marker and the rules are documented in `lessons/README.md`: a block whose info string is
//! `sh run` is executed with bash in the repository root, with `PRETRAIN_QUICK=1`, and each
//! `expect="TEXT"` attribute must appear in what it printed. A block marked `sh run mpi` needs
//! a build with the `mpi` feature and Open MPI: `cargo test --release --features mpi --test
//! suite dist_` runs those blocks (test `dist_lesson_blocks`); without the feature that test is
//! reported as ignored, with the reason.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The longest a block may run (the longest takes about a minute under `PRETRAIN_QUICK=1`).
const BLOCK_TIMEOUT_SECS: u32 = 600;

/// One runnable block of a lesson.
#[derive(Debug)]
struct Block {
    lesson: String,
    line: usize,
    script: String,
    expects: Vec<String>,
    /// Marked `sh run mpi`: runs only in a build with the `mpi` feature.
    mpi: bool,
}

/// Parse the `expect="..."` attributes of an info string.
fn expects_of(info: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = info;
    while let Some(at) = rest.find("expect=\"") {
        let after = &rest[at + 8..];
        let end = after
            .find('"')
            .unwrap_or_else(|| panic!("unterminated expect=\" in info string {info:?}"));
        out.push(after[..end].to_string());
        rest = &after[end + 1..];
    }
    out
}

/// The runnable blocks of one markdown file, in order.
fn blocks_of(lesson: &str, text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else {
            continue;
        };
        let fence_indent = line.len() - line.trim_start().len();
        let mut words = info.split_whitespace();
        let runnable = words.next() == Some("sh") && words.next() == Some("run");
        let mpi = runnable && words.next() == Some("mpi");
        let mut body = String::new();
        for (_, inner) in lines.by_ref() {
            if inner.trim_start().starts_with("```") {
                break;
            }
            body.push_str(inner.get(fence_indent..).unwrap_or(inner.trim_start()));
            body.push('\n');
        }
        if runnable {
            blocks.push(Block {
                lesson: lesson.to_string(),
                line: n + 1,
                script: body,
                expects: expects_of(info),
                mpi,
            });
        }
    }
    blocks
}

/// Bash functions that stand in for `cargo run --release ...`, pointing at the binaries this
/// test run already built, so lessons never start a nested cargo.
fn prelude(bin_dir: &Path) -> String {
    format!(
        r#"set -eo pipefail
__bin_dir='{}'
cargo() {{
  if [ "$1" != run ] || [ "$2" != --release ]; then
    echo "lesson harness: only 'cargo run --release ...' is supported, got: cargo $*" >&2; return 97
  fi
  shift 2
  # This test run's binaries were built with the features it was given.
  [ "$1" = --features ] && shift 2
  local exe="$__bin_dir/pipeline"
  case "$1" in
    --bin) exe="$__bin_dir/$2"; shift 2 ;;
    --example) exe="$__bin_dir/examples/$2"; shift 2 ;;
  esac
  [ "$1" = -- ] && shift
  if [ ! -x "$exe" ]; then
    echo "lesson harness: $exe is not built; the full 'cargo test --release' builds every binary and example (or run 'cargo build --release --examples' first)" >&2
    return 98
  fi
  "$exe" "$@"
}}
"#,
        bin_dir.display()
    )
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>/`: the folder holding the binaries `cargo test` built for this run.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps")
        .to_path_buf()
}

fn lesson_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join("lessons"))
        .expect("lessons/ exists")
        .map(|e| e.expect("readable lessons/ entry").path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".md") && name.as_bytes()[0].is_ascii_digit()
        })
        .collect();
    files.sort();
    files
}

#[test]
fn parser_finds_blocks_and_expects() {
    let md = "text\n```sh run expect=\"a b\" expect=\"c\"\necho hi\n```\n```text\nhi\n```\n```sh\nnot run\n```\n";
    let blocks = blocks_of("x.md", md);
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].line, 2);
    assert_eq!(blocks[0].script, "echo hi\n");
    assert_eq!(blocks[0].expects, vec!["a b".to_string(), "c".to_string()]);
    assert!(!blocks[0].mpi);
    let mpi = blocks_of("x.md", "```sh run mpi expect=\"ok\"\necho ok\n```\n");
    assert!(mpi[0].mpi);
    assert_eq!(mpi[0].expects, vec!["ok".to_string()]);
}

#[test]
fn every_lesson_has_runnable_blocks_and_exercises() {
    let files = lesson_files();
    assert!(!files.is_empty(), "no lessons found");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.display();
        let blocks = blocks_of("", &text);
        assert!(!blocks.is_empty(), "{name}: no runnable block (```sh run)");
        // Every `sh run` fence is a block the harness runs (none swallowed by a bad fence).
        let fences = text
            .lines()
            .filter(|l| l.trim_start().starts_with("```sh run"))
            .count();
        assert_eq!(
            fences,
            blocks.len(),
            "{name}: fences and parsed blocks differ"
        );
        assert!(
            text.contains("## Exercises"),
            "{name}: no '## Exercises' section"
        );
    }
}

#[test]
fn every_lesson_command_runs() {
    run_blocks(|b| !b.mpi);
}

/// The lessons' MPI blocks (`sh run mpi`), on real ranks.
#[test]
#[cfg_attr(
    not(feature = "mpi"),
    ignore = "lesson blocks marked `sh run mpi` need `cargo test --release --features mpi --test suite dist_`"
)]
fn dist_lesson_blocks() {
    run_blocks(|b| b.mpi);
}

/// Runs the blocks of every lesson that `pick` selects, in order, and checks their output.
fn run_blocks(pick: impl Fn(&Block) -> bool) {
    let root = repo_root();
    let prelude = prelude(&bin_dir());
    let mut failures = Vec::new();
    let mut ran = 0;
    for path in lesson_files() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        for block in blocks_of(&name, &text).into_iter().filter(&pick) {
            ran += 1;
            if let Err(e) = run_block(&block, &prelude, &root) {
                failures.push(e);
            }
        }
    }
    assert!(ran > 0, "no runnable lesson blocks found");
    assert!(
        failures.is_empty(),
        "{} lesson block(s) failed:\n{}",
        failures.len(),
        failures.join("\n---\n")
    );
}

/// Runs one block with bash in the repository root; an error says where and what it printed.
fn run_block(block: &Block, prelude: &str, root: &Path) -> Result<(), String> {
    // coreutils' `timeout` ends a block that hangs (exit code 124).
    let out = Command::new("timeout")
        .args([&BLOCK_TIMEOUT_SECS.to_string(), "bash", "-c"])
        .arg(format!("{prelude}{}", block.script))
        .current_dir(root)
        .env("PRETRAIN_QUICK", "1")
        .output()
        .expect("bash runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let at = format!("{}:{}", block.lesson, block.line);
    if out.status.code() == Some(124) {
        return Err(format!(
            "{at}: still running after {BLOCK_TIMEOUT_SECS} s\n{printed}"
        ));
    }
    if !out.status.success() {
        return Err(format!("{at}: exited with {}\n{printed}", out.status));
    }
    match block.expects.iter().find(|w| !printed.contains(w.as_str())) {
        Some(want) => Err(format!("{at}: output lacks {want:?}\n{printed}")),
        None => Ok(()),
    }
}
