//! Reading the clean stage's JSONL: one JSON object per line with the document in `text`.

use anyhow::{Context, Result};
use std::io::BufRead;
use std::path::Path;

#[derive(serde::Deserialize)]
struct Record {
    text: String,
}

/// Call `f(text)` for every document of `path`, in order, until it returns `false`. Blank lines
/// are skipped. A bad line is an error naming the file and line.
pub fn for_each_doc(path: &Path, mut f: impl FnMut(String) -> Result<bool>) -> Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::new();
    let mut n = 0;
    loop {
        line.clear();
        let got = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading {}", path.display()))?;
        if got == 0 {
            return Ok(());
        }
        n += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let rec: Record = serde_json::from_slice(&line).with_context(|| {
            format!(
                "{}: line {n}: expected a JSON object with a \"text\" string",
                path.display()
            )
        })?;
        if !f(rec.text)? {
            return Ok(());
        }
    }
}

/// Is `path` JSONL (by its extension)?
pub fn is_jsonl(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e == "jsonl" || e == "json")
}
