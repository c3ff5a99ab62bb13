//! Fused causal self-attention, forward and backward, for one batch of heads.
//!
//! `q`, `k`, `v` and the output `y` are `[BH, T, D]` (batch × heads, time, head size), contiguous.
//! For each head: `S = Q·Kᵀ·scale`, mask the future (`j > i`) to −∞, `P = softmax(S)`, `Y = P·V`.
//!
//! The idea (from FlashAttention): keep only one `T×T` scratch per head being worked on, never the
//! `BH×T×T` attention tensor of the whole batch, and save just one number per query row, the
//! log-sum-exp `lse_i = log Σ_j exp(S_ij)`. Backward recomputes `P = exp(S − lse)` from `Q`, `K`
//! and `lse` instead of storing it: one extra `Q·Kᵀ` in exchange for `BH×T×T` memory.
//! The four products per head run as gemm calls (the fast CPU matmul); heads run in parallel, and
//! the row loops between them run in the AVX2 build (`fastmath::simd`), written so they vectorise.
//!
//! Backward, with `dY` given and `Dᵢ = Σ_d dYᵢ·Yᵢ` (= Σ_j Pᵢⱼ dPᵢⱼ):
//! `dV = Pᵀ·dY`, `dP = dY·Vᵀ`, `dS = P ⊙ (dP − D)`, `dQ = dS·K·scale`, `dK = dSᵀ·Q·scale`.

use super::fastmath::{dot, max, simd, sum};
use super::float::Float;
use super::matmul::Layout;
use rayon::prelude::*;

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
            let mut s = vec![T::ZERO; t * t];
            T::gemm(
                t,
                d,
                t,
                &q[r.clone()],
                Layout::N,
                &k[r.clone()],
                Layout::T,
                &mut s,
                false,
            );
            simd(|| {
                for (i, (row, l)) in s.chunks_exact_mut(t).zip(lh.iter_mut()).enumerate() {
                    *l = softmax_prefix(&mut row[..=i], scale);
                    row[i + 1..].fill(T::ZERO);
                }
            });
            T::gemm(t, t, d, &s, Layout::N, &v[r], Layout::N, yh, false);
        });
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
            // P, recomputed from Q, K and the saved log-sum-exp.
            let mut p = vec![T::ZERO; t * t];
            T::gemm(t, d, t, qh, Layout::N, kh, Layout::T, &mut p, false);
            simd(|| {
                for (i, (row, &l)) in p.chunks_exact_mut(t).zip(lh).enumerate() {
                    for x in row[..=i].iter_mut() {
                        *x = (*x * scale - l).exp();
                    }
                    row[i + 1..].fill(T::ZERO);
                }
            });
            // dV = Pᵀ·dY
            T::gemm(t, t, d, &p, Layout::T, dyh, Layout::N, dvh, false);
            // dP = dY·Vᵀ, then dS = P ⊙ (dP − D) · scale, in place.
            let mut ds = vec![T::ZERO; t * t];
            T::gemm(t, d, t, dyh, Layout::N, vh, Layout::T, &mut ds, false);
            simd(|| {
                for (i, (pr, dr)) in p.chunks_exact(t).zip(ds.chunks_exact_mut(t)).enumerate() {
                    let di = dot(&dyh[i * d..(i + 1) * d], &yh[i * d..(i + 1) * d]);
                    for (x, &pj) in dr[..=i].iter_mut().zip(&pr[..=i]) {
                        *x = pj * (*x - di) * scale;
                    }
                    dr[i + 1..].fill(T::ZERO);
                }
            });
            // dQ = dS·K, dK = dSᵀ·Q
            T::gemm(t, t, d, &ds, Layout::N, kh, Layout::N, dqh, false);
            T::gemm(t, t, d, &ds, Layout::T, qh, Layout::N, dkh, false);
        });
}
