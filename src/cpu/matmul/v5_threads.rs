//! v5: v4 on every core, with rayon.
//!
//! Idea: cut `C` into one part per thread and let each thread run v4 on its part, packing its own
//! panels into its own (reused) buffers. Nothing is shared but the read-only inputs, so there is
//! no locking. Tall problems are cut into horizontal stripes of `C` (rows, on tile borders);
//! short wide ones (few rows, e.g. one token) into vertical stripes, which each thread computes
//! into its own small buffer and copies back.
//!
//! Why rayon rather than `std::thread::scope`: a training step calls gemm thousands of times,
//! often on small matrices. `thread::scope` spawns and joins OS threads on every call (tens of
//! microseconds each), while rayon keeps a pool alive and hands it work, and its pool size is set
//! once (`--threads`, or `RAYON_NUM_THREADS`) for every op. Small problems stay on the calling
//! thread: below about a million multiply-adds, waking another thread costs more than it saves.
//!
//! Measured (lesson 04, AMD EPYC, 2 threads, 1024³): about 1.9× v4.

use super::v4_simd::{gemm_view, tile};
use super::{Layout, View, check_shapes};
use rayon::prelude::*;

/// Below this many multiply-adds the whole product runs on the calling thread.
const MIN_PARALLEL_WORK: usize = 1 << 20;

/// v5: `C = op(A)·op(B)` (or `+=`) on rayon's thread pool.
#[allow(clippy::too_many_arguments)]
pub fn gemm_v5(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    ta: Layout,
    b: &[f32],
    tb: Layout,
    c: &mut [f32],
    accumulate: bool,
) {
    check_shapes("gemm_v5", m, k, n, a, b, c);
    let (av, bv) = (View::new(a, m, k, ta), View::new(b, k, n, tb));
    let threads = rayon::current_num_threads();
    let (mr, nr) = tile();
    let work = m * n * k;
    let row_parts = m.div_ceil(mr);
    let col_parts = n.div_ceil(nr);
    if threads <= 1 || work < MIN_PARALLEL_WORK || row_parts.max(col_parts) < 2 {
        return gemm_view(m, k, n, av, bv, c, n, accumulate);
    }
    if row_parts >= 2 * threads || row_parts >= col_parts {
        // Horizontal stripes: whole rows of C, a multiple of the tile height each.
        let parts = threads.min(row_parts);
        let rows = row_parts.div_ceil(parts) * mr;
        c.par_chunks_mut(rows * n)
            .enumerate()
            .for_each(|(s, c_part)| {
                let i0 = s * rows;
                let mi = c_part.len() / n;
                gemm_view(mi, k, n, av.at(i0, 0), bv, c_part, n, accumulate);
            });
    } else {
        // Vertical stripes: each thread computes m×cols into its own buffer.
        let parts = threads.min(col_parts);
        let cols = col_parts.div_ceil(parts) * nr;
        let pieces: Vec<(usize, usize, Vec<f32>)> = (0..n.div_ceil(cols))
            .into_par_iter()
            .map(|s| {
                let j0 = s * cols;
                let nj = cols.min(n - j0);
                let mut out = vec![0.0f32; m * nj];
                gemm_view(m, k, nj, av, bv.at(0, j0), &mut out, nj, false);
                (j0, nj, out)
            })
            .collect();
        for (j0, nj, out) in pieces {
            for (c_row, o_row) in c.chunks_exact_mut(n).zip(out.chunks_exact(nj)) {
                let dst = &mut c_row[j0..j0 + nj];
                if accumulate {
                    dst.iter_mut().zip(o_row).for_each(|(d, &o)| *d += o);
                } else {
                    dst.copy_from_slice(o_row);
                }
            }
        }
    }
}
