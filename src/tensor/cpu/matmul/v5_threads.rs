//! v5: v4 on every core, with rayon.
//!
//! Idea: keep v4's loop nest, and split `C` into independent pieces (units) that need no
//! synchronisation until the end. One operand is packed once, whole, and shared by every thread;
//! each unit packs its own share of the other one:
//!
//! - **by rows** (the usual case): all of `B` is packed once (in parallel), then the rows of `C`
//!   are cut into units of whole `MR`-row tiles; a unit packs its own rows of `A` and runs v4's
//!   loops over the shared `B`, writing its own band of `C`.
//! - **by columns** (short and wide: fewer than 64 rows per unit, more columns than rows, e.g.
//!   256 tokens against a 2304- or 50257-wide weight): all of `A` is packed once, then the
//!   columns are cut into units of whole `NR`-column panels; a unit packs its own columns of `B`
//!   (a block that stays in this core's L2), computes its stripe of `C` for every row into a
//!   private buffer, and copies the stripe into `C`. Split by rows instead, each of a few rows'
//!   units would re-read all of the wide `B` for very little work.
//!
//! The shared copy takes as much memory as that operand. Units are about four per thread (more when the blocking asks for it), with sizes that
//! differ by at most one tile, so rayon's work stealing evens out the load (a thread slowed by
//! another program simply takes fewer units) and nothing waits at a barrier except the end.
//!
//! Why rayon rather than `std::thread::scope`: a training step calls gemm thousands of times,
//! often on small matrices. `thread::scope` spawns and joins OS threads on every call (tens of
//! microseconds each), while rayon keeps a pool alive, balances uneven units by work stealing,
//! and its size is set once for every op (`--threads`, or `RAYON_NUM_THREADS`). Small problems
//! stay on the calling thread: below about a million multiply-adds, waking another thread costs
//! more than it saves.
//!
//! Measured (lesson 04, AMD EPYC Zen 4, 2 threads, 1024³): 206 GFLOP/s, 1.9× v4; 0.98–1.08×
//! numpy's OpenBLAS on two threads on every benchmark shape and layout (`benches/README.md`).
//! The earlier v5 shared one packed block of `B` at a time between all threads, with two
//! barriers per block and rows cut into chunks of uneven size; on the 256-row products of a
//! GPT-2 124M step (batch 4 × 64 tokens) this version is 1.3–1.5× faster on two cores for the
//! forward and input-gradient products, 1.0–1.1× for the weight gradients, and the whole
//! training step 1.16× (`benches/README.md`).

use super::v3_blocked::{MicroKernel, aligned, macro_kernel, pack_a, pack_b};
use super::v4_simd::{Isa, gemm_view, with_kernel};
use super::{Layout, View, check_shapes};
use rayon::prelude::*;
use std::cell::RefCell;

/// Below this many multiply-adds the whole product runs on the calling thread.
const MIN_PARALLEL_WORK: usize = 1 << 20;

/// Above this many floats (16 MiB), the operand a split by rows or columns would pack whole and
/// every unit would re-read is too big for the caches: split by depth instead.
const SHARED_MAX: usize = 1 << 22;

/// A split by depth keeps one `m×n` partial product per unit, so only when `C` is at most this.
const PARTIAL_MAX: usize = 1 << 20;

/// Units of a split by depth: a constant, so that the order of the final sum does not depend on
/// the thread count.
const DEPTH_UNITS: usize = 8;

/// A column unit's private stripe of `C` is kept to about this many floats (1 MiB, so it stays
/// in L2 next to its block of `B`).
const STRIPE_FLOATS: usize = 1 << 18;

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
    if threads <= 1 || k == 0 || m * n * k < MIN_PARALLEL_WORK {
        return gemm_view(m, k, n, av, bv, c, n, accumulate);
    }
    let p = Problem {
        m,
        k,
        n,
        a: av,
        b: bv,
        accumulate,
        units: 4 * threads,
    };
    match with_kernel!(isa, kern => split(kern, &p)) {
        Split::Rows => with_kernel!(isa, kern => rows(kern, &p, c)),
        Split::Columns => with_kernel!(isa, kern => columns(kern, &p, c)),
        Split::Depth => with_kernel!(isa, kern => depth(kern, &p, c)),
    }
}

/// How a product is cut into units (see the module comment).
enum Split {
    Rows,
    Columns,
    Depth,
}

