//! The classifier head fused with its loss: `logits = x·wᵀ`, cross-entropy against the targets,
//! and (for training) the gradients `dx` and `dw`, without ever holding the whole `[rows, V]`
//! logits.
//!
//! Why fuse. Done op by op, the head of GPT-2 124M at 256 tokens writes 51 MB of logits, reads
//! them back for the loss, writes 51 MB of `dlogits`, and produces `dw` as `xᵀ·dlogits` in the
//! transposed `[C, V]` layout of `wᵀ`, which then costs a strided 154 MB copy into `[V, C]`. Here,
//! for a chunk of rows at a time:
//!
//! ```text
//! logits = x_chunk · wᵀ                      [R, V]   (one gemm, w read as Layout::T)
//! per row: lse = max + ln Σ exp(l − max)      loss_r = lse − l[target]
//!          l ← (exp(l − lse) − [j = target]) / count          (dlogits, in place)
//! dx_chunk  = dlogits · w                     [R, C]
//! dw       += dlogitsᵀ · x_chunk              [V, C]   (already in w's layout)
//! ```
//!
//! `count` (the rows whose target is not `ignore`) is known before the first chunk, so each
//! chunk's `dlogits` are final as soon as its loss is: the gradients are those of the MEAN loss,
//! and an op wrapping this only multiplies them by its upstream scalar. The chunk is as many rows
//! as keep its logits under [`CHUNK_FLOATS`] (all 256 rows of the 124M benchmark; 333 of
//! GPT-2's 50,257 classes otherwise), so the scratch stays bounded whatever `rows` is, and `dw`
//! is read and written once per chunk.

use super::fastmath::{exp_f32, max, simd, sum, sum_exp};
use super::matmul::{Layout, gemm};
use rayon::prelude::*;

/// The logits of one chunk never exceed this many floats (64 MiB).
pub const CHUNK_FLOATS: usize = 1 << 24;

/// Sizes: `x` is `[rows, c]`, `w` is `[v, c]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub rows: usize,
    pub c: usize,
    pub v: usize,
}

/// The loss and, when asked for, the gradients of the mean loss `loss_sum / count`.
#[derive(Debug)]
pub struct ClassifierOut {
    /// Σ over counted rows of `lse − logit[target]` (f64, summed in order).
    pub loss_sum: f64,
    /// Rows whose target is not `ignore`.
    pub count: usize,
    /// `(dx [rows, c], dw [v, c])` of `loss_sum / count`; zero when `count` is 0.
    pub grads: Option<(Vec<f32>, Vec<f32>)>,
}

/// How a call runs: with gradients or not, at most `chunk_floats` logits per chunk, and where
/// its large buffers come from (`take(n)`: `n` floats whose contents will be overwritten;
/// `give`: the scratch back) — fresh allocations by default, the tensor engine's pool when it
/// calls.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub want_grad: bool,
    pub chunk_floats: usize,
    pub take: fn(usize) -> Vec<f32>,
    pub give: fn(Vec<f32>),
}

impl Options {
    /// [`CHUNK_FLOATS`] per chunk, fresh allocations.
    pub fn new(want_grad: bool) -> Options {
        Options {
            want_grad,
            chunk_floats: CHUNK_FLOATS,
            take: |n| vec![0.0; n],
            give: drop,
        }
    }
}

