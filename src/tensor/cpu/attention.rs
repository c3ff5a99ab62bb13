//! Fused causal self-attention, forward and backward, for one batch of heads.
//!
//! `q`, `k`, `v` and the output `y` are `[BH, T, D]` (batch × heads, time, head size), contiguous.
//! For each head: `S = Q·Kᵀ·scale`, mask the future (`j > i`) to −∞, `P = softmax(S)`, `Y = P·V`.
//!
//! The idea (from FlashAttention): keep only one `T×T` scratch per head being worked on, never the
//! `BH×T×T` attention tensor of the whole batch, and save just one number per query row, the
//! log-sum-exp `lse_i = log Σ_j exp(S_ij)`. Backward recomputes `P = exp(S − lse)` from `Q`, `K`
//! and `lse` instead of storing it: one extra `Q·Kᵀ` in exchange for `BH×T×T` memory.
//! The products per head run as gemm calls (the fast CPU matmul); heads run in parallel, and
//! the row loops between them run in the AVX2 build (`fastmath::simd`), written so they vectorise.
//! Queries go in blocks of 64, and a block's products stop at its last key: the scores above the
//! diagonal are never computed (at T = 256, 10/16 of the full `T×T` products; at T ≤ 64, all).
//!
//! Backward, with `dY` given and `Dᵢ = Σ_d dYᵢ·Yᵢ` (= Σ_j Pᵢⱼ dPᵢⱼ):
//! `dV = Pᵀ·dY`, `dP = dY·Vᵀ`, `dS = P ⊙ (dP − D)`, `dQ = dS·K·scale`, `dK = dSᵀ·Q·scale`.

use super::fastmath::{dot, max, simd, sum};
use super::float::Float;
use super::matmul::Layout;
use rayon::prelude::*;

/// Queries per block: a block of queries only meets the keys up to its last one.
const QUERY_BLOCK: usize = 64;

/// Forward: fills `y` (`[BH, T, D]`) and `lse` (`[BH, T]`).
#[allow(clippy::too_many_arguments)]
pub fn causal_attention_forward<T: Float>(
    q: &[T],
    k: &[T],
    v: &[T],
    y: &mut [T],
    lse: &mut [T],
    t: usize,
    d: usize,
    scale: T,
) {
    forward_blocks(q, k, v, y, lse, t, d, scale, QUERY_BLOCK)
}

/// The forward pass with blocks of `bq` queries.
#[allow(clippy::too_many_arguments)]
fn forward_blocks<T: Float>(
    q: &[T],
    k: &[T],
    v: &[T],
    y: &mut [T],
    lse: &mut [T],
    t: usize,
    d: usize,
    scale: T,
    bq: usize,
) {
    let hd = t * d;
    assert!(
        q.len() == k.len()
            && k.len() == v.len()
            && v.len() == y.len()
            && hd > 0
            && q.len().is_multiple_of(hd),
        "causal_attention_forward: q {}, k {}, v {}, y {} for T={t}, D={d}",
        q.len(),
        k.len(),
        v.len(),
        y.len()
    );
    assert_eq!(lse.len(), q.len() / d, "causal_attention_forward: lse size");
    y.par_chunks_mut(hd)
        .zip(lse.par_chunks_mut(t))
        .enumerate()
        .for_each(|(h, (yh, lh))| {
            let r = h * hd..(h + 1) * hd;
            let (qh, kh, vh) = (&q[r.clone()], &k[r.clone()], &v[r]);
            let mut s = vec![T::ZERO; bq.min(t) * t];
            for (q0, rows) in query_blocks(t, bq) {
                // Keys 0..e are the only ones these queries see.
                let e = q0 + rows;
                let s = &mut s[..rows * e];
                let qb = &qh[q0 * d..e * d];
                T::gemm(rows, d, e, qb, Layout::N, &kh[..e * d], Layout::T, s, false);
                simd(|| {
                    for (i, row) in s.chunks_exact_mut(e).enumerate() {
                        lh[q0 + i] = softmax_prefix(&mut row[..=q0 + i], scale);
                        row[q0 + i + 1..].fill(T::ZERO);
                    }
                });
                let yb = &mut yh[q0 * d..e * d];
                T::gemm(rows, e, d, s, Layout::N, &vh[..e * d], Layout::N, yb, false);
            }
        });
}

/// Blocks of at most `bq` queries: `(first query, count)`.
fn query_blocks(t: usize, bq: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..t)
        .step_by(bq.max(1))
        .map(move |q0| (q0, bq.min(t - q0)))
}

/// Scales `row` (the unmasked scores of one query) by `scale` and replaces it with its softmax;
/// returns the log-sum-exp of the scaled scores. Separate passes without a running sum, so each
/// vectorises (the sum uses `fastmath`'s eight lanes).
#[inline(always)]
fn softmax_prefix<T: Float>(row: &mut [T], scale: T) -> T {
    for x in row.iter_mut() {
        *x *= scale;
    }
    let m = max(row);
    for x in row.iter_mut() {
        *x = (*x - m).exp();
    }
    let total = sum(row);
    let inv = T::ONE / total;
    for x in row.iter_mut() {
        *x *= inv;
    }
    m + total.ln()
}

