//! Reductions over one axis. A contiguous tensor reduced over axis `d` is viewed as
//! `[outer, n, inner]` (n = size of axis d); the result is `[outer, inner]`.

use super::elementwise::{PAR_GRAIN, for_rows};
use super::fastmath::{simd, sum};
use super::float::Float;
use rayon::prelude::*;

/// `out[o, i] = Σ_j x[o, j, i]`.
pub fn sum_axis<T: Float>(x: &[T], outer: usize, n: usize, inner: usize, out: &mut [T]) {
    assert_eq!(x.len(), outer * n * inner, "sum_axis: input size");
    assert_eq!(out.len(), outer * inner, "sum_axis: output size");
    if inner == 1 {
        // Row sums: one row per output element.
        if outer == 1 && n >= 2 * PAR_GRAIN {
            // One long row (a sum over everything): partial sums in parallel.
            let parts: Vec<T> = x.par_chunks(PAR_GRAIN).map(|c| simd(|| sum(c))).collect();
            out[0] = sum(&parts);
            return;
        }
        for_rows(out, n.max(1), |first, chunk| {
            simd(|| {
                for (r, o) in chunk.iter_mut().enumerate() {
                    *o = sum(&x[(first + r) * n..(first + r + 1) * n]);
                }
            })
        });
        return;
    }
    if outer == 1 && n * inner >= 2 * PAR_GRAIN {
        // Column sums of a tall matrix (e.g. a bias gradient): partial sums per block of rows.
        let rows_per = PAR_GRAIN.div_ceil(inner).max(1);
        let partials: Vec<Vec<T>> = x
            .par_chunks(rows_per * inner)
            .map(|block| {
                let mut acc = vec![T::ZERO; inner];
                for row in block.chunks(inner) {
                    for (a, &v) in acc.iter_mut().zip(row) {
                        *a += v;
                    }
                }
                acc
            })
            .collect();
        out.fill(T::ZERO);
        for p in partials {
            for (o, v) in out.iter_mut().zip(p) {
                *o += v;
            }
        }
        return;
    }
    for_rows(out, inner, |first, chunk| {
        for (r, orow) in chunk.chunks_mut(inner).enumerate() {
            let o = first + r;
            orow.fill(T::ZERO);
            for j in 0..n {
                let row = &x[(o * n + j) * inner..(o * n + j + 1) * inner];
                for (a, &v) in orow.iter_mut().zip(row) {
                    *a += v;
                }
            }
        }
    });
}

/// `out[o, i] = max_j x[o, j, i]` (NaN-free inputs assumed).
pub fn max_axis<T: Float>(x: &[T], outer: usize, n: usize, inner: usize, out: &mut [T]) {
    assert_eq!(x.len(), outer * n * inner, "max_axis: input size");
    assert!(n > 0, "max_axis: cannot reduce an empty axis");
    for_rows(out, inner, |first, chunk| {
        for (r, orow) in chunk.chunks_mut(inner).enumerate() {
            let o = first + r;
            orow.copy_from_slice(&x[o * n * inner..o * n * inner + inner]);
            for j in 1..n {
                let row = &x[(o * n + j) * inner..(o * n + j + 1) * inner];
                for (a, &v) in orow.iter_mut().zip(row) {
                    if v > *a {
                        *a = v;
                    }
                }
            }
        }
    });
}

/// Backward of `max_axis`: the gradient of each output goes to the first input equal to the max.
/// `dx` is `[outer, n, inner]` and is overwritten.
pub fn max_axis_backward<T: Float>(
    x: &[T],
    y: &[T],
    g: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    dx: &mut [T],
) {
    dx.fill(T::ZERO);
    for o in 0..outer {
        for i in 0..inner {
            let m = y[o * inner + i];
            if let Some(j) = (0..n).find(|&j| x[(o * n + j) * inner + i] == m) {
                dx[(o * n + j) * inner + i] = g[o * inner + i];
            }
        }
    }
}
