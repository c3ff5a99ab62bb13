//! The batch loader training reads: (B, T+1) windows of tokens, as inputs (the first T) and
//! targets (the last T, shifted by one).
//!
//! Sequential mode walks the split from the start with stride T, so every token is a target once
//! per epoch; random mode draws each window's start from a seeded RNG. Either way the whole state
//! is a small [`Position`] that can be saved with a checkpoint and restored.

use super::shard::read_shard;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// Everything needed to resume the batch stream exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// Sequential mode: index of the next window's first token.
    pub offset: u64,
    /// Random mode: RNG state.
    pub rng: u64,
    /// Batches served so far.
    pub batches: u64,
    /// Times sequential mode wrapped around to the start.
    pub epoch: u64,
}

/// Batches of token windows from one split (`train` or `val`) of a shard directory.
pub struct Loader {
    tokens: Vec<u32>,
    vocab_size: u32,
    batch: usize,
    seq_len: usize,
    sequential: bool,
    pos: Position,
    shards: Vec<PathBuf>,
}

/// The shards of `split` in `dir`, in order.
pub fn shard_paths(dir: &Path, split: &str) -> Result<Vec<PathBuf>> {
    let prefix = format!("{split}_");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            name.starts_with(&prefix) && name.ends_with(".bin")
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!("{}: no {split}_*.bin shards", dir.display());
    }
    Ok(paths)
}

impl Loader {
    /// Load every shard of `split` (validated) from `dir`. `batch` windows of `seq_len + 1` tokens
    /// per batch; `sequential` reads in order, otherwise windows start at seeded random places.
    /// The split is held in memory as u32 (4 bytes per token). When the folder has a `meta.json`,
    /// its shards (both splits) must be the ones it lists, by name and size
    /// ([`check_layout`](super::meta::check_layout)).
    pub fn new(
        dir: &Path,
        split: &str,
        batch: usize,
        seq_len: usize,
        seed: u64,
        sequential: bool,
    ) -> Result<Loader> {
        super::meta::check_layout(dir)?;
        let shards = shard_paths(dir, split)?;
        let mut tokens = Vec::new();
        let mut vocab_size = None;
        for path in &shards {
            let (h, t) = read_shard(path)?;
            if *vocab_size.get_or_insert(h.vocab_size) != h.vocab_size {
                bail!(
                    "{}: vocabulary size {} differs from the other shards' {}",
                    path.display(),
                    h.vocab_size,
                    vocab_size.unwrap_or(0)
                );
            }
            tokens.extend(t);
        }
        let mut l = Loader::from_tokens(
            tokens,
            vocab_size.unwrap_or(0),
            batch,
            seq_len,
            seed,
            sequential,
        )
        .with_context(|| format!("{}: {split} split", dir.display()))?;
        l.shards = shards;
        Ok(l)
    }

    /// A loader over tokens already in memory.
    pub fn from_tokens(
        tokens: Vec<u32>,
        vocab_size: u32,
        batch: usize,
        seq_len: usize,
        seed: u64,
        sequential: bool,
    ) -> Result<Loader> {
        if batch == 0 || seq_len == 0 {
            bail!("batch size and sequence length must be positive");
        }
        if tokens.len() < seq_len + 1 {
            bail!(
                "{} tokens is too few for one window of {} (sequence length + 1)",
                tokens.len(),
                seq_len + 1
            );
        }
        let pos = Position {
            offset: 0,
            rng: super::write::mix(seed) | 1,
            batches: 0,
            epoch: 0,
        };
        Ok(Loader {
            tokens,
            vocab_size,
            batch,
            seq_len,
            sequential,
            pos,
            shards: Vec::new(),
        })
    }

    /// The next batch: `inputs` and `targets`, each `batch * seq_len` ids, row-major (B, T).
    pub fn next_batch(&mut self) -> (Vec<u32>, Vec<u32>) {
        let (b, t) = (self.batch, self.seq_len);
        let mut inputs = Vec::with_capacity(b * t);
        let mut targets = Vec::with_capacity(b * t);
        for _ in 0..b {
            let start = self.next_start();
            let w = &self.tokens[start..start + t + 1];
            inputs.extend_from_slice(&w[..t]);
            targets.extend_from_slice(&w[1..]);
        }
        self.pos.batches += 1;
        (inputs, targets)
    }

    /// Moves past the next batch without reading it: the position afterwards is the one
    /// [`Loader::next_batch`] would leave. Data parallel training uses it so that every rank walks
    /// the same stream and keeps only its own share of each round of batches.
    pub fn skip_batch(&mut self) {
        for _ in 0..self.batch {
            self.next_start();
        }
        self.pos.batches += 1;
    }

    fn next_start(&mut self) -> usize {
        let t = self.seq_len;
        if self.sequential {
            if self.pos.offset as usize + t + 1 > self.tokens.len() {
                self.pos.offset = 0;
                self.pos.epoch += 1;
            }
            let s = self.pos.offset as usize;
            self.pos.offset += t as u64;
            s
        } else {
            // xorshift64*
            let mut x = self.pos.rng;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.pos.rng = x;
            let r = x.wrapping_mul(0x2545F4914F6CDD1D);
            (r % (self.tokens.len() - t) as u64) as usize
        }
    }

    /// The current position; pass it to [`Loader::restore`] to continue from here.
    pub fn position(&self) -> Position {
        self.pos
    }

    /// Continue from a saved position.
    pub fn restore(&mut self, pos: Position) -> Result<()> {
        if pos.offset as usize > self.tokens.len() {
            bail!(
                "position offset {} is past the end of the split ({} tokens)",
                pos.offset,
                self.tokens.len()
            );
        }
        self.pos = pos;
        Ok(())
    }

    /// Vocabulary size recorded in the shards.
    pub fn vocab_size(&self) -> u32 {
        self.vocab_size
    }

    /// Number of tokens in the split.
    pub fn num_tokens(&self) -> usize {
        self.tokens.len()
    }

    /// All tokens of the split (e.g. to evaluate on the whole validation set).
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// The shard files this loader read.
    pub fn shards(&self) -> &[PathBuf] {
        &self.shards
    }

    /// Batch size and sequence length.
    pub fn shape(&self) -> (usize, usize) {
        (self.batch, self.seq_len)
    }
}