/// By rows, unless the product is short (under 64 rows per unit) and wider than tall: split by
/// rows, each of its units would re-read all of a wide `B` for a few rows, while a tall product
/// split by columns would pay for copying its stripes when `k` is small. By depth when the
/// operand to share would be too large to stay in cache (`k` far beyond `m` and `n`).
fn split<K: MicroKernel>(_: K, p: &Problem) -> Split {
    let by_rows = p.m >= p.n || p.m >= 64 * p.units;
    let shared = if by_rows {
        p.k * p.n.next_multiple_of(K::NR)
    } else {
        p.m.next_multiple_of(K::MR) * p.k
    };
    if shared > SHARED_MAX && p.m * p.n <= PARTIAL_MAX && p.k > K::KC {
        Split::Depth
    } else if by_rows {
        Split::Rows
    } else {
        Split::Columns
    }
}

/// One product: sizes, operands, and how many units to aim for.
struct Problem<'a> {
    m: usize,
    k: usize,
    n: usize,
    a: View<'a>,
    b: View<'a>,
    accumulate: bool,
    units: usize,
}

thread_local! {
    /// The shared operand, packed whole, on the thread that called gemm.
    static SHARED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// A unit's own block of the other operand, and (column units) its stripe of `C`.
    static OWN: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    /// The partial products of a split by depth, on the thread that called gemm.
    static PARTIALS: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with one of this thread's buffers, reused across calls. It is taken out rather than
/// borrowed: while this thread waits for rayon it may run a task of another gemm, which then
/// simply allocates its own.
fn with<T: Default, R>(
    key: &'static std::thread::LocalKey<RefCell<T>>,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    let mut buf = key.take();
    let r = f(&mut buf);
    key.set(buf);
    r
}

/// `count` items cut into `units` ranges whose sizes differ by at most one.
fn even_ranges(count: usize, units: usize) -> Vec<(usize, usize)> {
    let units = units.clamp(1, count.max(1));
    (0..units)
        .map(|u| (u * count / units, (u + 1) * count / units))
        .filter(|(s, e)| e > s)
        .collect()
}

/// The depth blocks `(pc, kc)` of v4's loop nest.
fn depth_blocks<K: MicroKernel>(k: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..k).step_by(K::KC).map(move |pc| (pc, K::KC.min(k - pc)))
}

/// Packs all of `op(A)` (`m×k`), in parallel: depth block `pc` starts at `m_pad·pc`, laid out as
/// [`pack_a`] lays out one block, so rows from tile `t` of it start `t·MR·kc` further.
fn pack_all_a<K: MicroKernel>(kern: K, p: &Problem, out: &mut [f32]) {
    let m_pad = p.m.next_multiple_of(K::MR);
    let tiles = m_pad / K::MR;
    let mut jobs = Vec::new();
    let mut rest = out;
    for (pc, kc) in depth_blocks::<K>(p.k) {
        let (mut block, tail) = rest.split_at_mut(m_pad * kc);
        rest = tail;
        for (t0, t1) in even_ranges(tiles, rayon::current_num_threads()) {
            let (part, more) = block.split_at_mut((t1 - t0) * K::MR * kc);
            block = more;
            jobs.push((pc, kc, t0 * K::MR, part));
        }
    }
    jobs.into_par_iter().for_each(|(pc, kc, r0, dst)| {
        let rows = (dst.len() / kc).min(p.m - r0);
        pack_a(&kern, p.a.at(r0, pc), rows, kc, dst);
    });
}

/// Packs all of `op(B)` (`k×n`), in parallel: depth block `pc` starts at `n_pad·pc`, laid out as
/// [`pack_b`] lays out one block, so columns from `j` (a multiple of `NR`) start `j·kc` further.
fn pack_all_b<K: MicroKernel>(kern: K, p: &Problem, out: &mut [f32]) {
    let n_pad = p.n.next_multiple_of(K::NR);
    let panels = n_pad / K::NR;
    let mut jobs = Vec::new();
    let mut rest = out;
    for (pc, kc) in depth_blocks::<K>(p.k) {
        let (mut block, tail) = rest.split_at_mut(n_pad * kc);
        rest = tail;
        for (s0, s1) in even_ranges(panels, rayon::current_num_threads()) {
            let (part, more) = block.split_at_mut((s1 - s0) * K::NR * kc);
            block = more;
            jobs.push((pc, kc, s0 * K::NR, part));
        }
    }
    jobs.into_par_iter().for_each(|(pc, kc, j0, dst)| {
        let cols = (dst.len() / kc).min(p.n - j0);
        pack_b(&kern, p.b.at(pc, j0), kc, cols, dst);
    });
}

