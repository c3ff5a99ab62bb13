//! Stage 1, data cleaning: raw text → normalize → filter → dedup → PII scrub → clean JSONL.
//!
//! "数据质量 > 数量" (data quality over quantity): a model learns whatever its data repeats, so
//! this stage removes what a model should not learn from: broken text, page chrome, junk pages,
//! and copies. The steps run as a pipeline; each sees only the documents the earlier ones kept:
//!
//! 1. [`read`](crate::data::read) + [`normalize`](crate::data::normalize): files → documents; UTF-8 repaired, NFC, control characters and
//!    whitespace normalized.
//! 2. [`html`](crate::data::html): web pages → main text.
//! 3. [`lang`](crate::data::lang): `en`, `zh`, `code` or `other`, by script.
//! 4. [`dedup::exact`](crate::data::dedup::exact): identical documents (cheapest removal first; copies would get the same
//!    verdicts from every later step anyway).
//! 5. [`dedup::lines`](crate::data::dedup::lines): navigation and footer lines shared by many pages (before the quality
//!    filters, so a page is judged on its own text, not its menu).
//! 6. [`filters`](crate::data::filters): Gopher, C4 and FineWeb rules for English, character rules for Chinese, code rules.
//! 7. [`dedup::minhash`](crate::data::dedup::minhash): near-duplicates (after filtering, so the expensive index holds only
//!    documents we would keep).
//! 8. [`pii`](crate::data::pii): e-mail and IP addresses replaced (last, on the text that is actually written).
//!
//! Memory stays bounded by the dedup indexes: documents stream through in batches (processed in
//! parallel with rayon, then handled in input order so the output is deterministic), and the two
//! places that need global knowledge (boilerplate counts, MinHash clusters) spool the surviving
//! documents to a temp file and read them back.

pub mod dedup;
pub mod filters;
pub mod html;
pub mod jsonl;
pub mod lang;
pub mod normalize;
pub mod pii;
pub mod read;
pub mod report;
pub mod text;

pub use filters::{FilterConfig, RuleSets};
pub use lang::Lang;
pub use read::Format;
pub use report::Report;

use anyhow::{Context, Result};
use dedup::exact::ExactDedup;
use dedup::lines::{Boilerplate, LineCounter};
use dedup::minhash::{Lsh, MinHashConfig, MinHasher};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Documents per batch (a batch is processed in parallel).
pub const BATCH_DOCS: usize = 2048;
/// Distinct boilerplate lines listed in the report as examples.
pub const BOILERPLATE_EXAMPLES: usize = 12;
/// Bytes per batch, roughly.
pub const BATCH_BYTES: usize = 4 << 20;

/// Everything that can be tuned in a run. `Default` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct CleanConfig {
    pub filters: FilterConfig,
    pub minhash: MinHashConfig,
    /// Remove boilerplate lines shared across web pages.
    pub boilerplate: bool,
    /// Skip (and count) malformed JSONL lines instead of failing.
    pub skip_bad_lines: bool,
    pub batch_docs: usize,
    pub batch_bytes: usize,
}

impl Default for CleanConfig {
    fn default() -> Self {
        CleanConfig {
            filters: FilterConfig::default(),
            minhash: MinHashConfig::default(),
            boilerplate: true,
            skip_bad_lines: false,
            batch_docs: BATCH_DOCS,
            batch_bytes: BATCH_BYTES,
        }
    }
}

/// A document between steps (also the spool file's record).
#[derive(Serialize, Deserialize)]
struct Doc {
    id: String,
    source: String,
    format: Format,
    lang: Lang,
    text: String,
}

/// An output line.
#[derive(Serialize)]
struct OutDoc<'a> {
    id: &'a str,
    text: &'a str,
    source: &'a str,
    lang: Lang,
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

/// Temp files removed when the run ends, whether it succeeds or fails.
struct TempFiles(Vec<PathBuf>);

impl Drop for TempFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn create(path: &Path) -> Result<BufWriter<File>> {
    let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    Ok(BufWriter::with_capacity(1 << 20, f))
}

fn write_json<T: Serialize>(w: &mut impl Write, value: &T, path: &Path) -> Result<()> {
    serde_json::to_writer(&mut *w, value).context("serializing a document")?;
    w.write_all(b"\n")
        .with_context(|| format!("writing {}", path.display()))
}

/// Optional rejects writer.
struct Rejects {
    out: Option<(BufWriter<File>, PathBuf)>,
}

