//! Stage 2, dataset: token-id shards on disk and the batch loader that reads them.
//!
//! `tokenize` turns clean JSONL into shards: each document becomes `<|endoftext|>` followed by its
//! tokens, and each document goes to the train or the validation split by a seeded hash of its
//! index (deterministic, and independent of thread count). A shard is a 32-byte header and then
//! the tokens as little-endian u16 (when the vocabulary fits) or u32 ([`shard`]). Training reads
//! (B, T+1) windows of tokens from the shards with a [`Loader`] whose position can be saved and
//! restored, so a resumed run sees exactly the batches it would have seen.
//!
//! A dataset folder is written whole or not at all: `tokenize` builds it beside the old one and
//! swaps it in when complete, and its `meta.json` lists every shard with its size and checksum
//! ([`meta`]), so that a folder that is not the output of one run is refused, not trained on.

pub mod loader;
pub mod meta;
pub mod shard;
pub mod write;

pub use loader::{Loader, Position};
pub use shard::{Header, read_shard};
pub use write::{TokenizeOptions, TokenizeSummary, tokenize_jsonl};
