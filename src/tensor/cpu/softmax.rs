//! Softmax and log-softmax over the last axis, fused: one pass for the row max, one for the
//! exponentials and their sum, one to scale. Rows run in parallel; each block of rows runs in
//! the AVX2 build of the loop when the CPU has it (`fastmath::simd`).

use super::elementwise::for_rows;
use super::fastmath::{dot, max, simd, sum, sum_exp};
use super::float::Float;

/// `y[r, :] = softmax(x[r, :])`, rows of length `cols`. Stable: subtracts the row max first.
pub fn softmax<T: Float>(x: &[T], y: &mut [T], cols: usize) {
    assert_eq!(x.len(), y.len(), "softmax: sizes");
    for_rows(y, cols, |first, chunk| {
        simd(|| {
            for (r, yr) in chunk.chunks_mut(cols).enumerate() {
                let xr = &x[(first + r) * cols..(first + r + 1) * cols];
                let m = max(xr);
                for (o, &v) in yr.iter_mut().zip(xr) {
                    *o = (v - m).exp();
                }
                let inv = T::ONE / sum(yr);
                for o in yr.iter_mut() {
                    *o *= inv;
                }
            }
        })
    });
}

/// `y[r, :] = x[r, :] - logsumexp(x[r, :])`.
pub fn log_softmax<T: Float>(x: &[T], y: &mut [T], cols: usize) {
    assert_eq!(x.len(), y.len(), "log_softmax: sizes");
    for_rows(y, cols, |first, chunk| {
        simd(|| {
            for (r, yr) in chunk.chunks_mut(cols).enumerate() {
                let xr = &x[(first + r) * cols..(first + r + 1) * cols];
                let m = max(xr);
                let lse = m + sum_exp(xr, m).ln();
                for (o, &v) in yr.iter_mut().zip(xr) {
                    *o = v - lse;
                }
            }
        })
    });
}

/// Backward of softmax from its output `y`: `dx = y ⊙ (g − Σ g⊙y)`.
pub fn softmax_backward<T: Float>(y: &[T], g: &[T], dx: &mut [T], cols: usize) {
    for_rows(dx, cols, |first, chunk| {
        simd(|| {
            for (r, dr) in chunk.chunks_mut(cols).enumerate() {
                let range = (first + r) * cols..(first + r + 1) * cols;
                let (yr, gr) = (&y[range.clone()], &g[range]);
                let d = dot(yr, gr);
                for ((o, &p), &q) in dr.iter_mut().zip(yr).zip(gr) {
                    *o = p * (q - d);
                }
            }
        })
    });
}

/// Backward of log-softmax from its output `y`: `dx = g − exp(y) · Σ g`.
pub fn log_softmax_backward<T: Float>(y: &[T], g: &[T], dx: &mut [T], cols: usize) {
    for_rows(dx, cols, |first, chunk| {
        simd(|| {
            for (r, dr) in chunk.chunks_mut(cols).enumerate() {
                let range = (first + r) * cols..(first + r + 1) * cols;
                let (yr, gr) = (&y[range.clone()], &g[range]);
                let s = sum(gr);
                for ((o, &p), &q) in dr.iter_mut().zip(yr).zip(gr) {
                    *o = q - p.exp() * s;
                }
            }
        })
    });
}

/// Fused attention softmax: `y = softmax(scale·x)` over each row of a `[.., t, s]` tensor with
/// the causal mask built in: in row `i` (query position `i % t`) only keys `j ≤ i + s − t` take
/// part, the rest of the row is 0. One pass replaces scale, mask-fill and softmax.
pub fn causal_softmax<T: Float>(x: &[T], y: &mut [T], t: usize, s: usize, scale: T) {
    assert!(x.len() == y.len() && s >= t, "causal_softmax: sizes");
    for_rows(y, s, |first, chunk| {
        simd(|| {
            for (r, yr) in chunk.chunks_mut(s).enumerate() {
                let row = first + r;
                let valid = row % t + (s - t) + 1;
                let xr = &x[row * s..row * s + valid];
                let m = max(xr) * scale;
                let (head, tail) = yr.split_at_mut(valid);
                for (o, &v) in head.iter_mut().zip(xr) {
                    *o = (v * scale - m).exp();
                }
                let inv = T::ONE / sum(head);
                for o in head.iter_mut() {
                    *o *= inv;
                }
                tail.fill(T::ZERO);
            }
        })
    });
}

/// Backward of [`causal_softmax`] from its output: `dx = scale · y ⊙ (g − Σ g⊙y)` (masked entries
/// have `y = 0`, so their gradient is 0).
pub fn causal_softmax_backward<T: Float>(
    y: &[T],
    g: &[T],
    dx: &mut [T],
    t: usize,
    s: usize,
    scale: T,
) {
    for_rows(dx, s, |first, chunk| {
        simd(|| {
            for (r, dr) in chunk.chunks_mut(s).enumerate() {
                let row = first + r;
                let valid = row % t + (s - t) + 1;
                let (yr, gr) = (&y[row * s..row * s + valid], &g[row * s..row * s + valid]);
                let d = dot(yr, gr);
                let (head, tail) = dr.split_at_mut(valid);
                for ((o, &p), &q) in head.iter_mut().zip(yr).zip(gr) {
                    *o = scale * p * (q - d);
                }
                tail.fill(T::ZERO);
            }
        })
    });
}
