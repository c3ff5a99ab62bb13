//! v5: v4 on every core, with rayon.
//!
//! Idea: keep v4's loop nest and run it on every core, with the packed panels shared by all
//! threads (as BLIS does):
//! 1. for each depth block `pc` and column block `jc`, all threads pack a share of the B block
//!    (it fits in L2) into one shared buffer;
//! 2. the rows of C are cut into about four chunks per thread, and rayon hands the chunks out:
//!    each packs its rows of A (on the first column block; later ones reuse them) and runs the
//!    micro-kernel over its rows against the shared B block.
//!
//! Nothing is packed twice, and because there are more chunks than threads, a thread slowed by
//! something else on the machine simply takes fewer chunks. Short wide products (fewer row
//! tiles than threads, e.g. a few tokens times a big weight) are cut by columns instead: each
//! thread computes a vertical stripe into its own buffer with v4, and the stripes are copied in.
//!
//! Why rayon rather than `std::thread::scope`: a training step calls gemm thousands of times,
//! often on small matrices. `thread::scope` spawns and joins OS threads on every call (tens of
//! microseconds each), while rayon keeps a pool alive, balances uneven chunks by work stealing,
//! and its size is set once for every op (`--threads`, or `RAYON_NUM_THREADS`). Small problems
//! stay on the calling thread: below about a million multiply-adds, waking another thread costs
//! more than it saves.
//!
//! Measured (lesson 04, AMD EPYC Zen 4, 2 threads, 1024³): 206 GFLOP/s, 1.9× v4; 0.98–1.08×
//! numpy's OpenBLAS on two threads on every benchmark shape and layout (`benches/README.md`).

use super::v3_blocked::{MicroKernel, aligned, macro_kernel, pack_a, pack_b};
use super::v4_simd::{Isa, gemm_view, with_kernel};
use super::{Layout, View, check_shapes};
use rayon::prelude::*;
use std::cell::RefCell;

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
    let isa = Isa::best();
    let (mr, nr) = isa.tile();
    let row_tiles = m.div_ceil(mr);
    let col_tiles = n.div_ceil(nr);
    if threads <= 1 || k == 0 || m * n * k < MIN_PARALLEL_WORK || row_tiles.max(col_tiles) < 2 {
        return gemm_view(m, k, n, av, bv, c, n, accumulate);
    }
    if row_tiles >= threads || row_tiles >= col_tiles {
        return with_kernel!(isa, kern => shared(kern, threads, m, k, n, av, bv, c, accumulate));
    }
    // Vertical stripes: each thread computes m×cols with v4 into its own buffer.
    let cols = col_tiles.div_ceil(threads) * nr;
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

/// Shared packing buffers of the calling thread, reused across calls.
#[derive(Default)]
struct Shared {
    a: Vec<f32>,
    b: Vec<f32>,
}

thread_local! {
    static SHARED: RefCell<Shared> = RefCell::new(Shared::default());
}

/// The parallel loop nest with shared packed panels (see the module comment). `k > 0`.
#[allow(clippy::too_many_arguments)]
fn shared<K: MicroKernel>(
    kern: K,
    threads: usize,
    m: usize,
    k: usize,
    n: usize,
    a: View,
    b: View,
    c: &mut [f32],
    accumulate: bool,
) {
    // Take the buffers out rather than borrow them: while this thread waits for rayon it may run
    // another task that calls gemm, which then simply allocates its own.
    let mut bufs = SHARED.take();
    let kc_max = K::KC.min(k);
    let m_pad = m.next_multiple_of(K::MR);
    let nc_pad = K::NC.min(n.next_multiple_of(K::NR));
    let apack = aligned(&mut bufs.a, kc_max * m_pad);
    let bpack = aligned(&mut bufs.b, kc_max * nc_pad);
    // Chunks of rows: whole tiles, about four per thread so work stealing can even out the load.
    let chunk_rows = (m_pad / K::MR).div_ceil(4 * threads) * K::MR;
    for pc in (0..k).step_by(K::KC) {
        let kc = K::KC.min(k - pc);
        let add = accumulate || pc > 0;
        let apack = &mut apack[..m_pad * kc];
        for jc in (0..n).step_by(K::NC) {
            let nc = K::NC.min(n - jc);
            let bpack = &mut bpack[..nc.next_multiple_of(K::NR) * kc];
            let chunk_cols = (nc.div_ceil(K::NR)).div_ceil(threads) * K::NR;
            bpack
                .par_chunks_mut(chunk_cols * kc)
                .enumerate()
                .for_each(|(s, dst)| {
                    let j0 = s * chunk_cols;
                    pack_b(&kern, b.at(pc, jc + j0), kc, chunk_cols.min(nc - j0), dst);
                });
            let bp = &*bpack;
            c.par_chunks_mut(chunk_rows * n)
                .zip(apack.par_chunks_mut(chunk_rows * kc))
                .enumerate()
                .for_each(|(s, (c_rows, a_rows))| {
                    let mc = c_rows.len() / n;
                    if jc == 0 {
                        // Each chunk packs its own rows of A, on first use.
                        pack_a(&kern, a.at(s * chunk_rows, pc), mc, kc, a_rows);
                    }
                    macro_kernel(kern, mc, nc, kc, a_rows, bp, &mut c_rows[jc..], n, add);
                });
        }
    }
    SHARED.set(bufs);
}
