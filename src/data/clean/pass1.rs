//! Pass 1 (steps 1–4 and the first half of 5): read, normalize, extract the main text of web
//! pages, identify the language, drop empty documents and exact duplicates, and count the lines
//! of web pages. A boilerplate line is one that many pages share, which is only known once every
//! page has been counted; so the survivors go to spool file 1, to be read again by pass 2.
//!
//! The work on one document ([`prepare`]) runs in parallel over a batch while the next batch is
//! read; the decisions that need shared state (the exact-dedup index, the line counts) are then
//! taken one document at a time, in input order, so the result does not depend on the threads.

use super::CleanConfig;
use super::files::{Doc, JsonlWriter, Removals};
use crate::data::dedup::exact::ExactDedup;
use crate::data::dedup::lines::{self, Boilerplate, LineCounter};
use crate::data::read::{RawDoc, ReadStats, Reader};
use crate::data::report::StepCounter;
use crate::data::{Format, Lang, html, lang, normalize};
use anyhow::Result;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// What pass 1 counted.
#[derive(Default)]
pub(super) struct Counts {
    /// What the reader saw and skipped.
    pub files: ReadStats,
    /// Documents read, and their bytes as read.
    pub docs: StepCounter,
    /// Invalid UTF-8 sequences replaced with U+FFFD.
    pub invalid_utf8: usize,
    /// Documents not empty after normalization (steps 1–3).
    pub nonempty: StepCounter,
    /// Documents that are not an exact copy of an earlier one (step 4).
    pub unique: StepCounter,
}

/// Run pass 1 over `files`, writing the survivors to `spool`. Returns the counts and the
/// boilerplate lines (none when `cfg.boilerplate` is off).
pub(super) fn run(
    cfg: &CleanConfig,
    files: Vec<PathBuf>,
    spool: &Path,
    removals: &mut Removals,
) -> Result<(Counts, Boilerplate)> {
    let total: u64 = files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = crate::cli::progress(total, "clean");
    let mut reader = Reader::new(files, cfg.skip_bad_lines);
    let mut pass = Pass::new(spool, cfg.boilerplate)?;
    let mut batch = reader.next_batch(cfg.batch_docs, cfg.batch_bytes)?;
    while !batch.is_empty() {
        let (next, prepared) = rayon::join(
            || reader.next_batch(cfg.batch_docs, cfg.batch_bytes),
            || {
                batch
                    .into_par_iter()
                    .map(|r| prepare(r, cfg.boilerplate))
                    .collect::<Vec<_>>()
            },
        );
        for p in prepared {
            pass.take(p, removals)?;
        }
        batch = next?;
        bar.set_position(reader.bytes_opened);
    }
    bar.finish_and_clear();
    pass.finish(reader.stats)
}

/// Steps 1–3 for one document, and what steps 4 and 5 need of it; run in parallel.
struct Prepared {
    doc: Doc,
    bytes_in: usize,
    /// Bytes once decoded (invalid UTF-8 repaired), and once the HTML is extracted.
    decoded: usize,
    extracted: usize,
    invalid: usize,
    /// The exact-dedup key of the text.
    key: (u64, u64),
    /// The distinct line keys of a web page (empty for other documents).
    line_keys: Vec<u64>,
}

fn prepare(raw: RawDoc, boilerplate: bool) -> Prepared {
    let bytes_in = raw.bytes.len();
    let (mut text, bad) = normalize::decode_owned(raw.bytes);
    let decoded = text.len();
    if raw.format == Format::Html {
        text = html::to_text(&text);
    }
    let extracted = text.len();
    let text = normalize::normalize(text, raw.format == Format::Code);
    let lang = if raw.format == Format::Code {
        Lang::Code
    } else {
        lang::identify(&text)
    };
    let key = ExactDedup::key(&text);
    let line_keys = if boilerplate && raw.format == Format::Html {
        lines::distinct_keys(&text)
    } else {
        Vec::new()
    };
    Prepared {
        doc: Doc {
            id: raw.id,
            source: raw.source,
            format: raw.format,
            lang,
            text,
        },
        bytes_in,
        decoded,
        extracted,
        invalid: bad + raw.invalid_utf8,
        key,
        line_keys,
    }
}

/// The state of pass 1 that sees the documents one at a time, in input order.
struct Pass {
    exact: ExactDedup,
    lines: LineCounter,
    count_lines: bool,
    spool: JsonlWriter,
    counts: Counts,
}

impl Pass {
    fn new(spool: &Path, count_lines: bool) -> Result<Self> {
        Ok(Pass {
            exact: ExactDedup::default(),
            lines: LineCounter::default(),
            count_lines,
            spool: JsonlWriter::create(spool)?,
            counts: Counts::default(),
        })
    }

    /// Remove `p` if it is empty or an exact duplicate; else count its lines and spool it.
    fn take(&mut self, p: Prepared, removals: &mut Removals) -> Result<()> {
        let c = &mut self.counts;
        c.docs.add(p.bytes_in);
        c.invalid_utf8 += p.invalid;
        removals.shrunk("normalize", p.bytes_in, p.decoded);
        removals.shrunk("html_markup", p.decoded, p.extracted);
        removals.shrunk("normalize", p.extracted, p.doc.text.len());
        if p.doc.text.is_empty() {
            return removals.remove(&p.doc, "empty", None);
        }
        c.nonempty.add(p.doc.text.len());
        if let Some(first) = self.exact.check(p.key, &p.doc.id) {
            return removals.remove(&p.doc, "exact_duplicate", Some((&first, 1.0)));
        }
        c.unique.add(p.doc.text.len());
        if p.doc.format == Format::Html && self.count_lines {
            self.lines.add_keys(&p.line_keys);
        }
        self.spool.write(&p.doc)
    }

    /// Close the spool file; the counts and the boilerplate lines.
    fn finish(mut self, files: ReadStats) -> Result<(Counts, Boilerplate)> {
        self.spool.finish()?;
        self.counts.files = files;
        let boilerplate = if self.count_lines {
            self.lines.boilerplate()
        } else {
            Boilerplate::default()
        };
        Ok((self.counts, boilerplate))
    }
}
