//! v3: cache blocking with packed panels and a register-tile micro-kernel.
//!
//! Idea (the BLIS/GotoBLAS loop nest). v2 reloads and stores `C` for every multiply-add. Here the
//! innermost code, the *micro-kernel*, keeps an `MR×NR` tile of `C` in registers for a whole run
//! of `kc` steps: each step loads `MR` values of `A` and `NR` values of `B` and does `MR·NR`
//! multiply-adds, so the arithmetic per load grows with the tile.
//!
//! To feed it from cache rather than memory, the operands are cut into blocks and *packed*:
//! - a `kc×nc` block of `B` is copied into panels of `NR` columns, each stored `kc` rows of `NR`
//!   contiguous floats (sized to stay in L2);
//! - an `mc×kc` block of `A` is copied into panels of `MR` rows, each stored `kc` columns of `MR`
//!   contiguous floats (one panel stays in L1 while it meets every `B` panel).
//!
//! The micro-kernel then reads both panels strictly sequentially. Packing is also where the
//! layouts disappear: a transposed operand is just read with other strides, so `A·Bᵀ` and `Aᵀ·B`
//! run the same kernel at the same speed. Edge tiles are zero-padded in the panels and written
//! back through a small temporary tile.
//!
//! This file holds the loop nest ([`blocked`]), the packing, and a portable micro-kernel in plain
//! Rust (4×8, which the compiler vectorises with whatever SIMD the target has by default). v4
//! plugs SIMD micro-kernels into the same loop nest.
//!
//! Measured (lesson 04, AMD EPYC Zen 4, 1 thread, 1024³): about 35 GFLOP/s, 1.4× v2 — the
//! portable kernel is held back by the baseline x86-64 target (SSE2, no FMA), which v4 fixes.

use super::{Layout, View, check_shapes};
use std::cell::RefCell;

/// A micro-kernel: `C[MR×NR] (+)= Apanel · Bpanel` over `kc` steps, plus its cache blocking.
///
/// Implementors that use special instructions must only be constructible when the CPU has them,
/// so that holding a value proves `run` is safe to call.
pub trait MicroKernel: Copy + Send + Sync {
    /// Rows of the register tile.
    const MR: usize;
    /// Columns of the register tile.
    const NR: usize;
    /// Depth of a packed block: an `MR×KC` panel of A stays in L1.
    const KC: usize;
    /// Rows of A packed at once.
    const MC: usize;
    /// Columns of a packed block of B: `KC×NC` stays in L2.
    const NC: usize;
    /// `c[i*ldc + j] = (c[i*ldc + j] if add else 0) + Σ_p a[p*MR + i] · b[p*NR + j]`
    /// for `i < MR`, `j < NR`, `p < kc`.
    fn run(&self, kc: usize, a: &[f32], b: &[f32], c: &mut [f32], ldc: usize, add: bool);

    /// Optionally a faster transpose for packing: `out[p*64 + i] = lines[i][p]` for `p < kc`,
    /// `i < 64`. Return false (the default) to use the portable loop.
    fn interleave64(&self, _lines: &[&[f32]; 64], _kc: usize, _out: &mut [f32]) -> bool {
        false
    }
}

/// The portable micro-kernel: a 4×8 tile in plain Rust arrays.
#[derive(Clone, Copy, Debug, Default)]
pub struct Portable;

impl MicroKernel for Portable {
    const MR: usize = 4;
    const NR: usize = 8;
    const KC: usize = 256;
    const MC: usize = 1008;
    const NC: usize = 512;

