//! Pass 3 (the second half of step 7, and step 8): the near-duplicate clusters decide which
//! documents stay, the first of each cluster; the others are removed, naming the one kept. The
//! documents that stay have their e-mail and IP addresses scrubbed and are written to the output
//! (under its temp name; [`clean`](super::clean) renames it when the run completes).

use super::CleanConfig;
use super::files::{Doc, JsonlWriter, Removals, SpoolReader};
use super::pass2::Index;
use crate::data::report::StepCounter;
use crate::data::{Lang, pii};
use anyhow::Result;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The near-duplicate clusters of the kept documents, from the LSH index of pass 2.
pub(super) struct NearDups {
    index: Index,
    /// The cluster root of every document (in spool order): itself, or the earliest member.
    roots: Vec<u32>,
}

impl NearDups {
    pub fn new(index: Index) -> Self {
        let roots = index.lsh.clusters();
        NearDups { index, roots }
    }

    /// The document that document `i` is a near-duplicate of, if any.
    fn dup_of(&self, i: usize) -> Option<usize> {
        let root = self.roots[i] as usize;
        (root != i).then_some(root)
    }

    /// Pairs of documents that shared an LSH bucket and were compared.
    pub fn candidate_pairs(&self) -> usize {
        self.index.lsh.candidates
    }

    /// Compared pairs similar enough to be near-duplicates.
    pub fn pairs(&self) -> usize {
        self.index.lsh.matches.len()
    }

    /// Clusters of more than one document.
    pub fn clusters(&self) -> usize {
        let mut has_members = vec![false; self.roots.len()];
        for (i, &r) in self.roots.iter().enumerate() {
            if r as usize != i {
                has_members[r as usize] = true;
            }
        }
        has_members.iter().filter(|&&m| m).count()
    }
}

/// What pass 3 counted.
#[derive(Default)]
pub(super) struct Counts {
    /// Documents that are no near-duplicate, with their bytes before the scrub (step 7).
    pub unique: StepCounter,
    /// Documents written, with their bytes after the scrub (step 8).
    pub kept: StepCounter,
    /// E-mail and IP addresses replaced.
    pub emails: usize,
    pub ips: usize,
    /// Documents written per language.
    pub langs: BTreeMap<String, usize>,
}

impl Counts {
    /// Count a document written, its size before the scrub, and the e-mails and IPs scrubbed.
    fn add(&mut self, doc: &Doc, before: usize, emails: usize, ips: usize) {
        self.unique.add(before);
        self.kept.add(doc.text.len());
        self.emails += emails;
        self.ips += ips;
        *self.langs.entry(doc.lang.as_str().to_string()).or_insert(0) += 1;
    }
}

/// An output line.
#[derive(Serialize)]
struct OutDoc<'a> {
    id: &'a str,
    text: &'a str,
    source: &'a str,
    lang: Lang,
}

/// Run pass 3 from spool file `input` to `output`. Returns the counts.
pub(super) fn run(
    cfg: &CleanConfig,
    near: &NearDups,
    input: &Path,
    output: &Path,
    removals: &mut Removals,
) -> Result<Counts> {
    let mut input = SpoolReader::open(input)?;
    let mut out = JsonlWriter::create(output)?;
    let mut counts = Counts::default();
    let mut idx = 0usize;
    loop {
        let docs = input.next_batch(cfg.batch_docs, cfg.batch_bytes)?;
        if docs.is_empty() {
            break;
        }
        for (doc, emails, ips, before) in scrub(docs, idx, near) {
            removals.shrunk("pii_scrub", before, doc.text.len());
            if let Some(root) = near.dup_of(idx) {
                let sim = near.index.lsh.similarity(idx, root);
                let kept = near.index.ids[root].as_str();
                removals.remove(&doc, "near_duplicate", Some((kept, sim)))?;
            } else {
                counts.add(&doc, before, emails, ips);
                out.write(&OutDoc {
                    id: &doc.id,
                    text: &doc.text,
                    source: &doc.source,
                    lang: doc.lang,
                })?;
            }
            idx += 1;
        }
    }
    out.finish()?;
    Ok(counts)
}

/// Scrub PII from the documents of a batch that stay, in parallel; `first` is the spool index
/// of the batch's first document. Returns each document with its e-mails and IPs replaced, how
/// many of each, and its size in bytes before.
fn scrub(docs: Vec<Doc>, first: usize, near: &NearDups) -> Vec<(Doc, usize, usize, usize)> {
    docs.into_par_iter()
        .enumerate()
        .map(|(k, mut d)| {
            let before = d.text.len();
            if near.dup_of(first + k).is_some() {
                return (d, 0, 0, before);
            }
            let (t, emails, ips) = pii::scrub(&d.text);
            if let Some(t) = t {
                d.text = t;
            }
            (d, emails, ips, before)
        })
        .collect()
}
