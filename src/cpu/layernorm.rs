//! LayerNorm over the last axis, fused forward and backward.
//!
//! Forward per row: `μ = mean(x)`, `σ⁻¹ = 1/√(var(x) + eps)`, `x̂ = (x − μ)σ⁻¹`, `y = x̂·w + b`.
//! It saves μ and σ⁻¹ per row (two numbers) so backward need not recompute them.
//! Backward per row, with `ĝ = g·w`: `dx = σ⁻¹(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))`; `dw = Σ_rows g·x̂`,
//! `db = Σ_rows g` (accumulated per block of rows in parallel, then summed).

use super::elementwise::PAR_GRAIN;
use super::float::Float;
use rayon::prelude::*;

/// Forward. `x`, `y`: rows×cols; `w`, `b`: cols; `mean`, `rstd`: rows (outputs).
#[allow(clippy::too_many_arguments)]
pub fn layernorm<T: Float>(
    x: &[T],
    w: &[T],
    b: &[T],
    eps: T,
    cols: usize,
    y: &mut [T],
    mean: &mut [T],
    rstd: &mut [T],
) {
    let rows = mean.len();
    assert!(x.len() == rows * cols && y.len() == x.len() && rstd.len() == rows);
    assert!(
        w.len() == cols && b.len() == cols,
        "layernorm: weight/bias size"
    );
    let inv_n = T::ONE / T::from_f64(cols as f64);
    let row = |r: usize, yr: &mut [T], m_out: &mut T, rs_out: &mut T| {
        let xr = &x[r * cols..(r + 1) * cols];
        let m = xr.iter().fold(T::ZERO, |a, &v| a + v) * inv_n;
        let var = xr.iter().fold(T::ZERO, |a, &v| a + (v - m) * (v - m)) * inv_n;
        let rs = T::ONE / (var + eps).sqrt();
        for (((o, &v), &wv), &bv) in yr.iter_mut().zip(xr).zip(w).zip(b) {
            *o = (v - m) * rs * wv + bv;
        }
        (*m_out, *rs_out) = (m, rs);
    };
    if x.len() < PAR_GRAIN {
        for (r, ((yr, m), rs)) in y
            .chunks_mut(cols)
            .zip(mean.iter_mut())
            .zip(rstd.iter_mut())
            .enumerate()
        {
            row(r, yr, m, rs);
        }
    } else {
        y.par_chunks_mut(cols)
            .zip(mean.par_iter_mut())
            .zip(rstd.par_iter_mut())
            .enumerate()
            .for_each(|(r, ((yr, m), rs))| row(r, yr, m, rs));
    }
}

/// Backward. Writes `dx` (rows×cols), `dw` and `db` (cols; overwritten).
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward<T: Float>(
    x: &[T],
    w: &[T],
    mean: &[T],
    rstd: &[T],
    g: &[T],
    cols: usize,
    dx: &mut [T],
    dw: &mut [T],
    db: &mut [T],
) {
    let rows = mean.len();
    assert!(x.len() == rows * cols && g.len() == x.len() && dx.len() == x.len());
    let inv_n = T::ONE / T::from_f64(cols as f64);
    let rows_per = PAR_GRAIN.div_ceil(cols).max(1);
    let partials: Vec<(Vec<T>, Vec<T>)> = dx
        .par_chunks_mut(rows_per * cols)
        .enumerate()
        .map(|(c, chunk)| {
            let mut pw = vec![T::ZERO; cols];
            let mut pb = vec![T::ZERO; cols];
            for (i, dr) in chunk.chunks_mut(cols).enumerate() {
                let r = c * rows_per + i;
                let (xr, gr) = (&x[r * cols..(r + 1) * cols], &g[r * cols..(r + 1) * cols]);
                let (m, rs) = (mean[r], rstd[r]);
                let mut sum_g = T::ZERO;
                let mut sum_gx = T::ZERO;
                for j in 0..cols {
                    let xh = (xr[j] - m) * rs;
                    let gh = gr[j] * w[j];
                    sum_g += gh;
                    sum_gx += gh * xh;
                    pw[j] += gr[j] * xh;
                    pb[j] += gr[j];
                }
                let (mg, mgx) = (sum_g * inv_n, sum_gx * inv_n);
                for j in 0..cols {
                    let xh = (xr[j] - m) * rs;
                    dr[j] = rs * (gr[j] * w[j] - mg - xh * mgx);
                }
            }
            (pw, pb)
        })
        .collect();
    dw.fill(T::ZERO);
    db.fill(T::ZERO);
    for (pw, pb) in partials {
        for j in 0..cols {
            dw[j] += pw[j];
            db[j] += pb[j];
        }
    }
}
