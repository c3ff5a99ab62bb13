//! The fused classifier op (CPU): `mean cross-entropy(x·wᵀ, targets)` as one recorded op.
//!
//! `crate::tensor::cpu::classifier` computes the loss and, in the same pass, the gradients of the
//! mean loss with respect to `x` and `w` (chunk by chunk, never the whole `[rows, V]` logits).
//! They are kept on the tape, so backward only multiplies them by the upstream scalar. Same
//! result as `x.matmul(&w.t()).cross_entropy(targets)`, which the tests check.

use super::autograd::{is_grad_enabled, record};
use super::cpu::classifier::{Dims, classifier};
use super::profile;
use super::storage::{DType, Device};
use super::tensor::Tensor;

impl Tensor {
    /// Mean cross-entropy of the logits `self · wᵀ` against `targets`: `self` is `[rows, C]`
    /// (f32, CPU) and `w` is `[V, C]` (the tied token embedding).
    pub fn classifier_loss(&self, w: &Tensor, targets: &[u32]) -> Tensor {
        let (rows, c) = (self.shape()[0], self.shape()[1]);
        assert!(
            self.ndim() == 2 && w.ndim() == 2 && w.shape()[1] == c && targets.len() == rows,
            "classifier_loss: x {:?}, w {:?}, {} targets",
            self.shape(),
            w.shape(),
            targets.len()
        );
        assert!(
            self.dtype() == DType::F32 && self.device() == Device::Cpu,
            "classifier_loss: f32 on the CPU only"
        );
        let d = Dims {
            rows,
            c,
            v: w.shape()[0],
        };
        let want_grad = is_grad_enabled() && (self.requires_grad() || w.requires_grad());
        let out = profile::time("classifier", || {
            self.with_slice(|xs: &[f32]| {
                w.with_slice(|ws: &[f32]| classifier(xs, ws, targets, None, d, want_grad))
            })
        });
        let loss = Tensor::scalar((out.loss_sum / out.count.max(1) as f64) as f32);
        let Some((dx, dw)) = out.grads else {
            return loss;
        };
        let (dx, dw) = (
            Tensor::from_vec(dx, &[rows, c]),
            Tensor::from_vec(dw, w.shape()),
        );
        record(loss, "classifier", &[self, w], move |g| {
            let s = g.item_f64();
            let scale = |t: Tensor| if s == 1.0 { t } else { t.mul_scalar(s) };
            vec![Some(scale(dx)), Some(scale(dw))]
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::tensor::{Rng, Tensor};

    /// Loss and gradients of the fused op against matmul + cross_entropy, through backward with
    /// an upstream factor of 3 (so backward's scaling is exercised).
    #[test]
    fn same_as_matmul_then_cross_entropy() {
        let mut rng = Rng::new(3);
        let (rows, c, v) = (24, 32, 300);
        let x0 = Tensor::randn(&[rows, c], 0.0, 1.0, &mut rng);
        let w0 = Tensor::randn(&[v, c], 0.0, 0.3, &mut rng);
        let targets: Vec<u32> = (0..rows).map(|_| rng.below(v as u64) as u32).collect();
        let run = |fused: bool| {
            let (x, w) = (x0.detach().requires_grad_(), w0.detach().requires_grad_());
            let loss = if fused {
                x.classifier_loss(&w, &targets)
            } else {
                x.matmul(&w.t()).cross_entropy(&targets)
            };
            loss.mul_scalar(3.0).backward();
            (
                loss.item(),
                x.grad().unwrap().to_vec(),
                w.grad().unwrap().to_vec(),
            )
        };
        let (l1, dx1, dw1) = run(true);
        let (l2, dx2, dw2) = run(false);
        // f32 with sums in another order: 1e-5 relative on the loss, 1e-6 absolute on gradients
        // of order 3/rows.
        assert!((l1 - l2).abs() <= 1e-5 * l2.abs(), "loss {l1} vs {l2}");
        for (a, b) in dx1.iter().zip(&dx2).chain(dw1.iter().zip(&dw2)) {
            assert!((a - b).abs() <= 1e-6, "gradient {a} vs {b}");
        }
    }
}
