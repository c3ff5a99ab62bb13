//! LayerNorm over the last axis, fused forward and backward.
//!
//! Forward per row: `μ = mean(x)`, `σ⁻¹ = 1/√(var(x) + eps)`, `x̂ = (x − μ)σ⁻¹`, `y = x̂·w + b`.
//! It saves μ and σ⁻¹ per row (two numbers) so backward need not recompute them.
//! Backward per row, with `ĝ = g·w`: `dx = σ⁻¹(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))`; `dw = Σ_rows g·x̂`,
//! `db = Σ_rows g` (accumulated per block of rows in parallel, then summed).

use super::elementwise::PAR_GRAIN;
use super::fastmath::{dot, dot3, simd, sum, sum_sq_dev};
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
    // One block of rows: statistics, then the normalised rows.
    let block = |r0: usize, y: &mut [T], mean: &mut [T], rstd: &mut [T]| {
        simd(|| {
            for (i, yr) in y.chunks_mut(cols).enumerate() {
                let xr = &x[(r0 + i) * cols..(r0 + i + 1) * cols];
                let m = sum(xr) * inv_n;
                let rs = T::ONE / (sum_sq_dev(xr, m) * inv_n + eps).sqrt();
                for (((o, &v), &wv), &bv) in yr.iter_mut().zip(xr).zip(w).zip(b) {
                    *o = (v - m) * rs * wv + bv;
                }
                (mean[i], rstd[i]) = (m, rs);
            }
        })
    };
    let rows_per = PAR_GRAIN.div_ceil(cols).max(1);
    if x.len() < PAR_GRAIN {
        block(0, y, mean, rstd);
    } else {
        y.par_chunks_mut(rows_per * cols)
            .zip(mean.par_chunks_mut(rows_per))
            .zip(rstd.par_chunks_mut(rows_per))
            .enumerate()
            .for_each(|(c, ((y, m), rs))| block(c * rows_per, y, m, rs));
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
    let block = |c: usize, chunk: &mut [T]| {
        simd(|| {
            let mut pw = vec![T::ZERO; cols];
            let mut pb = vec![T::ZERO; cols];
            for (i, dr) in chunk.chunks_mut(cols).enumerate() {
                let r = c * rows_per + i;
                let (xr, gr) = (&x[r * cols..(r + 1) * cols], &g[r * cols..(r + 1) * cols]);
                let (m, rs) = (mean[r], rstd[r]);
                // dr holds x̂ for now; every loop here is a plain slice loop that vectorises.
                for (((d, &xv), &gv), (pwj, pbj)) in dr
                    .iter_mut()
                    .zip(xr)
                    .zip(gr)
                    .zip(pw.iter_mut().zip(pb.iter_mut()))
                {
                    let xh = (xv - m) * rs;
                    *d = xh;
                    *pwj += gv * xh;
                    *pbj += gv;
                }
                let mg = dot(gr, w) * inv_n;
                let mgx = dot3(gr, w, dr) * inv_n;
                for ((d, &gv), &wv) in dr.iter_mut().zip(gr).zip(w) {
                    *d = rs * (gv * wv - mg - *d * mgx);
                }
            }
            (pw, pb)
        })
    };
    let partials: Vec<(Vec<T>, Vec<T>)> = if x.len() < PAR_GRAIN {
        vec![block(0, dx)]
    } else {
        dx.par_chunks_mut(rows_per * cols)
            .enumerate()
            .map(|(c, chunk)| block(c, chunk))
            .collect()
    };
    dw.fill(T::ZERO);
    db.fill(T::ZERO);
    for (pw, pb) in partials {
        for j in 0..cols {
            dw[j] += pw[j];
            db[j] += pb[j];
        }
    }
}
