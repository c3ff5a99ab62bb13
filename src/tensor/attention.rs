//! The fused causal-attention op: `softmax(mask(Q·Kᵀ/√D))·V` as one recorded op, with a
//! backward that recomputes the attention weights instead of storing them (see
//! `crate::tensor::cpu::attention`). It gives the same result as composing matmul, `causal_mask` and
//! `softmax`, which the tests check, with far less memory and time.

use super::autograd::record;
use super::backend;
use super::tensor::Tensor;

impl Tensor {
    /// Causal self-attention of `q`, `k`, `v`, each `[BH, T, D]` (batch × heads first).
    pub fn causal_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
        let scale = 1.0 / (q.shape()[2] as f64).sqrt();
        let (y, lse) = backend::causal_attention(q, k, v, scale);
        let saved = (q.detach(), k.detach(), v.detach(), y.detach());
        record(y, "causal_attention", &[q, k, v], move |g| {
            let (q, k, v, y) = &saved;
            let (dq, dk, dv) = backend::causal_attention_backward(q, k, v, y, &lse, g, scale);
            vec![Some(dq), Some(dk), Some(dv)]
        })
    }
}