/// Units of whole row tiles, each writing its own band of `C` against the shared packed `B`.
fn rows<K: MicroKernel>(kern: K, p: &Problem, c: &mut [f32]) {
    let (m, k, n) = (p.m, p.k, p.n);
    let n_pad = n.next_multiple_of(K::NR);
    let tiles = m.div_ceil(K::MR);
    let units = p.units.max(tiles.div_ceil(K::MC / K::MR));
    let mut bands = Vec::new();
    let mut rest = &mut *c;
    for (t0, t1) in even_ranges(tiles, units) {
        let rows = (t1 * K::MR).min(m) - t0 * K::MR;
        let (band, tail) = rest.split_at_mut(rows * n);
        rest = tail;
        bands.push((t0 * K::MR, band));
    }
    with(&SHARED, |shared| {
        let bpack = aligned(shared, n_pad * k);
        pack_all_b(kern, p, bpack);
        let bpack = &*bpack;
        bands.into_par_iter().for_each(|(r0, band)| {
            let rows = band.len() / n;
            with(&OWN, |(block, _)| {
                let apack = aligned(block, rows.next_multiple_of(K::MR) * K::KC.min(k));
                for (pc, kc) in depth_blocks::<K>(k) {
                    pack_a(&kern, p.a.at(r0, pc), rows, kc, apack);
                    let add = p.accumulate || pc > 0;
                    for jc in (0..n).step_by(K::NC) {
                        let nc = K::NC.min(n - jc);
                        let bblock = &bpack[n_pad * pc + jc * kc..];
                        macro_kernel(kern, rows, nc, kc, apack, bblock, &mut band[jc..], n, add);
                    }
                }
            })
        });
    })
}

/// Units of whole depth blocks: each computes `A[:, k0..k1]·B[k0..k1, :]` on one thread (v4)
/// into its own `m×n` buffer, then the rows of `C` are summed from the buffers in parallel, in
/// unit order. Every element of `A` and `B` is read once, whatever their size.
fn depth<K: MicroKernel>(_: K, p: &Problem, c: &mut [f32]) {
    let (m, k, n) = (p.m, p.k, p.n);
    let ranges = even_ranges(k.div_ceil(K::KC), DEPTH_UNITS);
    with(&PARTIALS, |parts| {
        parts.resize_with(parts.len().max(ranges.len()), Vec::new);
        let parts = &mut parts[..ranges.len()];
        parts
            .par_iter_mut()
            .zip(ranges)
            .for_each(|(part, (b0, b1))| {
                let (k0, k1) = (b0 * K::KC, (b1 * K::KC).min(k));
                if part.len() < m * n {
                    part.resize(m * n, 0.0);
                }
                let (a, b) = (p.a.at(0, k0), p.b.at(k0, 0));
                gemm_view(m, k1 - k0, n, a, b, &mut part[..m * n], n, false);
            });
        let parts = &*parts;
        let rows_per_task = (1usize << 14).div_ceil(n).max(1);
        c.par_chunks_mut(rows_per_task * n)
            .enumerate()
            .for_each(|(t, rows)| {
                let span = t * rows_per_task * n..t * rows_per_task * n + rows.len();
                let (first, rest) = if p.accumulate {
                    (None, parts)
                } else {
                    (Some(&parts[0]), &parts[1..])
                };
                if let Some(part) = first {
                    rows.copy_from_slice(&part[span.clone()]);
                }
                for part in rest {
                    for (x, &y) in rows.iter_mut().zip(&part[span.clone()]) {
                        *x += y;
                    }
                }
            });
    })
}

/// `C`'s base pointer, shared by column units that write disjoint columns.
#[derive(Clone, Copy)]
struct SharedC(*mut f32);
// SAFETY: the pointer is only used by `columns`, whose units write disjoint sets of elements
// of `C` (different columns), while `columns` holds the `&mut` borrow of all of `C`.
unsafe impl Send for SharedC {}
// SAFETY: as above.
unsafe impl Sync for SharedC {}

