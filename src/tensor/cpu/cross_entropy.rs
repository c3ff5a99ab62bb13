//! Cross-entropy from logits, fused with log-softmax: never materialises the probabilities.
//!
//! Forward per row `r` with target `t`: `lse = max + ln Σ exp(x − max)`, `loss_r = lse − x[t]`;
//! the result is the mean over rows whose target is not `ignore`. It saves `lse` per row.
//! Backward: `dx[r, j] = g/count · (exp(x[r, j] − lse_r) − [j = t])`, zero for ignored rows.

use super::elementwise::for_rows;
use super::fastmath::{max, simd, sum_exp};
use super::float::Float;

/// Returns `(sum of row losses, number of counted rows)` and fills `lse` (one per row).
pub fn cross_entropy<T: Float>(
    x: &[T],
    targets: &[u32],
    ignore: Option<u32>,
    cols: usize,
    lse: &mut [T],
) -> (f64, usize) {
    let rows = targets.len();
    assert!(
        x.len() == rows * cols && lse.len() == rows,
        "cross_entropy: sizes"
    );
    for_rows(lse, (cols / 64).max(1), |first, chunk| {
        simd(|| {
            for (r, l) in chunk.iter_mut().enumerate() {
                let xr = &x[(first + r) * cols..(first + r + 1) * cols];
                let m = max(xr);
                *l = m + sum_exp(xr, m).ln();
            }
        })
    });
    let mut total = 0.0f64;
    let mut count = 0;
    for (r, &t) in targets.iter().enumerate() {
        if Some(t) == ignore {
            continue;
        }
        assert!(
            (t as usize) < cols,
            "cross_entropy: target {t} out of range for {cols} classes"
        );
        total += (lse[r] - x[r * cols + t as usize]).to_f64();
        count += 1;
    }
    (total, count)
}

/// Writes `dx` (rows×cols): `scale · (softmax(x) − onehot(t))`, zero rows for ignored targets.
pub fn cross_entropy_backward<T: Float>(
    x: &[T],
    lse: &[T],
    targets: &[u32],
    ignore: Option<u32>,
    cols: usize,
    scale: T,
    dx: &mut [T],
) {
    assert!(
        x.len() == dx.len() && lse.len() == targets.len(),
        "cross_entropy_backward: sizes"
    );
    for_rows(dx, cols, |first, chunk| {
        simd(|| {
            for (i, dr) in chunk.chunks_mut(cols).enumerate() {
                let r = first + i;
                let t = targets[r];
                if Some(t) == ignore {
                    dr.fill(T::ZERO);
                    continue;
                }
                let (xr, l) = (&x[r * cols..(r + 1) * cols], lse[r]);
                for (d, &v) in dr.iter_mut().zip(xr) {
                    *d = scale * (v - l).exp();
                }
                dr[t as usize] -= scale;
            }
        })
    });
}
