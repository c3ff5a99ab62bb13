//! Reading the inputs: files and directories (walked recursively, in sorted order so every run
//! sees the documents in the same order), one document per text/HTML/code file, one per line of
//! a `.jsonl` file (lines split by [`jsonl`](super::jsonl)). Binary files (a NUL byte), empty
//! files and unknown types are skipped and counted.

use super::jsonl::{Lines, Record};
use anyhow::{Context, Result, bail};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// How a file is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `.txt`, `.md`: one document per file.
    Text,
    /// `.html`, `.htm`: one document per file, main text extracted.
    Html,
    /// `.jsonl`: one document per line, text in the `text` field.
    Jsonl,
    /// Source code: one document per file, kept as code.
    Code,
}

/// Extensions read as source code.
pub const CODE_EXTENSIONS: &[&str] = &[
    "py", "rs", "c", "h", "cc", "cpp", "hpp", "js", "mjs", "ts", "go", "java", "sh", "rb", "lua",
];

/// Bytes looked at for a NUL when deciding that a `.jsonl` file is binary (other files are
/// checked whole).
pub const BINARY_SNIFF_BYTES: usize = 8192;

/// The format of a path, from its extension; `None` for files we do not read.
pub fn format_of(path: &Path) -> Option<Format> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "txt" | "md" => Some(Format::Text),
        "html" | "htm" => Some(Format::Html),
        "jsonl" => Some(Format::Jsonl),
        e if CODE_EXTENSIONS.contains(&e) => Some(Format::Code),
        _ => None,
    }
}

/// All files under the inputs, sorted within each directory. A missing input is an error.
pub fn collect_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        let meta =
            std::fs::metadata(input).with_context(|| format!("reading {}", input.display()))?;
        if meta.is_dir() {
            walk(input, &mut out)?;
        } else {
            out.push(input.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading directory {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading directory {}", dir.display()))?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// One document as read, before decoding.
pub struct RawDoc {
    pub id: String,
    pub source: String,
    pub format: Format,
    pub bytes: Vec<u8>,
    /// Invalid UTF-8 sequences already replaced while reading (JSONL lines are decoded here).
    pub invalid_utf8: usize,
}

/// What the reader skipped.
#[derive(Default, Debug, Clone, serde::Serialize)]
pub struct ReadStats {
    pub files: usize,
    pub files_read: usize,
    pub skipped_unsupported: usize,
    pub skipped_binary: usize,
    pub skipped_empty: usize,
    pub bad_lines_skipped: usize,
    pub blank_lines: usize,
}

/// Streams documents from a list of files, a batch at a time.
pub struct Reader {
    files: std::vec::IntoIter<PathBuf>,
    /// The `.jsonl` file being read, and its name.
    jsonl: Option<(Lines<BufReader<File>>, String)>,
    skip_bad_lines: bool,
    pub stats: ReadStats,
    /// Bytes of input files opened so far (for progress).
    pub bytes_opened: u64,
}

impl Reader {
    pub fn new(files: Vec<PathBuf>, skip_bad_lines: bool) -> Self {
        let stats = ReadStats {
            files: files.len(),
            ..Default::default()
        };
        Reader {
            files: files.into_iter(),
            jsonl: None,
            skip_bad_lines,
            stats,
            bytes_opened: 0,
        }
    }

    /// The next batch of up to `max_docs` documents or about `max_bytes` bytes; empty at the end.
    pub fn next_batch(&mut self, max_docs: usize, max_bytes: usize) -> Result<Vec<RawDoc>> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        while batch.len() < max_docs && bytes < max_bytes {
            let Some(doc) = self.next_doc()? else { break };
            bytes += doc.bytes.len();
            batch.push(doc);
        }
        Ok(batch)
    }

    fn next_doc(&mut self) -> Result<Option<RawDoc>> {
        loop {
            if let Some(doc) = self.next_jsonl_line()? {
                return Ok(Some(doc));
            }
            let Some(path) = self.files.next() else {
                return Ok(None);
            };
            let Some(format) = format_of(&path) else {
                self.stats.skipped_unsupported += 1;
                continue;
            };
            let source = path.to_string_lossy().into_owned();
            if format == Format::Jsonl {
                let mut f = BufReader::with_capacity(
                    1 << 20,
                    File::open(&path).with_context(|| format!("reading {source}"))?,
                );
                let len = f.get_ref().metadata().map(|m| m.len()).unwrap_or(0);
                self.bytes_opened += len;
                let head = f.fill_buf().with_context(|| format!("reading {source}"))?;
                if head.is_empty() {
                    self.stats.skipped_empty += 1;
                    continue;
                }
                if memchr::memchr(0, &head[..head.len().min(BINARY_SNIFF_BYTES)]).is_some() {
                    self.stats.skipped_binary += 1;
                    continue;
                }
                self.stats.files_read += 1;
                self.jsonl = Some((Lines::new(f), source));
                continue;
            }
            let mut bytes = Vec::new();
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .with_context(|| format!("reading {source}"))?;
            self.bytes_opened += bytes.len() as u64;
            if bytes.is_empty() {
                self.stats.skipped_empty += 1;
                continue;
            }
            if memchr::memchr(0, &bytes).is_some() {
                self.stats.skipped_binary += 1;
                continue;
            }
            self.stats.files_read += 1;
            return Ok(Some(RawDoc {
                id: source.clone(),
                source,
                format,
                bytes,
                invalid_utf8: 0,
            }));
        }
    }

    /// The next document of the open `.jsonl` file, if any.
    fn next_jsonl_line(&mut self) -> Result<Option<RawDoc>> {
        let Some((lines, source)) = self.jsonl.as_mut() else {
            return Ok(None);
        };
        loop {
            let next = lines
                .next_line()
                .with_context(|| format!("reading {source}"))?;
            let Some((line_no, line)) = next else {
                self.stats.blank_lines += lines.blank;
                self.jsonl = None;
                return Ok(None);
            };
            let (text, invalid_utf8) = super::normalize::decode(line);
            match serde_json::from_str::<Record>(&text) {
                Ok(rec) => {
                    return Ok(Some(RawDoc {
                        id: format!("{source}:{line_no}"),
                        source: source.clone(),
                        format: Format::Jsonl,
                        bytes: rec.text.into_bytes(),
                        invalid_utf8,
                    }));
                }
                Err(e) if self.skip_bad_lines => {
                    crate::detail!("clean: skipping {source}:{line_no}: {e}");
                    self.stats.bad_lines_skipped += 1;
                }
                Err(e) => bail!(
                    "{source}:{line_no}: malformed JSONL line: {e} (pass --skip-bad-lines to skip and count such lines)"
                ),
            }
        }
    }
}
