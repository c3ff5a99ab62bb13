//! Pass 2 (steps 5–6 and the first half of 7): strip the boilerplate lines from web pages, apply
//! the quality filters, and add the MinHash signature of every document kept to the LSH index.
//! Which documents are near-duplicates is only known once every signature is in the index; so
//! the survivors go to spool file 2, to be read again by pass 3.

use super::files::{Doc, JsonlWriter, Removals, SpoolReader};
use super::{BOILERPLATE_EXAMPLES, CleanConfig};
use crate::data::Format;
use crate::data::dedup::lines::Boilerplate;
use crate::data::dedup::minhash::{Lsh, MinHasher};
use crate::data::filters;
use crate::data::report::StepCounter;
use anyhow::Result;
use rayon::prelude::*;
use std::path::Path;

/// What pass 2 counted.
#[derive(Default)]
pub(super) struct Counts {
    /// Documents not empty once their boilerplate lines are stripped (step 5).
    pub after_boilerplate: StepCounter,
    /// Documents that passed the quality filters (step 6).
    pub kept: StepCounter,
    /// Boilerplate lines stripped, over all documents.
    pub lines_removed: usize,
    /// The first distinct boilerplate lines stripped, at most [`BOILERPLATE_EXAMPLES`].
    pub examples: Vec<String>,
    /// Documents the C4 rules rewrote (by dropping lines).
    pub c4_rewritten: usize,
}

/// The kept documents: their signatures in an LSH index, their ids in spool order.
pub(super) struct Index {
    pub lsh: Lsh,
    pub ids: Vec<String>,
}

/// Run pass 2 from spool file `input` to spool file `output`. Returns the counts and the index.
pub(super) fn run(
    cfg: &CleanConfig,
    boilerplate: &Boilerplate,
    input: &Path,
    output: &Path,
    removals: &mut Removals,
) -> Result<(Counts, Index)> {
    let hasher = MinHasher::new(cfg.minhash);
    let mut input = SpoolReader::open(input)?;
    let mut pass = Pass {
        hasher: &hasher,
        index: Index {
            lsh: Lsh::new(&cfg.minhash),
            ids: Vec::new(),
        },
        spool: JsonlWriter::create(output)?,
        counts: Counts::default(),
    };
    loop {
        let docs = input.next_batch(cfg.batch_docs, cfg.batch_bytes)?;
        if docs.is_empty() {
            break;
        }
        let judged: Vec<_> = docs
            .into_par_iter()
            .map(|d| judge(d, boilerplate, cfg, &hasher))
            .collect();
        for j in judged {
            pass.take(j, removals)?;
        }
    }
    pass.spool.finish()?;
    Ok((pass.counts, pass.index))
}

/// Whether a document stays.
enum Verdict {
    Removed(&'static str),
    /// Kept, with its MinHash signature.
    Kept(Vec<u32>),
}

/// Steps 5–6 and the signature for one document; run in parallel.
struct Judged {
    doc: Doc,
    verdict: Verdict,
    /// The boilerplate lines stripped from it.
    stripped: Vec<String>,
    /// Its bytes before and after the boilerplate lines were stripped.
    sizes_boilerplate: (usize, usize),
    /// Whether the C4 rules rewrote it, and its bytes before and after.
    rewritten: bool,
    sizes_c4: (usize, usize),
}

fn judge(mut doc: Doc, bp: &Boilerplate, cfg: &CleanConfig, mh: &MinHasher) -> Judged {
    let mut stripped = Vec::new();
    let before = doc.text.len();
    if doc.format == Format::Html {
        let (t, lines) = bp.strip_lines(&doc.text);
        stripped = lines.into_iter().map(str::to_string).collect();
        if let Some(t) = t {
            doc.text = t;
        }
    }
    let after = doc.text.len();
    let mut j = Judged {
        doc,
        verdict: Verdict::Removed("empty_after_boilerplate"),
        stripped,
        sizes_boilerplate: (before, after),
        rewritten: false,
        sizes_c4: (after, after),
    };
    if j.doc.text.is_empty() {
        return j;
    }
    let doc = &mut j.doc;
    j.verdict = match filters::apply(&doc.text, doc.lang, doc.format, &cfg.filters) {
        Err(reason) => Verdict::Removed(reason),
        Ok(rewritten) => {
            if let Some(t) = rewritten {
                doc.text = t;
                j.rewritten = true;
                j.sizes_c4.1 = doc.text.len();
            }
            Verdict::Kept(mh.signature(&doc.text, doc.lang))
        }
    };
    j
}

/// The state of pass 2 that sees the documents one at a time, in spool order.
struct Pass<'a> {
    hasher: &'a MinHasher,
    index: Index,
    spool: JsonlWriter,
    counts: Counts,
}

impl Pass<'_> {
    /// Count what `j` lost, then remove it or index and spool it.
    fn take(&mut self, j: Judged, removals: &mut Removals) -> Result<()> {
        let c = &mut self.counts;
        c.lines_removed += j.stripped.len();
        for line in j.stripped {
            if c.examples.len() < BOILERPLATE_EXAMPLES && !c.examples.contains(&line) {
                c.examples.push(line);
            }
        }
        c.c4_rewritten += usize::from(j.rewritten);
        let (before, after) = j.sizes_boilerplate;
        removals.shrunk("boilerplate_lines", before, after);
        removals.shrunk("c4_lines", j.sizes_c4.0, j.sizes_c4.1);
        let doc = j.doc;
        match j.verdict {
            Verdict::Removed(reason) => {
                if reason != "empty_after_boilerplate" {
                    c.after_boilerplate.add(after);
                }
                removals.remove(&doc, reason, None)
            }
            Verdict::Kept(sig) => {
                // Step 5's bytes are those after the boilerplate lines, before any C4 edit.
                c.after_boilerplate.add(after);
                c.kept.add(doc.text.len());
                self.index.lsh.add(self.hasher, sig);
                self.index.ids.push(doc.id.clone());
                self.spool.write(&doc)
            }
        }
    }
}
