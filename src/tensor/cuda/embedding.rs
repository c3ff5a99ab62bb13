//! Launchers for the embedding lookup and its deterministic backward (`kernels/embedding.cu`);
//! the CPU arm is `crate::tensor::cpu::embedding`.
//!
//! The backward adds many gradient rows into the same table row when an id repeats. Instead of
//! float atomics (whose order, and so rounding, changes run to run), the host sorts the
//! positions by id once ([`EmbeddingBuckets`], a counting sort, O(rows + vocab)), and one
//! block per distinct id adds that id's rows in increasing position order.

use super::alloc::{self, Block};
use super::device::launch_config;
use super::ops::{fill, int};
use super::{DevPtr, Gpu, GpuFloat};
use crate::kargs;
use anyhow::Result;
use std::sync::Arc;

/// The positions of a batch of ids grouped by id: the distinct ids `uniq` (increasing), and
/// for `uniq[u]` the positions `positions[offsets[u] .. offsets[u + 1]]` (increasing). Ids
/// outside `0..vocab` are left out (their forward rows are NaN; they get no gradient).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbeddingBuckets {
    uniq: Vec<i32>,
    offsets: Vec<i32>,
    positions: Vec<i32>,
    rows: usize,
    vocab: usize,
}

impl EmbeddingBuckets {
    /// Groups the positions `0..ids.len()` by id (a counting sort over `0..vocab`).
    pub fn new(ids: &[u32], vocab: usize) -> EmbeddingBuckets {
        assert!(
            ids.len() <= i32::MAX as usize && vocab <= i32::MAX as usize,
            "EmbeddingBuckets: {} ids over {vocab} rows do not fit the kernel's int",
            ids.len()
        );
        let mut count = vec![0u32; vocab];
        for &id in ids {
            if let Some(c) = count.get_mut(id as usize) {
                *c += 1;
            }
        }
        let mut uniq = Vec::new();
        let mut offsets = vec![0i32];
        let mut next = vec![0i32; vocab]; // where the next position of each id goes
        for (v, &c) in count.iter().enumerate() {
            if c > 0 {
                let start = *offsets.last().unwrap();
                next[v] = start;
                uniq.push(v as i32);
                offsets.push(start + c as i32);
            }
        }
        let mut positions = vec![0i32; *offsets.last().unwrap() as usize];
        for (r, &id) in ids.iter().enumerate() {
            if let Some(slot) = next.get_mut(id as usize) {
                positions[*slot as usize] = r as i32;
                *slot += 1;
            }
        }
        EmbeddingBuckets {
            uniq,
            offsets,
            positions,
            rows: ids.len(),
            vocab,
        }
    }

    /// The distinct ids, increasing.
    pub fn uniq(&self) -> &[i32] {
        &self.uniq
    }
    /// `uniq.len() + 1` offsets into [`positions`](Self::positions).
    pub fn offsets(&self) -> &[i32] {
        &self.offsets
    }
    /// The positions, grouped by id, increasing within each id.
    pub fn positions(&self) -> &[i32] {
        &self.positions
    }

    /// The three arrays copied to the GPU.
    pub fn upload(&self, gpu: &Arc<Gpu>) -> Result<DeviceBuckets> {
        Ok(DeviceBuckets {
            uniq: alloc::upload(gpu, &self.uniq)?,
            offsets: alloc::upload(gpu, &self.offsets)?,
            positions: alloc::upload(gpu, &self.positions)?,
            rows: self.rows,
            vocab: self.vocab,
        })
    }
}

/// [`EmbeddingBuckets`] on the GPU (made only by [`EmbeddingBuckets::upload`], so the arrays
/// are consistent: positions below `rows`, ids below `vocab`, offsets within `positions`).
pub struct DeviceBuckets {
    uniq: (Block, DevPtr<i32>),
    offsets: (Block, DevPtr<i32>),
    positions: (Block, DevPtr<i32>),
    rows: usize,
    vocab: usize,
}

