//! The files a cleaning run writes: the spool files that carry the documents from one pass to the
//! next, the output and the rejects. All are written under temp names next to the output; the
//! output and the rejects are renamed into place when the run completes, and whatever is left is
//! removed when the run ends, whether it succeeded or failed.

use crate::cli::outputs::{remove_stale_temps, temp_sibling};
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

/// The temp paths of a run, `DIR/.NAME.spool1-PID` and so on; removed when dropped, so a run
/// that fails leaves none. Those of earlier runs that died are removed by [`TempFiles::new`].
pub(super) struct TempFiles {
    pub spool1: PathBuf,
    pub spool2: PathBuf,
    pub output: PathBuf,
    pub rejects: Option<PathBuf>,
    pub report: Option<PathBuf>,
}

impl TempFiles {
    /// The temp paths for `output`, `rejects` and `report`, after removing those that runs
    /// which no longer run left beside them.
    pub fn new(output: &Path, rejects: Option<&Path>, report: Option<&Path>) -> Result<Self> {
        for path in [Some(output), rejects, report].into_iter().flatten() {
            remove_stale_temps(path, &["tmp", "spool1", "spool2"])?;
        }
        Ok(TempFiles {
            spool1: temp_sibling(output, "spool1"),
            spool2: temp_sibling(output, "spool2"),
            output: crate::cli::temp_path(output),
            rejects: rejects.map(crate::cli::temp_path),
            report: report.map(crate::cli::temp_path),
        })
    }
}

impl Drop for TempFiles {
    fn drop(&mut self) {
        let all = [&self.spool1, &self.spool2, &self.output];
        for p in all.into_iter().chain(&self.rejects).chain(&self.report) {
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
        // The serializer writes straight into the file's buffer, so its error may be the disk's.
        serde_json::to_writer(&mut self.w, value)
            .map_err(anyhow::Error::from)
            .and_then(|()| self.w.write_all(b"\n").map_err(anyhow::Error::from))
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
        let f = File::open(path).with_context(|| format!("reopening {}", path.display()))?;
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
            .map(|l| {
                serde_json::from_slice::<Doc>(&l)
                    .with_context(|| format!("reading {}", self.path.display()))
            })
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

/// The rules that remove bytes inside documents rather than whole documents; each document's
/// shrinking is attributed to one of them as it happens (see [`Removals::shrunk`]).
pub(super) const IN_DOC_RULES: &[&str] = &[
    "html_markup",
    "normalize",
    "boilerplate_lines",
    "c4_lines",
    "pii_scrub",
];

/// The removed documents: counted per reason, and written with their reason to the rejects file
/// when there is one; and every byte removed, per rule. A document's bytes as read go to the
/// rules that shrink it on its way ([`IN_DOC_RULES`]) and, when it is removed, what is left of
/// it to the reason it was removed for; so the bytes sum to the bytes read less those written.
pub(super) struct Removals {
    counts: BTreeMap<String, usize>,
    bytes: BTreeMap<String, i64>,
    rejects: Option<JsonlWriter>,
}

impl Removals {
    pub fn new(rejects: Option<&Path>) -> Result<Self> {
        Ok(Removals {
            counts: BTreeMap::new(),
            bytes: IN_DOC_RULES.iter().map(|r| (r.to_string(), 0)).collect(),
            rejects: rejects.map(JsonlWriter::create).transpose()?,
        })
    }

    /// A rule of [`IN_DOC_RULES`] took a document from `before` to `after` bytes (an edit that
    /// lengthens it, such as U+FFFD for one invalid byte, counts as negative).
    pub fn shrunk(&mut self, rule: &'static str, before: usize, after: usize) {
        debug_assert!(IN_DOC_RULES.contains(&rule), "{rule}");
        *self.bytes.entry(rule.to_string()).or_insert(0) += before as i64 - after as i64;
    }

    /// Remove `doc` for `reason`; a duplicate names the document kept and their similarity.
    pub fn remove(&mut self, doc: &Doc, reason: &str, dup: Option<(&str, f64)>) -> Result<()> {
        *self.counts.entry(reason.to_string()).or_insert(0) += 1;
        *self.bytes.entry(reason.to_string()).or_insert(0) += doc.text.len() as i64;
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

    /// Finish the rejects file; the number of documents removed per reason, and the bytes
    /// removed per rule.
    pub fn finish(self) -> Result<Removed> {
        if let Some(w) = self.rejects {
            w.finish()?;
        }
        Ok(Removed {
            docs: self.counts,
            bytes: self.bytes,
        })
    }
}

/// What [`Removals`] counted.
pub(super) struct Removed {
    /// Documents removed per reason.
    pub docs: BTreeMap<String, usize>,
    /// Bytes removed per rule: the reasons, and [`IN_DOC_RULES`].
    pub bytes: BTreeMap<String, i64>,
}
