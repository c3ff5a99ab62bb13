//! JSONL documents: one JSON object per line, the document's text in its `text` field (other
//! fields are ignored). Every stage reads documents this way: `clean` its `.jsonl` inputs (through
//! [`read`](super::read), which repairs invalid UTF-8 first and can skip bad lines), and the
//! tokenizer and the dataset `clean`'s output (through [`for_each_doc`], where a bad line is an
//! error: the file was written by us, so a bad line means it is damaged).

use anyhow::{Context, Result};
use std::io::BufRead;
use std::path::Path;

/// A JSONL record: only `text` is required.
#[derive(serde::Deserialize)]
pub struct Record {
    pub text: String,
}

/// The lines of a JSONL stream that hold something: blank lines are skipped and counted.
pub struct Lines<R> {
    reader: R,
    line: Vec<u8>,
    /// Lines read so far, blank ones included (so the number of the last line returned).
    pub number: usize,
    /// Blank lines skipped so far.
    pub blank: usize,
}

impl<R: BufRead> Lines<R> {
    pub fn new(reader: R) -> Self {
        Lines {
            reader,
            line: Vec::new(),
            number: 0,
            blank: 0,
        }
    }

    /// The next non-blank line (its newline included) and its number from 1; `None` at the end.
    pub fn next_line(&mut self) -> std::io::Result<Option<(usize, &[u8])>> {
        loop {
            self.line.clear();
            if self.reader.read_until(b'\n', &mut self.line)? == 0 {
                return Ok(None);
            }
            self.number += 1;
            if !self.line.iter().all(u8::is_ascii_whitespace) {
                return Ok(Some((self.number, &self.line)));
            }
            self.blank += 1;
        }
    }
}

/// Call `f(text)` for every document of `path`, in order, until it returns `false`. Blank lines
/// are skipped. A bad line is an error naming the file and line.
pub fn for_each_doc(path: &Path, mut f: impl FnMut(String) -> Result<bool>) -> Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut lines = Lines::new(std::io::BufReader::with_capacity(1 << 20, file));
    while let Some((n, line)) = lines
        .next_line()
        .with_context(|| format!("reading {}", path.display()))?
    {
        let rec: Record = serde_json::from_slice(line).with_context(|| {
            format!(
                "{}: line {n}: expected a JSON object with a \"text\" string",
                path.display()
            )
        })?;
        if !f(rec.text)? {
            return Ok(());
        }
    }
    Ok(())
}

/// Is `path` JSONL (by its extension)?
pub fn is_jsonl(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e == "jsonl" || e == "json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_lines_are_skipped_but_numbered_and_counted() {
        let mut lines = Lines::new(&b"{\"text\":\"a\"}\n\n  \r\n{\"text\":\"b\"}"[..]);
        let first = lines.next_line().unwrap();
        assert_eq!(first, Some((1, &b"{\"text\":\"a\"}\n"[..])));
        let second = lines.next_line().unwrap();
        assert_eq!(second, Some((4, &b"{\"text\":\"b\"}"[..])));
        assert_eq!(lines.next_line().unwrap(), None);
        assert_eq!(lines.blank, 2);
    }
}