/// Units of whole column panels against the shared packed `A`; each computes its stripe of `C`
/// into a private buffer and copies it in.
fn columns<K: MicroKernel>(kern: K, p: &Problem, c: &mut [f32]) {
    let (m, k, n) = (p.m, p.k, p.n);
    let m_pad = m.next_multiple_of(K::MR);
    let panels = n.div_ceil(K::NR);
    // A unit is at most one B block wide (NC), and its stripe of C stays near STRIPE_FLOATS.
    let max_panels = (K::NC / K::NR).min((STRIPE_FLOATS / (m_pad * K::NR)).max(1));
    let units = p.units.max(panels.div_ceil(max_panels));
    let cptr = SharedC(c.as_mut_ptr());
    with(&SHARED, |shared| {
        let apack = aligned(shared, m_pad * k);
        pack_all_a(kern, p, apack);
        let apack = &*apack;
        even_ranges(panels, units)
            .into_par_iter()
            .for_each(|(s0, s1)| {
                let j0 = s0 * K::NR;
                let w = (s1 * K::NR).min(n) - j0;
                with(&OWN, |(block, stripe)| {
                    let bpack = aligned(block, w.next_multiple_of(K::NR) * K::KC.min(k));
                    let stripe = aligned(stripe, m * w);
                    for (pc, kc) in depth_blocks::<K>(k) {
                        pack_b(&kern, p.b.at(pc, j0), kc, w, bpack);
                        let ablock = &apack[m_pad * pc..];
                        macro_kernel(kern, m, w, kc, ablock, bpack, stripe, w, pc > 0);
                    }
                    // SAFETY: this unit alone writes columns j0..j0 + w of C (the ranges from
                    // `even_ranges` are disjoint), every row i < m of them lies inside C
                    // (m×n floats, j0 + w ≤ n), and no reference to C exists meanwhile.
                    unsafe { copy_stripe(stripe, cptr, m, n, j0, w, p.accumulate) };
                })
            });
    })
}

/// `C[i, j0..j0+w] (+)= stripe[i, ..]` for every row `i < m`.
///
/// # Safety
/// `c.0` must point to an `m×n` row-major matrix with `j0 + w ≤ n`, whose columns `j0..j0+w`
/// no other thread reads or writes during the call.
unsafe fn copy_stripe(
    stripe: &[f32],
    c: SharedC,
    m: usize,
    n: usize,
    j0: usize,
    w: usize,
    accumulate: bool,
) {
    for (i, src) in stripe.chunks_exact(w).take(m).enumerate() {
        // SAFETY: row i of the stripe lands at C[i, j0..j0+w], inside C and owned by this
        // caller (see the function's contract); raw pointers, so no two `&mut` overlap.
        unsafe {
            let dst = c.0.add(i * n + j0);
            if accumulate {
                for (j, &s) in src.iter().enumerate() {
                    *dst.add(j) += s;
                }
            } else {
                std::ptr::copy_nonoverlapping(src.as_ptr(), dst, w);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::cpu::matmul::v3_blocked::Portable;

    /// Each split, forced on the same products (with k over two depth blocks, and with
    /// `accumulate`), gives v4's result: exactly where it sums in v4's order (rows; columns when
    /// overwriting C), within rounding where it adds whole partial sums (columns adding into C,
    /// depth).
    #[test]
    fn every_split_matches_v4() {
        let kern = Portable;
        for (m, k, n) in [(37, 700, 53), (5, 600, 300), (300, 530, 7)] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 53) % 97) as f32 / 48.0 - 1.0)
                .collect();
            let c0: Vec<f32> = (0..m * n).map(|i| (i % 13) as f32).collect();
            for accumulate in [false, true] {
                let (av, bv) = (
                    View::new(&a, m, k, Layout::N),
                    View::new(&b, k, n, Layout::T),
                );
                let mut want = c0.clone();
                super::super::v3_blocked::blocked(kern, m, k, n, av, bv, &mut want, n, accumulate);
                let p = Problem {
                    m,
                    k,
                    n,
                    a: av,
                    b: bv,
                    accumulate,
                    units: 5,
                };
                for which in 0..3 {
                    let mut got = c0.clone();
                    match which {
                        0 => rows(kern, &p, &mut got),
                        1 => columns(kern, &p, &mut got),
                        _ => depth(kern, &p, &mut got),
                    }
                    for (g, w) in got.iter().zip(&want) {
                        let exact = which == 0 || (which == 1 && !accumulate);
                        assert!(
                            if exact {
                                g == w
                            } else {
                                (g - w).abs() <= 1e-4 * (1.0 + w.abs())
                            },
                            "split {which} {m}x{k}x{n} acc={accumulate}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn even_ranges_cover_everything_once() {
        for (count, units) in [(43, 8), (7, 8), (0, 4), (100, 1), (12, 5)] {
            let r = even_ranges(count, units);
            assert_eq!(r.first().map_or(0, |x| x.0), 0);
            assert_eq!(r.last().map_or(0, |x| x.1), count);
            assert!(r.windows(2).all(|w| w[0].1 == w[1].0));
            let sizes: Vec<usize> = r.iter().map(|(s, e)| e - s).collect();
            let (lo, hi) = (sizes.iter().min(), sizes.iter().max());
            assert!(lo.zip(hi).is_none_or(|(l, h)| h - l <= 1), "{sizes:?}");
        }
    }
}
