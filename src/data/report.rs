//! The run summary: what came in, what went out, and why each removed document was removed.

use serde::Serialize;
use std::collections::BTreeMap;

use super::read::ReadStats;

/// Documents going into and out of one step.
#[derive(Serialize, Debug, Clone)]
pub struct StepCount {
    pub step: String,
    pub docs_in: usize,
    pub docs_out: usize,
    pub bytes_out: u64,
}

impl StepCount {
    /// The row of step `step`: `docs_in` documents came in, `out` went out.
    pub fn new(step: &str, docs_in: usize, out: StepCounter) -> Self {
        StepCount {
            step: step.to_string(),
            docs_in,
            docs_out: out.docs,
            bytes_out: out.bytes,
        }
    }
}

/// Documents and their bytes, counted as a step lets them through.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepCounter {
    pub docs: usize,
    pub bytes: u64,
}

impl StepCounter {
    /// Count one document of `bytes` bytes.
    pub fn add(&mut self, bytes: usize) {
        self.docs += 1;
        self.bytes += bytes as u64;
    }
}

/// Everything counted during a run. Written as JSON by `--report`, printed as a table.
#[derive(Serialize, Debug, Clone, Default)]
pub struct Report {
    pub files: ReadStats,
    pub docs_in: usize,
    pub bytes_in: u64,
    pub docs_out: usize,
    pub bytes_out: u64,
    /// Removed documents per reason.
    pub removed: BTreeMap<String, usize>,
    /// Bytes removed per rule: every reason of `removed` (what was left of its documents when
    /// they were removed) and the rules that cut inside documents: `html_markup`, `normalize`
    /// (invalid UTF-8 repaired, NFC, control characters, spaces; a repair can add bytes),
    /// `boilerplate_lines`, `c4_lines` (lines C4 dropped from pages it kept) and `pii_scrub`
    /// (negative when a placeholder is longer than what it replaced). The values sum to
    /// `bytes_in - bytes_out`.
    pub bytes_removed: BTreeMap<String, i64>,
    /// Documents kept per language.
    pub langs_out: BTreeMap<String, usize>,
    /// Per-step document counts, in pipeline order.
    pub steps: Vec<StepCount>,
    pub invalid_utf8_replaced: usize,
    pub boilerplate_distinct_lines: usize,
    pub boilerplate_lines_removed: usize,
    /// The first distinct boilerplate lines removed, for inspection.
    pub boilerplate_examples: Vec<String>,
    pub c4_docs_rewritten: usize,
    pub near_dup_candidate_pairs: usize,
    pub near_dup_pairs: usize,
    pub near_dup_clusters: usize,
    pub pii_emails: usize,
    pub pii_ips: usize,
    pub seconds: f64,
}

impl Report {
    /// The "removed" rows of [`Report::table`]: documents and bytes per reason, then the bytes
    /// cut inside documents per rule.
    fn write_removed(&self, s: &mut String) {
        use std::fmt::Write;
        let bytes = |r: &str| self.bytes_removed.get(r).copied().unwrap_or(0);
        let _ = writeln!(
            s,
            "{:<32} {:>6} {:>12}",
            "removed by reason:", "docs", "bytes"
        );
        let mut reasons: Vec<_> = self.removed.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (r, n) in reasons {
            let _ = writeln!(s, "  {r:<30} {n:>6} {:>12}", bytes(r));
        }
        let _ = writeln!(s, "{:<32} {:>19}", "removed inside documents:", "bytes");
        for (r, b) in &self.bytes_removed {
            if !self.removed.contains_key(r) {
                let _ = writeln!(s, "  {r:<30} {b:>19}");
            }
        }
    }

    /// The summary table printed at the end of a run.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mb = |b: u64| b as f64 / 1e6;
        let mut s = String::new();
        let f = &self.files;
        let _ = writeln!(
            s,
            "files: {} seen, {} read, skipped {} unsupported, {} binary, {} empty; {} bad JSONL lines skipped",
            f.files,
            f.files_read,
            f.skipped_unsupported,
            f.skipped_binary,
            f.skipped_empty,
            f.bad_lines_skipped
        );
        let _ = writeln!(
            s,
            "{:<22} {:>8} {:>8} {:>10}",
            "step", "docs in", "docs out", "MB out"
        );
        for st in &self.steps {
            let _ = writeln!(
                s,
                "{:<22} {:>8} {:>8} {:>10.2}",
                st.step,
                st.docs_in,
                st.docs_out,
                mb(st.bytes_out)
            );
        }
        self.write_removed(&mut s);
        let _ = writeln!(
            s,
            "boilerplate: {} distinct lines, {} lines removed; C4 rewrote {} docs; invalid UTF-8 replaced: {}",
            self.boilerplate_distinct_lines,
            self.boilerplate_lines_removed,
            self.c4_docs_rewritten,
            self.invalid_utf8_replaced
        );
        if !self.boilerplate_examples.is_empty() {
            let ex: Vec<String> = self
                .boilerplate_examples
                .iter()
                .map(|l| format!("{l:?}"))
                .collect();
            let _ = writeln!(s, "boilerplate examples: {}", ex.join(", "));
        }
        let _ = writeln!(
            s,
            "near-dup: {} candidate pairs, {} similar pairs, {} clusters; PII: {} e-mails, {} IPs",
            self.near_dup_candidate_pairs,
            self.near_dup_pairs,
            self.near_dup_clusters,
            self.pii_emails,
            self.pii_ips
        );
        let langs: Vec<String> = self
            .langs_out
            .iter()
            .map(|(l, n)| format!("{l} {n}"))
            .collect();
        let _ = write!(
            s,
            "kept {} of {} docs ({:.2} of {:.2} MB), langs: {}, {:.2} s",
            self.docs_out,
            self.docs_in,
            mb(self.bytes_out),
            mb(self.bytes_in),
            langs.join(", "),
            self.seconds
        );
        s
    }
}
