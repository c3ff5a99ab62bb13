//! Steps 4, 6 and 7: deduplication.
//!
//! - [`exact`]: identical documents (a 128-bit hash of the normalized text).
//! - [`lines`]: boilerplate lines that repeat across many web pages (navigation, footers).
//! - [`minhash`]: near-duplicates (MinHash signatures, LSH buckets, union-find clusters).

pub mod exact;
pub mod lines;
pub mod minhash;
