//! Softmax and log-softmax over the last axis, fused: one read of each row for the max, one for
//! the sum of exponentials, one write. Rows run in parallel.

use super::elementwise::for_rows;
use super::float::Float;

/// `y[r, :] = softmax(x[r, :])`, rows of length `cols`. Stable: subtracts the row max first.
pub fn softmax<T: Float>(x: &[T], y: &mut [T], cols: usize) {
    assert_eq!(x.len(), y.len(), "softmax: sizes");
    for_rows(y, cols, |first, chunk| {
        for (r, yr) in chunk.chunks_mut(cols).enumerate() {
            let xr = &x[(first + r) * cols..(first + r + 1) * cols];
            let m = xr.iter().fold(T::NEG_INFINITY, |a, &v| a.max(v));
            let mut s = T::ZERO;
            for (o, &v) in yr.iter_mut().zip(xr) {
                *o = (v - m).exp();
                s += *o;
            }
            let inv = T::ONE / s;
            for o in yr.iter_mut() {
                *o *= inv;
            }
        }
    });
}

/// `y[r, :] = x[r, :] - logsumexp(x[r, :])`.
pub fn log_softmax<T: Float>(x: &[T], y: &mut [T], cols: usize) {
    assert_eq!(x.len(), y.len(), "log_softmax: sizes");
    for_rows(y, cols, |first, chunk| {
        for (r, yr) in chunk.chunks_mut(cols).enumerate() {
            let xr = &x[(first + r) * cols..(first + r + 1) * cols];
            let m = xr.iter().fold(T::NEG_INFINITY, |a, &v| a.max(v));
            let s = xr.iter().fold(T::ZERO, |a, &v| a + (v - m).exp());
            let lse = m + s.ln();
            for (o, &v) in yr.iter_mut().zip(xr) {
                *o = v - lse;
            }
        }
    });
}

/// Backward of softmax from its output `y`: `dx = y ⊙ (g − Σ g⊙y)`.
pub fn softmax_backward<T: Float>(y: &[T], g: &[T], dx: &mut [T], cols: usize) {
    for_rows(dx, cols, |first, chunk| {
        for (r, dr) in chunk.chunks_mut(cols).enumerate() {
            let range = (first + r) * cols..(first + r + 1) * cols;
            let (yr, gr) = (&y[range.clone()], &g[range]);
            let dot = yr.iter().zip(gr).fold(T::ZERO, |a, (&p, &q)| a + p * q);
            for ((d, &p), &q) in dr.iter_mut().zip(yr).zip(gr) {
                *d = p * (q - dot);
            }
        }
    });
}

/// Backward of log-softmax from its output `y`: `dx = g − exp(y) · Σ g`.
pub fn log_softmax_backward<T: Float>(y: &[T], g: &[T], dx: &mut [T], cols: usize) {
    for_rows(dx, cols, |first, chunk| {
        for (r, dr) in chunk.chunks_mut(cols).enumerate() {
            let range = (first + r) * cols..(first + r + 1) * cols;
            let (yr, gr) = (&y[range.clone()], &g[range]);
            let s = gr.iter().fold(T::ZERO, |a, &q| a + q);
            for ((d, &p), &q) in dr.iter_mut().zip(yr).zip(gr) {
                *d = q - p.exp() * s;
            }
        }
    });
}