/// Cross-entropy of `x·wᵀ` against `targets` (rows whose target equals `ignore` do not count),
/// with the gradients of the mean loss when `opts.want_grad`. See the module comment.
pub fn classifier(
    x: &[f32],
    w: &[f32],
    targets: &[u32],
    ignore: Option<u32>,
    d: Dims,
    opts: Options,
) -> ClassifierOut {
    let Options {
        want_grad,
        chunk_floats,
        take,
        give,
    } = opts;
    let Dims { rows, c, v } = d;
    assert!(
        x.len() == rows * c && w.len() == v * c && targets.len() == rows,
        "classifier: x has {} floats (expected {rows}x{c}), w {} (expected {v}x{c}), {} targets",
        x.len(),
        w.len(),
        targets.len()
    );
    assert!(v > 0, "classifier: no classes");
    for &t in targets {
        assert!(
            Some(t) == ignore || (t as usize) < v,
            "classifier: target {t} out of range for {v} classes"
        );
    }
    let count = targets.iter().filter(|&&t| Some(t) != ignore).count();
    let mut grads = want_grad.then(|| (take(rows * c), take(v * c)));
    if let Some((dx, dw)) = grads.as_mut()
        && count == 0
    {
        dx.fill(0.0);
        dw.fill(0.0);
    }
    // The mean's factor, folded into dlogits.
    let inv_count = 1.0 / count.max(1) as f32;
    let chunk = (chunk_floats / v).clamp(1, rows.max(1));
    let mut logits = take(chunk.min(rows) * v);
    let mut loss_sum = 0.0f64;
    let mut dw_started = false;
    for r0 in (0..rows).step_by(chunk) {
        let r = chunk.min(rows - r0);
        let (xc, tc) = (&x[r0 * c..(r0 + r) * c], &targets[r0..r0 + r]);
        let lg = &mut logits[..r * v];
        gemm(r, c, v, xc, Layout::N, w, Layout::T, lg, false);
        let scale = grads.as_ref().map(|_| inv_count);
        loss_sum += rows_pass(lg, tc, ignore, v, scale);
        let Some((dx, dw)) = grads.as_mut() else {
            continue;
        };
        if count == 0 {
            continue; // all gradients are zero (filled above)
        }
        gemm(
            r,
            v,
            c,
            lg,
            Layout::N,
            w,
            Layout::N,
            &mut dx[r0 * c..(r0 + r) * c],
            false,
        );
        gemm(v, r, c, lg, Layout::T, xc, Layout::N, dw, dw_started);
        dw_started = true;
    }
    give(logits);
    ClassifierOut {
        loss_sum,
        count,
        grads,
    }
}

/// The per-row pass over one chunk's logits (`v` per row): returns the chunk's summed loss and,
/// when `scale` is given, overwrites each row with `scale·(softmax − onehot(target))` (zeros for
/// ignored rows). Rows run in parallel, each in the AVX2 build when the CPU has it.
fn rows_pass(
    logits: &mut [f32],
    targets: &[u32],
    ignore: Option<u32>,
    v: usize,
    scale: Option<f32>,
) -> f64 {
    let rows_per_task = (super::elementwise::PAR_GRAIN / v).max(1);
    logits
        .par_chunks_mut(rows_per_task * v)
        .zip(targets.par_chunks(rows_per_task))
        .map(|(lg, tg)| {
            simd(|| {
                let mut loss = 0.0f64;
                for (row, &t) in lg.chunks_exact_mut(v).zip(tg) {
                    let counted = Some(t) != ignore;
                    if counted {
                        loss += one_row(row, t as usize, scale) as f64;
                    } else if scale.is_some() {
                        row.fill(0.0);
                    }
                }
                loss
            })
        })
        // Chunks in order, so the sum does not depend on the thread count.
        .collect::<Vec<f64>>()
        .into_iter()
        .sum()
}