impl Rejects {
    fn write(
        &mut self,
        doc: &Doc,
        reason: &str,
        dup_of: Option<&str>,
        similarity: Option<f64>,
    ) -> Result<()> {
        if let Some((w, path)) = self.out.as_mut() {
            let r = Reject {
                id: &doc.id,
                source: &doc.source,
                lang: doc.lang,
                reason,
                dup_of,
                similarity,
                text: &doc.text,
            };
            write_json(w, &r, path)?;
        }
        Ok(())
    }
}

/// Read up to `max_docs` spooled documents or about `max_bytes` bytes.
fn read_spool(
    r: &mut BufReader<File>,
    max_docs: usize,
    max_bytes: usize,
    path: &Path,
) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut bytes = 0;
    while out.len() < max_docs && bytes < max_bytes {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)
            .with_context(|| format!("reading {}", path.display()))?
            == 0
        {
            break;
        }
        bytes += line.len();
        out.push(line);
    }
    Ok(out)
}

fn parse_spool(lines: Vec<Vec<u8>>) -> Result<Vec<Doc>> {
    lines
        .into_par_iter()
        .map(|l| serde_json::from_slice::<Doc>(&l).context("reading the spool file"))
        .collect()
}

/// Steps 1–3 for one document, run in parallel.
struct Prepared {
    doc: Doc,
    bytes_in: usize,
    invalid: usize,
    key: (u64, u64),
    line_keys: Vec<u64>,
}

fn prepare(raw: read::RawDoc, boilerplate: bool) -> Prepared {
    let bytes_in = raw.bytes.len();
    let (mut text, bad) = normalize::decode_owned(raw.bytes);
    if raw.format == Format::Html {
        text = html::to_text(&text);
    }
    let text = normalize::normalize(text, raw.format == Format::Code);
    let lang = if raw.format == Format::Code {
        Lang::Code
    } else {
        lang::identify(&text)
    };
    let key = ExactDedup::key(&text);
    let line_keys = if boilerplate && raw.format == Format::Html {
        dedup::lines::distinct_keys(&text)
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
        invalid: bad + raw.invalid_utf8,
        key,
        line_keys,
    }
}