/// `out[r, :] = table[ids[r], :]` for the `ids.len` rows (`kernels/embedding.cu`); `table` is
/// `[vocab, dim]` with vocab = table.len / dim. An id outside `0..vocab` gives a row of NaN.
pub fn embedding_forward<X: GpuFloat>(
    gpu: &Gpu,
    out: DevPtr<X>,
    table: DevPtr<X>,
    ids: DevPtr<i32>,
    dim: usize,
) -> Result<()> {
    assert!(dim > 0, "embedding_forward: dim = 0");
    let (rows, vocab) = (ids.len, table.len / dim);
    out.expect("embedding_forward: out", rows * dim);
    if rows == 0 {
        return Ok(());
    }
    let (di, vi) = (int(dim, "dim"), int(vocab, "vocab"));
    // SAFETY: out holds rows·dim elements, ids rows, table vocab·dim (checked above); the kernel
    // reads table only at rows of ids within 0..vocab.
    unsafe {
        gpu.launch(
            "embedding.cu",
            X::PRECISION,
            "embedding_forward",
            launch_config(gpu.grid_for(rows * dim, 256), 256, 0),
            &kargs![out, table, ids, rows as u64, di, vi],
        )
    }
}

/// `dtable` (`[vocab, dim]`) overwritten with the scatter-add of the gradient rows `g`
/// (`[rows, dim]`) at the ids `buckets` was built from: zeroed, then [`embedding_add_rows`].
pub fn embedding_backward<X: GpuFloat>(
    gpu: &Gpu,
    dtable: DevPtr<X>,
    g: DevPtr<X>,
    buckets: &DeviceBuckets,
    dim: usize,
) -> Result<()> {
    let n = buckets.vocab * dim;
    fill(
        gpu,
        dtable.expect("embedding_backward: dtable", n).slice(0, n),
        0.0,
    )?;
    embedding_add_rows(gpu, dtable, g, buckets, dim)
}

/// `dtable[id, :] += Σ g[r, :]` over the rows `r` of each id of `buckets`, in position order
/// (fp32 sums, one rounding per element): one block per distinct id (`kernels/embedding.cu`).
/// Rows of ids that do not occur are left as they are. Deterministic.
pub fn embedding_add_rows<X: GpuFloat>(
    gpu: &Gpu,
    dtable: DevPtr<X>,
    g: DevPtr<X>,
    buckets: &DeviceBuckets,
    dim: usize,
) -> Result<()> {
    let (vocab, rows) = (buckets.vocab, buckets.rows);
    dtable.expect("embedding_add_rows: dtable", vocab * dim);
    g.expect("embedding_add_rows: g", rows * dim);
    let distinct = buckets.uniq.1.len;
    if distinct == 0 || dim == 0 {
        return Ok(());
    }
    let (u, o, p) = (buckets.uniq.1, buckets.offsets.1, buckets.positions.1);
    let (ni, di) = (int(distinct, "distinct ids"), int(dim, "dim"));
    let threads = dim.next_multiple_of(32).min(256) as u32;
    let cfg = launch_config(gpu.grid_for(distinct, 1), threads, 0);
    // SAFETY: dtable holds vocab·dim and g rows·dim elements (checked above); the buckets come
    // from `EmbeddingBuckets::new` for `rows` ids and `vocab` rows, so every id is below vocab,
    // every position below rows, and offsets (distinct + 1 of them) index inside positions.
    unsafe {
        gpu.launch(
            "embedding.cu",
            X::PRECISION,
            "embedding_backward",
            cfg,
            &kargs![dtable, g, u, o, p, ni, di],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_group_positions_by_id_in_order() {
        let b = EmbeddingBuckets::new(&[3, 1, 3, 9, 0, 3, 1], 5);
        assert_eq!(b.uniq(), [0, 1, 3]);
        assert_eq!(b.offsets(), [0, 1, 3, 6]);
        assert_eq!(b.positions(), [4, 1, 6, 0, 2, 5]); // id 9 is out of range: left out
        let empty = EmbeddingBuckets::new(&[], 4);
        assert_eq!((empty.uniq().len(), empty.offsets()), (0, &[0][..]));
    }
}
