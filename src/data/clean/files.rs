//! The files a cleaning run writes: the spool files that carry the documents from one pass to the
//! next, the output and the rejects. All are written under temp names next to the output; the
//! output and the rejects are renamed into place when the run completes, and whatever is left is
//! removed when the run ends, whether it succeeded or failed.

use crate::data::{Format, Lang};
use anyhow::{Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A document between passes (the spool files' record).
#[derive(Serialize, Deserialize)]
pub(super) struct Doc {
    pub id: String,
    pub source: String,
    pub format: Format,
    pub lang: Lang,
    pub text: String,
}

/// The temp paths of a run, `DIR/.NAME.spool1-PID` and so on; removed when dropped.
pub(super) struct TempFiles {
    pub spool1: PathBuf,
    pub spool2: PathBuf,
    pub output: PathBuf,
    pub rejects: Option<PathBuf>,
}

impl TempFiles {
    pub fn new(output: &Path, rejects: Option<&Path>) -> Self {
        let name = output
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let pid = std::process::id();
        TempFiles {
            spool1: output.with_file_name(format!(".{name}.spool1-{pid}")),
            spool2: output.with_file_name(format!(".{name}.spool2-{pid}")),
            output: crate::cli::temp_path(output),
            rejects: rejects.map(crate::cli::temp_path),
        }
    }
}

impl Drop for TempFiles {
    fn drop(&mut self) {
        let all = [&self.spool1, &self.spool2, &self.output];
        for p in all.into_iter().chain(&self.rejects) {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A JSONL file being written: one JSON value per line.
pub(super) struct JsonlWriter {
    w: BufWriter<File>,
    path: PathBuf,
}

impl JsonlWriter {
    pub fn create(path: &Path) -> Result<Self> {
        let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(JsonlWriter {
            w: BufWriter::with_capacity(1 << 20, f),
            path: path.to_path_buf(),
        })
    }

    pub fn write<T: Serialize>(&mut self, value: &T) -> Result<()> {
        serde_json::to_writer(&mut self.w, value).context("serializing a document")?;
        self.w
            .write_all(b"\n")
            .with_context(|| format!("writing {}", self.path.display()))
    }

    /// Flush what is buffered and close the file.
    pub fn finish(mut self) -> Result<()> {
        self.w
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// A spool file read back a batch at a time.
pub(super) struct SpoolReader {
    r: BufReader<File>,
    path: PathBuf,
}

impl SpoolReader {
    pub fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).context("reopening the spool file")?;
        Ok(SpoolReader {
            r: BufReader::with_capacity(1 << 20, f),
            path: path.to_path_buf(),
        })
    }

    /// The next `max_docs` documents or about `max_bytes` bytes (parsed in parallel); empty at
    /// the end.
    pub fn next_batch(&mut self, max_docs: usize, max_bytes: usize) -> Result<Vec<Doc>> {
        let mut lines = Vec::new();
        let mut bytes = 0;
        while lines.len() < max_docs && bytes < max_bytes {
            let mut line = Vec::new();
            let n = self
                .r
                .read_until(b'\n', &mut line)
                .with_context(|| format!("reading {}", self.path.display()))?;
            if n == 0 {
                break;
            }
            bytes += line.len();
            lines.push(line);
        }
        lines
            .into_par_iter()
            .map(|l| serde_json::from_slice::<Doc>(&l).context("reading the spool file"))
            .collect()
    }
}

/// A `--rejects` line.
#[derive(Serialize)]
struct Reject<'a> {
    id: &'a str,
    source: &'a str,
    lang: Lang,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dup_of: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    similarity: Option<f64>,
    text: &'a str,
}

/// The removed documents: counted per reason, and written with their reason to the rejects file
/// when there is one.
pub(super) struct Removals {
    counts: BTreeMap<String, usize>,
    rejects: Option<JsonlWriter>,
}

impl Removals {
    pub fn new(rejects: Option<&Path>) -> Result<Self> {
        Ok(Removals {
            counts: BTreeMap::new(),
            rejects: rejects.map(JsonlWriter::create).transpose()?,
        })
    }

    /// Remove `doc` for `reason`; a duplicate names the document kept and their similarity.
    pub fn remove(&mut self, doc: &Doc, reason: &str, dup: Option<(&str, f64)>) -> Result<()> {
        *self.counts.entry(reason.to_string()).or_insert(0) += 1;
        let Some(w) = self.rejects.as_mut() else {
            return Ok(());
        };
        w.write(&Reject {
            id: &doc.id,
            source: &doc.source,
            lang: doc.lang,
            reason,
            dup_of: dup.map(|d| d.0),
            similarity: dup.map(|d| d.1),
            text: &doc.text,
        })
    }

    /// Finish the rejects file; the number of documents removed per reason.
    pub fn finish(self) -> Result<BTreeMap<String, usize>> {
        if let Some(w) = self.rejects {
            w.finish()?;
        }
        Ok(self.counts)
    }
}