/// Backward: from `dy` (and the forward's inputs, output and `lse`) fills `dq`, `dk`, `dv`.
#[allow(clippy::too_many_arguments)]
pub fn causal_attention_backward<T: Float>(
    q: &[T],
    k: &[T],
    v: &[T],
    y: &[T],
    lse: &[T],
    dy: &[T],
    dq: &mut [T],
    dk: &mut [T],
    dv: &mut [T],
    t: usize,
    d: usize,
    scale: T,
) {
    backward_blocks(q, k, v, y, lse, dy, dq, dk, dv, t, d, scale, QUERY_BLOCK)
}

/// The backward pass with blocks of `bq` queries.
#[allow(clippy::too_many_arguments)]
fn backward_blocks<T: Float>(
    q: &[T],
    k: &[T],
    v: &[T],
    y: &[T],
    lse: &[T],
    dy: &[T],
    dq: &mut [T],
    dk: &mut [T],
    dv: &mut [T],
    t: usize,
    d: usize,
    scale: T,
    bq: usize,
) {
    let hd = t * d;
    assert!(
        [
            k.len(),
            v.len(),
            y.len(),
            dy.len(),
            dq.len(),
            dk.len(),
            dv.len()
        ]
        .iter()
        .all(|&n| n == q.len()),
        "causal_attention_backward: sizes differ"
    );
    dq.par_chunks_mut(hd)
        .zip(dk.par_chunks_mut(hd))
        .zip(dv.par_chunks_mut(hd))
        .enumerate()
        .for_each(|(h, ((dqh, dkh), dvh))| {
            let r = h * hd..(h + 1) * hd;
            let (qh, kh, vh, yh, dyh) = (
                &q[r.clone()],
                &k[r.clone()],
                &v[r.clone()],
                &y[r.clone()],
                &dy[r],
            );
            let lh = &lse[h * t..(h + 1) * t];
            // dK and dV collect a term from every block of queries that sees the key.
            dkh.fill(T::ZERO);
            dvh.fill(T::ZERO);
            let (mut p, mut ds) = (vec![T::ZERO; bq.min(t) * t], vec![T::ZERO; bq.min(t) * t]);
            for (q0, rows) in query_blocks(t, bq) {
                let e = q0 + rows;
                let (p, ds) = (&mut p[..rows * e], &mut ds[..rows * e]);
                let (qb, dyb) = (&qh[q0 * d..e * d], &dyh[q0 * d..e * d]);
                let (ke, ve) = (&kh[..e * d], &vh[..e * d]);
                // P, recomputed from Q, K and the saved log-sum-exp.
                T::gemm(rows, d, e, qb, Layout::N, ke, Layout::T, p, false);
                simd(|| {
                    for (i, row) in p.chunks_exact_mut(e).enumerate() {
                        let l = lh[q0 + i];
                        for x in row[..=q0 + i].iter_mut() {
                            *x = (*x * scale - l).exp();
                        }
                        row[q0 + i + 1..].fill(T::ZERO);
                    }
                });
                // dV += Pᵀ·dY
                T::gemm(
                    e,
                    rows,
                    d,
                    p,
                    Layout::T,
                    dyb,
                    Layout::N,
                    &mut dvh[..e * d],
                    true,
                );
                // dP = dY·Vᵀ, then dS = P ⊙ (dP − D) · scale, in place.
                T::gemm(rows, d, e, dyb, Layout::N, ve, Layout::T, ds, false);
                simd(|| {
                    for (i, (pr, dr)) in p.chunks_exact(e).zip(ds.chunks_exact_mut(e)).enumerate() {
                        let g = q0 + i;
                        let di = dot(&dyh[g * d..(g + 1) * d], &yh[g * d..(g + 1) * d]);
                        for (x, &pj) in dr[..=g].iter_mut().zip(&pr[..=g]) {
                            *x = pj * (*x - di) * scale;
                        }
                        dr[g + 1..].fill(T::ZERO);
                    }
                });
                // dQ = dS·K, dK += dSᵀ·Q
                T::gemm(
                    rows,
                    e,
                    d,
                    ds,
                    Layout::N,
                    ke,
                    Layout::N,
                    &mut dqh[q0 * d..e * d],
                    false,
                );
                T::gemm(
                    e,
                    rows,
                    d,
                    ds,
                    Layout::T,
                    qb,
                    Layout::N,
                    &mut dkh[..e * d],
                    true,
                );
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks of queries (three, the last one short) give what one block of all queries gives,
    /// forward and backward (f64, so the only differences are summation order: 1e-12).
    #[test]
    fn query_blocks_match_one_block() {
        let (bh, t, d) = (2, 150, 8);
        let n = bh * t * d;
        let val = |i: usize, s: usize| ((i * s) % 97) as f64 / 48.0 - 1.0;
        let (q, k, v, g): (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) = (
            (0..n).map(|i| val(i, 31)).collect(),
            (0..n).map(|i| val(i, 37)).collect(),
            (0..n).map(|i| val(i, 41)).collect(),
            (0..n).map(|i| val(i, 43)).collect(),
        );
        let run = |bq: usize| {
            let (mut y, mut l) = (vec![0.0; n], vec![0.0; bh * t]);
            forward_blocks(&q, &k, &v, &mut y, &mut l, t, d, 0.35, bq);
            let (mut dq, mut dk, mut dv) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            backward_blocks(
                &q, &k, &v, &y, &l, &g, &mut dq, &mut dk, &mut dv, t, d, 0.35, bq,
            );
            [y, l, dq, dk, dv]
        };
        let (blocks, one) = (run(64), run(t));
        for (a, b) in blocks.iter().zip(&one) {
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()), "{x} vs {y}");
            }
        }
    }
}
