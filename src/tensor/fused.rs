//! Fused ops a training step spends its time in, as tensor ops with a CPU and a CUDA arm:
//! the LM head with its loss, and the AdamW update. (Attention is in `attention.rs`, LayerNorm
//! in `ops.rs`.)

use super::autograd::{is_grad_enabled, record};
use super::backend::{self, AdamwHyper, AdamwState, Targets};
use super::tensor::Tensor;

impl Tensor {
    /// The LM head and its loss in one op: the mean cross-entropy of the logits `self·wᵀ`
    /// against `targets`, for `self` `[N, C]` and the token embedding `w` `[V, C]`. The `[N, V]`
    /// logits never reach the graph: the CPU computes the loss and both gradients chunk by
    /// chunk in the forward pass; the GPU keeps the logits and overwrites them with their
    /// gradient in the backward pass. The loss is f32 whatever the dtype of `self`.
    pub fn classifier_loss(&self, w: &Tensor, targets: &[u32]) -> Tensor {
        let want_grad = is_grad_enabled() && (self.requires_grad() || w.requires_grad());
        let t = Targets {
            ids: targets,
            ignore: None,
        };
        let (loss, saved) = backend::classifier(self, w, t, want_grad);
        if !want_grad {
            return loss;
        }
        let (x, wd, ids) = (self.detach(), w.detach(), targets.to_vec());
        record(loss, "classifier", &[self, w], move |g| {
            let t = Targets {
                ids: &ids,
                ignore: None,
            };
            let (dx, dw) = backend::classifier_backward(saved, &x, &wd, t, g);
            vec![Some(dx), Some(dw)]
        })
    }

    /// One AdamW step on this parameter, in place and not recorded: its gradient `grad`, its
    /// moments `m` and `v` (f32), and its f32 `master` copy when the parameter itself is kept in
    /// bf16 (the step updates the master and rounds it into the parameter).
    pub fn adamw_(
        &self,
        grad: &Tensor,
        moments: [&Tensor; 2],
        master: Option<&Tensor>,
        h: &AdamwHyper,
    ) {
        let [m, v] = moments;
        backend::adamw(
            AdamwState {
                param: self,
                grad,
                m,
                v,
                master,
            },
            h,
        )
    }
}