/// Steps 5–7 (first half) for one document, run in parallel.
enum Judged {
    Removed(Doc, &'static str),
    Kept(Doc, Vec<u32>),
}

fn judge(
    mut doc: Doc,
    bp: &Boilerplate,
    cfg: &CleanConfig,
    mh: &MinHasher,
) -> (Judged, Vec<String>, bool) {
    let mut stripped = Vec::new();
    if doc.format == Format::Html {
        let (t, lines) = bp.strip_lines(&doc.text);
        stripped = lines.into_iter().map(str::to_string).collect();
        if let Some(t) = t {
            doc.text = t;
        }
        if doc.text.is_empty() {
            return (
                Judged::Removed(doc, "empty_after_boilerplate"),
                stripped,
                false,
            );
        }
    }
    match filters::apply(&doc.text, doc.lang, doc.format, &cfg.filters) {
        Err(reason) => (Judged::Removed(doc, reason), stripped, false),
        Ok(rewritten) => {
            let rw = rewritten.is_some();
            if let Some(t) = rewritten {
                doc.text = t;
            }
            let sig = mh.signature(&doc.text, doc.lang);
            (Judged::Kept(doc, sig), stripped, rw)
        }
    }
}

/// Clean `inputs` (files or directories) into `output` (JSONL), optionally writing the report
/// (JSON) and every removed document with its reason (JSONL). Outputs appear only when the run
/// completes (written to temp files, then renamed).
pub fn clean(
    cfg: &CleanConfig,
    inputs: &[PathBuf],
    output: &Path,
    report_path: Option<&Path>,
    rejects_path: Option<&Path>,
) -> Result<Report> {
    let start = std::time::Instant::now();
    let mut report = Report::default();
    let files = read::collect_files(inputs)?;
    // Create the folders the outputs go to (e.g. `runs/` in a fresh clone).
    for path in [Some(output), report_path, rejects_path]
        .into_iter()
        .flatten()
    {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    let total: u64 = files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();

    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let pid = std::process::id();
    let spool1 = output.with_file_name(format!(".{name}.spool1-{pid}"));
    let spool2 = output.with_file_name(format!(".{name}.spool2-{pid}"));
    let out_tmp = crate::cli::temp_path(output);
    let rej_tmp = rejects_path.map(crate::cli::temp_path);
    let mut temps = TempFiles(vec![spool1.clone(), spool2.clone(), out_tmp.clone()]);
    temps.0.extend(rej_tmp.clone());
    let mut rejects = Rejects {
        out: match &rej_tmp {
            Some(p) => Some((create(p)?, p.clone())),
            None => None,
        },
    };

    // Pass 1: read, normalize, extract, identify, exact dedup, count lines.
    let bar = crate::cli::progress(total, "clean");
    let mut reader = read::Reader::new(files, cfg.skip_bad_lines);
    let mut exact = ExactDedup::default();
    let mut counter = LineCounter::default();
    let mut w1 = create(&spool1)?;
    let (mut n_nonempty, mut n_unique, mut bytes_nonempty, mut bytes_unique) = (0, 0, 0u64, 0u64);
    let mut batch = reader.next_batch(cfg.batch_docs, cfg.batch_bytes)?;
    while !batch.is_empty() {
        let bp = cfg.boilerplate;
        let (next, prepared) = rayon::join(
            || reader.next_batch(cfg.batch_docs, cfg.batch_bytes),
            || {
                batch
                    .into_par_iter()
                    .map(|r| prepare(r, bp))
                    .collect::<Vec<_>>()
            },
        );
        for p in prepared {
            report.docs_in += 1;
            report.bytes_in += p.bytes_in as u64;
            report.invalid_utf8_replaced += p.invalid;
            if p.doc.text.is_empty() {
                report.remove("empty");
                rejects.write(&p.doc, "empty", None, None)?;
                continue;
            }
            n_nonempty += 1;
            bytes_nonempty += p.doc.text.len() as u64;
            if let Some(first) = exact.check(p.key, &p.doc.id) {
                report.remove("exact_duplicate");
                rejects.write(&p.doc, "exact_duplicate", Some(&first), Some(1.0))?;
                continue;
            }
            n_unique += 1;
            bytes_unique += p.doc.text.len() as u64;
            if p.doc.format == Format::Html && cfg.boilerplate {
                counter.add_keys(&p.line_keys);
            }
            write_json(&mut w1, &p.doc, &spool1)?;
        }
        batch = next?;
        bar.set_position(reader.bytes_opened);
    }
    bar.finish_and_clear();
    w1.flush()
        .with_context(|| format!("writing {}", spool1.display()))?;
    drop(w1);
    report.files = reader.stats.clone();
    let step = |name: &str, docs_in, docs_out, bytes_out| report::StepCount {
        step: name.to_string(),
        docs_in,
        docs_out,
        bytes_out,
    };
    report.steps.push(step(
        "1-3 read+normalize",
        report.docs_in,
        n_nonempty,
        bytes_nonempty,
    ));
    report
        .steps
        .push(step("4 exact dedup", n_nonempty, n_unique, bytes_unique));

    // Pass 2: boilerplate lines, quality filters, MinHash signatures.
    let bp = if cfg.boilerplate {
        counter.boilerplate()
    } else {
        Boilerplate::default()
    };
    drop(counter);
    report.boilerplate_distinct_lines = bp.len();
    let mh = MinHasher::new(cfg.minhash);
    let mut lsh = Lsh::new(&cfg.minhash);
    let mut ids: Vec<String> = Vec::new();
    let mut r1 = BufReader::with_capacity(
        1 << 20,
        File::open(&spool1).context("reopening the spool file")?,
    );
    let mut w2 = create(&spool2)?;
    let (mut n_bp, mut bytes_bp, mut n_kept, mut bytes_kept) = (0, 0u64, 0, 0u64);
    loop {
        let lines = read_spool(&mut r1, cfg.batch_docs, cfg.batch_bytes, &spool1)?;
        if lines.is_empty() {
            break;
        }
        let docs = parse_spool(lines)?;
        let judged: Vec<_> = docs
            .into_par_iter()
            .map(|d| judge(d, &bp, cfg, &mh))
            .collect();
        for (j, stripped, rewritten) in judged {
            report.boilerplate_lines_removed += stripped.len();
            for line in stripped {
                let ex = &mut report.boilerplate_examples;
                if ex.len() < BOILERPLATE_EXAMPLES && !ex.contains(&line) {
                    ex.push(line);
                }
            }
            report.c4_docs_rewritten += usize::from(rewritten);
            match j {
                Judged::Removed(doc, reason) => {
                    if reason != "empty_after_boilerplate" {
                        n_bp += 1;
                        bytes_bp += doc.text.len() as u64;
                    }
                    report.remove(reason);
                    rejects.write(&doc, reason, None, None)?;
                }
                Judged::Kept(doc, sig) => {
                    n_bp += 1;
                    bytes_bp += doc.text.len() as u64;
                    n_kept += 1;
                    bytes_kept += doc.text.len() as u64;
                    lsh.add(&mh, sig);
                    ids.push(doc.id.clone());
                    write_json(&mut w2, &doc, &spool2)?;
                }
            }
        }
    }
    w2.flush()
        .with_context(|| format!("writing {}", spool2.display()))?;
    drop(w2);
    drop(r1);
    let _ = std::fs::remove_file(&spool1);
    report
        .steps
        .push(step("5 boilerplate lines", n_unique, n_bp, bytes_bp));
    report
        .steps
        .push(step("6 quality filters", n_bp, n_kept, bytes_kept));

    // Near-duplicate clusters.
    let roots = lsh.clusters();
    report.near_dup_candidate_pairs = lsh.candidates;
    report.near_dup_pairs = lsh.matches.len();
    let mut has_members = vec![false; roots.len()];
    for (i, &r) in roots.iter().enumerate() {
        if r as usize != i {
            has_members[r as usize] = true;
        }
    }
    report.near_dup_clusters = has_members.iter().filter(|&&m| m).count();

    // Pass 3: drop near-duplicates, scrub PII, write the output.
    let mut r2 = BufReader::with_capacity(
        1 << 20,
        File::open(&spool2).context("reopening the spool file")?,
    );
    let mut out = create(&out_tmp)?;
    let (mut n_unique2, mut bytes_unique2) = (0, 0u64);
    let mut idx = 0usize;
    loop {
        let lines = read_spool(&mut r2, cfg.batch_docs, cfg.batch_bytes, &spool2)?;
        if lines.is_empty() {
            break;
        }
        let docs = parse_spool(lines)?;
        let base = idx;
        let scrubbed: Vec<_> = docs
            .into_par_iter()
            .enumerate()
            .map(|(k, mut d)| {
                if roots[base + k] as usize != base + k {
                    return (d, 0, 0);
                }
                let (t, e, ip) = pii::scrub(&d.text);
                if let Some(t) = t {
                    d.text = t;
                }
                (d, e, ip)
            })
            .collect();
        for (doc, e, ip) in scrubbed {
            let root = roots[idx] as usize;
            if root != idx {
                let sim = lsh.similarity(idx, root);
                report.remove("near_duplicate");
                rejects.write(&doc, "near_duplicate", Some(&ids[root]), Some(sim))?;
            } else {
                n_unique2 += 1;
                bytes_unique2 += doc.text.len() as u64;
                report.pii_emails += e;
                report.pii_ips += ip;
                *report
                    .langs_out
                    .entry(doc.lang.as_str().to_string())
                    .or_insert(0) += 1;
                let line = OutDoc {
                    id: &doc.id,
                    text: &doc.text,
                    source: &doc.source,
                    lang: doc.lang,
                };
                write_json(&mut out, &line, &out_tmp)?;
            }
            idx += 1;
        }
    }
    out.flush()
        .with_context(|| format!("writing {}", out_tmp.display()))?;
    drop(out);
    report
        .steps
        .push(step("7 near dedup", n_kept, n_unique2, bytes_unique2));
    report
        .steps
        .push(step("8 PII scrub", n_unique2, n_unique2, bytes_unique2));
    report.docs_out = n_unique2;
    report.bytes_out = bytes_unique2;
    report.seconds = start.elapsed().as_secs_f64();

    // Commit: rename the temp files into place.
    if let (Some((mut w, tmp)), Some(path)) = (rejects.out.take(), rejects_path) {
        w.flush()
            .with_context(|| format!("writing {}", tmp.display()))?;
        drop(w);
        std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    }
    std::fs::rename(&out_tmp, output)
        .with_context(|| format!("renaming to {}", output.display()))?;
    if let Some(path) = report_path {
        let json = serde_json::to_vec_pretty(&report).context("serializing the report")?;
        crate::cli::write_atomic(path, &json)?;
    }
    drop(temps);
    Ok(report)
}
