//! The cleaning driver: [`clean`] runs the eight steps of [`data`](crate::data) as three passes
//! over the documents, because two steps can only decide once they have seen every document:
//!
//! 1. `pass1`: read, normalize, extract HTML, identify the language, drop exact duplicates, and
//!    count the lines of web pages. The survivors go to spool file 1; the line counts become the
//!    set of boilerplate lines.
//! 2. `pass2`: strip boilerplate lines, apply the quality filters, add MinHash signatures to the
//!    LSH index. The survivors go to spool file 2; the index becomes clusters of near-duplicates.
//! 3. `pass3`: keep the first document of each cluster, scrub PII, write the output.
//!
//! Each pass owns its counters and returns them; [`clean`] assembles the [`Report`] from them.
//! Every file is written under a temp name (`files::TempFiles`) and renamed into place only
//! when the run completes, so a failed run leaves neither a half-written output nor a temp file.

mod files;
mod pass1;
mod pass2;
mod pass3;

use super::dedup::minhash::MinHashConfig;
use super::filters::FilterConfig;
use super::read;
use super::report::{Report, StepCount};
use crate::cli::outputs::{NewDirs, create_dirs};
use anyhow::{Context, Result};
use files::{Removals, Removed, TempFiles};
use pass3::NearDups;
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
    let files = read::collect_files(inputs)?;
    let mut made = create_parents([Some(output), report_path, rejects_path])?;
    let temps = TempFiles::new(output, rejects_path, report_path)?;
    let mut removals = Removals::new(temps.rejects.as_deref())?;
    let (read, boilerplate) = pass1::run(cfg, files, &temps.spool1, &mut removals)?;
    let (judged, index) = pass2::run(
        cfg,
        &boilerplate,
        &temps.spool1,
        &temps.spool2,
        &mut removals,
    )?;
    let _ = std::fs::remove_file(&temps.spool1);
    let near = NearDups::new(index);
    let written = pass3::run(cfg, &near, &temps.spool2, &temps.output, &mut removals)?;
    let removed = removals.finish()?;
    let mut report = assemble(read, boilerplate.len(), judged, &near, written, removed);
    report.seconds = start.elapsed().as_secs_f64();
    commit(&report, &temps, output, report_path, rejects_path)?;
    made.iter_mut().for_each(NewDirs::keep);
    Ok(report)
}

/// Create the folders the outputs go to (e.g. `runs/` in a fresh clone); those made are removed
/// again if the run fails.
fn create_parents(paths: [Option<&Path>; 3]) -> Result<Vec<NewDirs>> {
    let mut made = Vec::new();
    for path in paths.into_iter().flatten() {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            made.push(create_dirs(dir)?);
        }
    }
    Ok(made)
}

/// The report, from what each pass counted.
fn assemble(
    read: pass1::Counts,
    boilerplate_lines: usize,
    judged: pass2::Counts,
    near: &NearDups,
    written: pass3::Counts,
    removed: Removed,
) -> Report {
    let steps = vec![
        StepCount::new("1-3 read+normalize", read.docs.docs, read.nonempty),
        StepCount::new("4 exact dedup", read.nonempty.docs, read.unique),
        StepCount::new(
            "5 boilerplate lines",
            read.unique.docs,
            judged.after_boilerplate,
        ),
        StepCount::new(
            "6 quality filters",
            judged.after_boilerplate.docs,
            judged.kept,
        ),
        StepCount::new("7 near dedup", judged.kept.docs, written.unique),
        StepCount::new("8 PII scrub", written.unique.docs, written.kept),
    ];
    Report {
        files: read.files,
        docs_in: read.docs.docs,
        bytes_in: read.docs.bytes,
        docs_out: written.kept.docs,
        bytes_out: written.kept.bytes,
        removed: removed.docs,
        bytes_removed: removed.bytes,
        langs_out: written.langs,
        steps,
        invalid_utf8_replaced: read.invalid_utf8,
        boilerplate_distinct_lines: boilerplate_lines,
        boilerplate_lines_removed: judged.lines_removed,
        boilerplate_examples: judged.examples,
        c4_docs_rewritten: judged.c4_rewritten,
        near_dup_candidate_pairs: near.candidate_pairs(),
        near_dup_pairs: near.pairs(),
        near_dup_clusters: near.clusters(),
        pii_emails: written.emails,
        pii_ips: written.ips,
        seconds: 0.0,
    }
}

/// Write the report under its temp name, then rename the finished rejects, output and report
/// into place (so a report that cannot be written leaves the old outputs in place).
fn commit(
    report: &Report,
    temps: &TempFiles,
    output: &Path,
    report_path: Option<&Path>,
    rejects_path: Option<&Path>,
) -> Result<()> {
    if let Some(tmp) = &temps.report {
        let json = serde_json::to_vec_pretty(report).context("serializing the report")?;
        std::fs::write(tmp, json).with_context(|| format!("writing {}", tmp.display()))?;
    }
    let renames = [
        (temps.rejects.as_deref(), rejects_path),
        (Some(temps.output.as_path()), Some(output)),
        (temps.report.as_deref(), report_path),
    ];
    for (tmp, path) in renames {
        if let (Some(tmp), Some(path)) = (tmp, path) {
            std::fs::rename(tmp, path)
                .with_context(|| format!("renaming to {}", path.display()))?;
        }
    }
    Ok(())
}