    fn run(&self, kc: usize, a: &[f32], b: &[f32], c: &mut [f32], ldc: usize, add: bool) {
        let mut acc = [[0.0f32; 8]; 4];
        for (ap, bp) in a.chunks_exact(4).zip(b.chunks_exact(8)).take(kc) {
            for (row, &av) in acc.iter_mut().zip(ap) {
                for (x, &bv) in row.iter_mut().zip(bp) {
                    *x += av * bv;
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            let out = &mut c[i * ldc..i * ldc + 8];
            for (o, &x) in out.iter_mut().zip(row) {
                *o = if add { *o + x } else { x };
            }
        }
    }
}

/// v3: `C = op(A)·op(B)` (or `+=`), cache-blocked with the portable micro-kernel.
#[allow(clippy::too_many_arguments)]
pub fn gemm_v3(
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
    check_shapes("gemm_v3", m, k, n, a, b, c);
    let (a, b) = (View::new(a, m, k, ta), View::new(b, k, n, tb));
    blocked(Portable, m, k, n, a, b, c, n, accumulate);
}

/// Packing buffers, one pair per thread, reused across calls so the hot path never allocates.
struct Buffers {
    a: Vec<f32>,
    b: Vec<f32>,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = const { RefCell::new(Buffers { a: Vec::new(), b: Vec::new() }) };
}

/// A 64-byte aligned slice of `len` floats inside `v`, growing `v` if needed.
pub(crate) fn aligned(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if v.len() < len + 16 {
        v.resize(len + 16, 0.0);
    }
    let skip = v.as_ptr().align_offset(64).min(16);
    &mut v[skip..skip + len]
}

/// The loop nest: `C (m×n, row stride ldc) (+)= A (m×k) · B (k×n)` with micro-kernel `K`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn blocked<K: MicroKernel>(
    kern: K,
    m: usize,
    k: usize,
    n: usize,
    a: View,
    b: View,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                c[i * ldc..i * ldc + n].fill(0.0);
            }
        }
        return;
    }
    BUFFERS.with_borrow_mut(|bufs| {
        let kc_max = K::KC.min(k);
        let nc_max = K::NC.min(n.next_multiple_of(K::NR));
        let mc_max = K::MC.next_multiple_of(K::MR).min(m.next_multiple_of(K::MR));
        let bpack = aligned(&mut bufs.b, kc_max * nc_max.next_multiple_of(K::NR));
        let apack = aligned(&mut bufs.a, kc_max * mc_max.next_multiple_of(K::MR));
        // Equal row blocks of at most MC rows (a multiple of MR), so no block is a tiny leftover.
        let mc_step = m.div_ceil(m.div_ceil(K::MC)).next_multiple_of(K::MR);
        for ic in (0..m).step_by(mc_step) {
            let mc = mc_step.min(m - ic);
            for pc in (0..k).step_by(K::KC) {
                let kc = K::KC.min(k - pc);
                let add = accumulate || pc > 0;
                pack_a(&kern, a.at(ic, pc), mc, kc, apack);
                for jc in (0..n).step_by(K::NC) {
                    let nc = K::NC.min(n - jc);
                    pack_b(&kern, b.at(pc, jc), kc, nc, bpack);
                    let c_block = &mut c[ic * ldc + jc..];
                    macro_kernel(kern, mc, nc, kc, apack, bpack, c_block, ldc, add);
                }
            }
        }
    });
}

/// Run the micro-kernel over every `MR×NR` tile of an `mc×nc` block of C.
/// The A panel (MR×kc) stays in L1 while it meets every B panel of the block (in L2).
#[allow(clippy::too_many_arguments)]
pub(crate) fn macro_kernel<K: MicroKernel>(
    kern: K,
    mc: usize,
    nc: usize,
    kc: usize,
    apack: &[f32],
    bpack: &[f32],
    c: &mut [f32],
    ldc: usize,
    add: bool,
) {
    let mut tile = [0.0f32; 1024];
    assert!(K::MR * K::NR <= tile.len(), "micro-kernel tile too large");
    for (ir, ap) in (0..mc).step_by(K::MR).zip(apack.chunks_exact(K::MR * kc)) {
        let mr = K::MR.min(mc - ir);
        for (jr, bp) in (0..nc).step_by(K::NR).zip(bpack.chunks_exact(K::NR * kc)) {
            let nr = K::NR.min(nc - jr);
            let c_tile = &mut c[ir * ldc + jr..];
            if mr == K::MR && nr == K::NR {
                kern.run(kc, ap, bp, c_tile, ldc, add);
            } else {
                // Edge tile: compute the full tile into `tile`, copy back the part inside C.
                kern.run(kc, ap, bp, &mut tile, K::NR, false);
                for i in 0..mr {
                    let src = &tile[i * K::NR..i * K::NR + nr];
                    let dst = &mut c_tile[i * ldc..i * ldc + nr];
                    for (d, &s) in dst.iter_mut().zip(src) {
                        *d = if add { *d + s } else { s };
                    }
                }
            }
        }
    }
}

/// Pack an `mc×kc` block of A into panels of `MR` rows: panel `r`, step `p`, row `i` goes to
/// `out[r*MR*kc + p*MR + i]`. Rows past `mc` are zero.
pub(crate) fn pack_a<K: MicroKernel>(kern: &K, a: View, mc: usize, kc: usize, out: &mut [f32]) {
    pack_panels(kern, a, mc, kc, K::MR, out);
}

/// Pack a `kc×nc` block of B into panels of `NR` columns: panel `s`, step `p`, column `j` goes
/// to `out[s*NR*kc + p*NR + j]`. Columns past `nc` are zero. This is `pack_a` of `Bᵀ`.
pub(crate) fn pack_b<K: MicroKernel>(kern: &K, b: View, kc: usize, nc: usize, out: &mut [f32]) {
    let bt = View {
        rs: b.cs,
        cs: b.rs,
        ..b
    };
    pack_panels(kern, bt, nc, kc, K::NR, out);
}

