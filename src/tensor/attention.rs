//! The fused causal-attention op: `softmax(mask(Q·Kᵀ/√D))·V` for every head as one recorded op,
//! with a backward that recomputes the attention weights instead of storing them (see
//! `crate::tensor::cpu::attention` and `kernels/attention.cu`). It gives the same result as
//! composing matmul, `causal_mask` and `softmax`, which the tests check, with far less memory
//! and time.

use super::autograd::record;
use super::backend::{self, AttentionSaved};
use super::tensor::Tensor;

impl Tensor {
    /// Causal self-attention straight from a linear layer's output: `self` is `qkv`
    /// `[B, T, 3C]` (queries, keys and values side by side, `n_head` heads of `C / n_head`
    /// columns in each); the result is `[B, T, C]` with the heads side by side again.
    pub fn causal_self_attention(&self, n_head: usize) -> Tensor {
        let (y, lse) = backend::causal_attention(self, n_head);
        let saved = (self.detach(), y.detach());
        record(y, "causal_attention", &[self], move |g| {
            let (qkv, y) = &saved;
            let s = AttentionSaved { qkv, y, lse: &lse };
            vec![Some(backend::causal_attention_backward(s, g, n_head))]
        })
    }

    /// Causal self-attention of `q`, `k`, `v`, each `[BH, T, D]` (batch × heads first): the
    /// fused op with one head per row of the batch.
    pub fn causal_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
        let qkv = Tensor::cat(&[q, k, v], -1);
        qkv.causal_self_attention(1)
    }
}