/// One counted row: returns `lse − row[t]`; with `scale`, the row becomes its scaled gradient.
/// A row of GPT-2's 50,257 logits (196 KiB) stays in L2 across the passes, and with `scale` the
/// exponentials are written once and rescaled rather than computed twice.
#[inline(always)]
fn one_row(row: &mut [f32], t: usize, scale: Option<f32>) -> f32 {
    let m = max(row);
    let Some(s) = scale else {
        return m + sum_exp(row, m).ln() - row[t];
    };
    let target = row[t];
    for l in row.iter_mut() {
        *l = exp_f32(*l - m);
    }
    let total = sum(row);
    let k = s / total;
    for l in row.iter_mut() {
        *l *= k;
    }
    row[t] -= s;
    m + total.ln() - target
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::cpu::cross_entropy::{cross_entropy, cross_entropy_backward};

    fn rand(n: usize, seed: &mut u64, amp: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((*seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * amp
            })
            .collect()
    }

    /// The unfused reference: logits by gemm, the existing cross-entropy kernels, then the two
    /// gradient products by gemm. Returns (loss_sum, count, dx, dw).
    fn reference(
        x: &[f32],
        w: &[f32],
        t: &[u32],
        ignore: Option<u32>,
        d: Dims,
    ) -> (f64, usize, Vec<f32>, Vec<f32>) {
        let Dims { rows, c, v } = d;
        let mut logits = vec![0.0; rows * v];
        gemm(rows, c, v, x, Layout::N, w, Layout::T, &mut logits, false);
        let mut lse = vec![0.0; rows];
        let (sum, count) = cross_entropy(&logits, t, ignore, v, &mut lse);
        let mut dl = vec![0.0; rows * v];
        let scale = 1.0 / count.max(1) as f32;
        cross_entropy_backward(&logits, &lse, t, ignore, v, scale, &mut dl);
        let (mut dx, mut dw) = (vec![0.0; rows * c], vec![0.0; v * c]);
        gemm(rows, v, c, &dl, Layout::N, w, Layout::N, &mut dx, false);
        gemm(v, rows, c, &dl, Layout::T, x, Layout::N, &mut dw, false);
        (sum, count, dx, dw)
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    fn check(d: Dims, ignore: Option<u32>, every_ignored: usize) {
        check_chunked(d, ignore, every_ignored, CHUNK_FLOATS)
    }

    fn check_chunked(d: Dims, ignore: Option<u32>, every_ignored: usize, chunk_floats: usize) {
        let t: Vec<u32> = (0..d.rows)
            .map(|r| match ignore {
                Some(i) if every_ignored > 0 && r % every_ignored == 0 => i,
                _ => ((r * 7919 + 13) % d.v) as u32,
            })
            .collect();
        check_targets(d, &t, ignore, chunk_floats)
    }

    fn check_targets(d: Dims, t: &[u32], ignore: Option<u32>, chunk_floats: usize) {
        let mut seed = 7 + d.rows as u64;
        let x = rand(d.rows * d.c, &mut seed, 2.0);
        let w = rand(d.v * d.c, &mut seed, 0.5);
        let (sum, count, dx, dw) = reference(&x, &w, t, ignore, d);
        let opts = |want_grad| Options {
            chunk_floats,
            ..Options::new(want_grad)
        };
        let out = classifier(&x, &w, t, ignore, d, opts(true));
        assert_eq!(out.count, count);
        // f32 sums in a different order: 1e-5 relative on the loss.
        assert!(
            (out.loss_sum - sum).abs() <= 1e-5 * sum.abs().max(1.0),
            "{d:?}: loss {} vs {sum}",
            out.loss_sum
        );
        let (gx, gw) = out.grads.expect("asked for");
        // Gradients of the mean: entries of order 1/count; 1e-6 absolute covers the f32 gemms.
        let (ex, ew) = (max_abs_diff(&gx, &dx), max_abs_diff(&gw, &dw));
        assert!(
            ex <= 1e-6 && ew <= 1e-6,
            "{d:?}: dx off by {ex}, dw by {ew}"
        );
        let no_grad = classifier(&x, &w, t, ignore, d, opts(false));
        assert!(no_grad.grads.is_none());
        assert_eq!(no_grad.loss_sum.to_bits(), out.loss_sum.to_bits());
    }

    #[test]
    fn matches_matmul_and_cross_entropy() {
        check(
            Dims {
                rows: 9,
                c: 16,
                v: 37,
            },
            None,
            0,
        );
        check(
            Dims {
                rows: 70,
                c: 48,
                v: 300,
            },
            Some(0),
            3,
        );
        check(
            Dims {
                rows: 64,
                c: 64,
                v: 1000,
            },
            Some(999),
            5,
        );
    }

    #[test]
    fn chunks_of_rows_add_up() {
        // Chunks of 7 rows (the last one shorter), dw accumulated across them.
        let d = Dims {
            rows: 45,
            c: 32,
            v: 211,
        };
        check_chunked(d, Some(1), 4, 7 * d.v);
        // The middle chunk of three has only ignored rows.
        let t: Vec<u32> = (0..12)
            .map(|r| if (5..10).contains(&r) { 3 } else { r })
            .collect();
        check_targets(
            Dims {
                rows: 12,
                c: 8,
                v: 50,
            },
            &t,
            Some(3),
            5 * 50,
        );
    }

    #[test]
    fn every_row_ignored_gives_zero_gradients() {
        let d = Dims {
            rows: 4,
            c: 3,
            v: 5,
        };
        let out = classifier(
            &[1.0; 12],
            &[0.5; 15],
            &[2; 4],
            Some(2),
            d,
            Options::new(true),
        );
        assert_eq!((out.loss_sum, out.count), (0.0, 0));
        let (dx, dw) = out.grads.unwrap();
        assert!(dx.iter().chain(&dw).all(|&g| g == 0.0));
    }
}
