//! The cheap path for products with one row or one column (`m == 1` or `n == 1`).
//!
//! A matrix-vector product does one multiply-add per element of the matrix, so it is limited by
//! reading the matrix, not by arithmetic. The blocked versions would copy (pack) the whole matrix
//! first and then fill a 6×64 register tile of which only one row or column is real; here we read
//! the matrix once, in its storage order, with no packing.

use super::View;

/// `c (n) (+)= a (k) · B (k×n)`, with `B` any strided view.
pub(crate) fn gemv(k: usize, n: usize, a: &[f32], b: View, c: &mut [f32], accumulate: bool) {
    if b.cs == 1 || n == 1 {
        // Rows of B are contiguous: c += a[p] · B[p, ..] for every p (each one an axpy).
        if !accumulate {
            c.fill(0.0);
        }
        for (p, &ap) in a.iter().enumerate().take(k) {
            let row = &b.data[p * b.rs..];
            if b.cs == 1 {
                for (cj, &bj) in c.iter_mut().zip(&row[..n]) {
                    *cj += ap * bj;
                }
            } else {
                c[0] += ap * row[0];
            }
        }
    } else {
        // Columns of B are contiguous (B stored transposed): c[j] = dot(a, B[.., j]).
        for (j, cj) in c.iter_mut().enumerate() {
            let d = dot(a, &b.data[j * b.cs..j * b.cs + k]);
            *cj = if accumulate { *cj + d } else { d };
        }
    }
}

/// A dot product with 16 independent partial sums, so the compiler can vectorise it.
fn dot(x: &[f32], y: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let (xc, yc) = (x.chunks_exact(16), y.chunks_exact(16));
    let tail: f32 = xc
        .remainder()
        .iter()
        .zip(yc.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (xs, ys) in xc.zip(yc) {
        for i in 0..16 {
            acc[i] += xs[i] * ys[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}