/// Pack `lines` lines of `x` (line `i`, step `p` at `x.get(i, p)`) into panels of `r` lines:
/// `out[panel*r*kc + p*r + i]`, zero past the last line.
fn pack_panels<K: MicroKernel>(
    kern: &K,
    x: View,
    lines: usize,
    kc: usize,
    r: usize,
    out: &mut [f32],
) {
    // When each step's values are contiguous across lines (x.rs == 1) but steps are far apart
    // in memory, fill a group of panels together, so every cache line read is used in full.
    let i_done = match (x.rs == 1, r) {
        (true, 4) => pack_groups::<4>(x, lines, kc, 4, out),
        (true, 6) => pack_groups::<6>(x, lines, kc, 8, out),
        (true, 8) => pack_groups::<8>(x, lines, kc, 2, out),
        _ => 0,
    };
    let out = &mut out[i_done * kc..];
    for (i0, panel) in (i_done..lines).step_by(r).zip(out.chunks_exact_mut(r * kc)) {
        let count = r.min(lines - i0);
        if x.rs == 1 {
            // For each step the `count` values are contiguous in memory: plain copies.
            let src = &x.data[i0..];
            match (r, count == r) {
                (4, true) => copy_steps::<4>(src, x.cs, kc, panel),
                (6, true) => copy_steps::<6>(src, x.cs, kc, panel),
                (8, true) => copy_steps::<8>(src, x.cs, kc, panel),
                (16, true) => copy_steps::<16>(src, x.cs, kc, panel),
                (64, true) => copy_steps::<64>(src, x.cs, kc, panel),
                _ => {
                    for (p, dst) in panel.chunks_exact_mut(r).enumerate() {
                        dst[..count].copy_from_slice(&src[p * x.cs..p * x.cs + count]);
                        dst[count..].fill(0.0);
                    }
                }
            }
        } else if x.cs == 1 && kc <= ZEROS.len() && matches!(r, 4 | 6 | 8 | 16 | 64) {
            // Each line is contiguous: interleave `count` lines (a transpose).
            let mut src = [&ZEROS[..kc]; 64];
            for (i, s) in src.iter_mut().enumerate().take(count) {
                let start = (i0 + i) * x.rs;
                *s = &x.data[start..start + kc];
            }
            match r {
                64 if kern.interleave64(&src, kc, panel) => {}
                4 => interleave::<4>(&src, kc, panel),
                6 => interleave::<6>(&src, kc, panel),
                8 => interleave::<8>(&src, kc, panel),
                16 => interleave::<16>(&src, kc, panel),
                64 => interleave::<64>(&src, kc, panel),
                _ => unreachable!("checked above"),
            }
        } else {
            // Any other panel width or stride: element by element.
            for (p, dst) in panel.chunks_exact_mut(r).enumerate() {
                for (i, d) in dst.iter_mut().enumerate() {
                    *d = if i < count { x.get(i0 + i, p) } else { 0.0 };
                }
            }
        }
    }
}

/// Pack whole groups of `group` panels of `R` lines from a view with `rs == 1`: for each step,
/// one contiguous read of `group·R` values feeds them all. Returns the lines packed.
fn pack_groups<const R: usize>(
    x: View,
    lines: usize,
    kc: usize,
    group: usize,
    out: &mut [f32],
) -> usize {
    let width = group * R;
    let full = lines / width * width;
    for (g0, dst) in (0..full)
        .step_by(width)
        .zip(out.chunks_exact_mut(width * kc))
    {
        for p in 0..kc {
            let src = &x.data[g0 + p * x.cs..g0 + p * x.cs + width];
            for (s, panel) in src.chunks_exact(R).zip(dst.chunks_exact_mut(R * kc)) {
                let s: &[f32; R] = s.try_into().unwrap();
                panel[p * R..p * R + R].copy_from_slice(s);
            }
        }
    }
    full
}

/// `out[p*R .. p*R + R] = src[p*stride ..][..R]` for `p < kc`. A constant `R` turns each copy
/// into a few vector moves instead of a call to `memcpy`.
fn copy_steps<const R: usize>(src: &[f32], stride: usize, kc: usize, out: &mut [f32]) {
    for (p, dst) in out[..kc * R].chunks_exact_mut(R).enumerate() {
        let s: &[f32; R] = src[p * stride..p * stride + R].try_into().unwrap();
        dst.copy_from_slice(s);
    }
}

/// Zeros that stand in for the missing lines of a partial panel.
static ZEROS: [f32; 4096] = [0.0; 4096];

/// `out[p*R + i] = src[i][p]` for `p < kc`, `i < R`. `R` is a constant, so the inner loop
/// unrolls into R loads and one contiguous store run.
fn interleave<const R: usize>(src: &[&[f32]; 64], kc: usize, out: &mut [f32]) {
    let src: [&[f32]; R] = std::array::from_fn(|i| &src[i][..kc]);
    if R <= 8 {
        for (p, dst) in out[..kc * R].chunks_exact_mut(R).enumerate() {
            for (d, s) in dst.iter_mut().zip(&src) {
                *d = s[p];
            }
        }
    } else {
        // Many lines: take one cache line (16 floats) of each in turn, so no line has to stay
        // in L1 while all the others are read (they may map to the same few cache sets).
        for p0 in (0..kc).step_by(16) {
            let p1 = (p0 + 16).min(kc);
            let block = &mut out[p0 * R..p1 * R];
            for (i, s) in src.iter().enumerate() {
                for (dst, &v) in block.chunks_exact_mut(R).zip(&s[p0..p1]) {
                    dst[i] = v;
                }
            }
        }
    }
}
