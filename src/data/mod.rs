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
//! documents to a temp file and read them back. [`clean`](mod@crate::data::clean) runs the steps
//! as three passes over the documents; [`jsonl`](crate::data::jsonl) reads `{"text": ...}` JSONL,
//! for this stage and the ones after it.

pub mod clean;
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

pub use clean::{BATCH_BYTES, BATCH_DOCS, BOILERPLATE_EXAMPLES, CleanConfig, clean};
pub use filters::{FilterConfig, RuleSets};
pub use lang::Lang;
pub use read::Format;
pub use report::Report;
