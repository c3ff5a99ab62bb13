//! Helpers shared by the test modules: the random generator, texts, fixtures, temp folders.

use std::path::PathBuf;

/// True under `CI=true`, where a skipped check is a failure.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Says why `test` skips; under CI that is a failure instead.
pub fn skip(test: &str, why: &str) {
    assert!(!ci(), "{test}: CI=true, and it would skip: {why}");
    eprintln!("{test}: skipped: {why}");
}

/// Whether NVRTC can be loaded (printing its version); without it the caller skips (see [`skip`]).
pub fn nvrtc_or_skip(test: &str) -> bool {
    match pretrain::tensor::cuda::nvrtc::get() {
        Ok(n) => {
            eprintln!("NVRTC {:?} from {}", n.version(), n.path());
            true
        }
        Err(e) => {
            skip(test, &e);
            false
        }
    }
}

/// The one random generator of the tests and tools: the engine's seeded xoshiro256**.
pub use pretrain::tensor::Rng;

/// What tests draw from an [`Rng`] beyond its own methods.
pub trait Draw {
    /// Uniform in `0..n`.
    fn index(&mut self, n: usize) -> usize;
    /// `n` values uniform in [-1, 1).
    fn uniform_vec(&mut self, n: usize) -> Vec<f32>;
}

impl Draw for Rng {
    fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }
    fn uniform_vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| 2.0 * self.uniform() as f32 - 1.0).collect()
    }
}

/// Pieces that stress the split patterns: every class, contractions in all cases, odd spaces.
const POOL: &[&str] = &[
    "a",
    "Z",
    "é",
    "ß",
    "ſ",
    "K",
    "\u{301}",
    "\u{300}",
    "中",
    "文",
    "効",
    "ひ",
    "한",
    "ا",
    "α",
    "Ω",
    "ǅ",
    "ʰ",
    "0",
    "7",
    "٣",
    "１",
    "²",
    "½",
    "Ⅻ",
    "৪",
    " ",
    " ",
    "  ",
    "\t",
    "\n",
    "\r",
    "\r\n",
    "\n\n",
    "\u{A0}",
    "\u{3000}",
    "\u{2028}",
    "\u{85}",
    "\u{B}",
    "\u{C}",
    "\u{1680}",
    "\u{200B}",
    "'",
    "'s",
    "'S",
    "'t",
    "'T",
    "'re",
    "'RE",
    "'Ve",
    "'ll",
    "'LL",
    "'lL",
    "'d",
    "'D",
    "'m",
    "'M",
    "'ſ",
    "'x",
    ".",
    ",",
    "!",
    "?",
    "-",
    "_",
    "(",
    "\"",
    "$",
    "%",
    "😀",
    "👍🏽",
    "\u{200D}",
    "©",
    "€",
    "+",
    "=",
    "<|endoftext|>",
    "hello",
    " world",
    "Hello",
    "123",
    "4567",
    " 89",
];

/// A random string from [`POOL`] plus random code points from the whole Unicode range.
pub fn random_text(rng: &mut Rng, max_parts: usize) -> String {
    let n = rng.index(max_parts + 1);
    let mut s = String::new();
    for _ in 0..n {
        if rng.index(6) == 0 {
            let c = loop {
                let cp = if rng.index(2) == 0 {
                    rng.index(0x3000)
                } else {
                    rng.index(0x110000)
                } as u32;
                if let Some(c) = char::from_u32(cp) {
                    break c;
                }
            };
            s.push(c);
        } else {
            s.push_str(POOL[rng.index(POOL.len())]);
        }
    }
    s
}

/// Path of a file under `tests/fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// The mixed English/Chinese/code sample text.
pub fn sample_text() -> String {
    std::fs::read_to_string(fixture("tokenizer/sample.txt")).expect("sample.txt")
}

/// A fresh empty directory under the target dir for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The bundled raw corpus texts (`data/raw/en/shakespeare/*.txt`, `data/raw/zh/*.jsonl`), if this
/// checkout has them: (name, text) pairs. Empty when `data/raw` is absent.
pub fn corpus_texts() -> Vec<(String, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/raw");
    let mut out = Vec::new();
    let mut add_dir = |dir: PathBuf, ext: &str| {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == ext))
        {
            let Ok(text) = std::fs::read_to_string(&p) else {
                continue;
            };
            let text = if ext == "jsonl" {
                text.lines()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .filter_map(|v| v["text"].as_str().map(String::from))
                    .collect::<Vec<_>>()
                    .join("\n\n")
            } else {
                text
            };
            out.push((p.display().to_string(), text));
        }
    };
    add_dir(root.join("en/shakespeare"), "txt");
    add_dir(root.join("zh"), "jsonl");
    out
}

/// Run binary `bin` with `args`, `stdin` on its standard input: (exit code, stdout, stderr).
pub fn run_bin(bin: &str, args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A binary that fails early closes stdin; that is not the test's error.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A failure as the command-line conventions want it: exit code 2, one line, `want` in it, no
/// panic.
pub fn assert_one_line_error(code: i32, stderr: &str, want: &str) {
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(want), "{want:?} not in {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("internal error"),
        "{stderr}"
    );
}

/// The names in folder `dir`, sorted.
pub fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A PID no process has: Linux PIDs stop at 2^22, so temps named with it are stale.
pub const DEAD_PID: u32 = 99_999_999;
