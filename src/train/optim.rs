//! AdamW: Adam's per-parameter step sizes with decoupled weight decay (Loshchilov & Hutter 2019).
//!
//! For each parameter `p` with gradient `g`, at step `t` (from 1):
//! ```text
//! p ← p − lr·wd·p                       (decay, not through the gradient: "decoupled")
//! m ← β1·m + (1−β1)·g                   (running mean of gradients)
//! v ← β2·v + (1−β2)·g²                  (running mean of squared gradients)
//! p ← p − lr · (m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + ε)
//! ```
//! This is exactly PyTorch's `torch.optim.AdamW`, which the reference fixtures use.

use crate::tensor::{Tensor, no_grad};

/// AdamW's hyper-parameters (the learning rate comes from the schedule each step).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Applied only to parameters the caller marks as decayed (2-D weights and embeddings).
    pub weight_decay: f32,
}

impl Default for AdamWConfig {
    /// GPT-2/nanoGPT settings: β = (0.9, 0.95), ε = 1e-8, weight decay 0.1.
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
        }
    }
}

/// One AdamW step over one parameter tensor, in place. `step` counts from 1.
/// `decay` says whether this tensor gets weight decay; each gradient is first multiplied by
/// `grad_scale` (the clipping factor).
#[allow(clippy::too_many_arguments)]
pub fn adamw_step(
    cfg: &AdamWConfig,
    param: &mut [f32],
    grad: &[f32],
    grad_scale: f32,
    m: &mut [f32],
    v: &mut [f32],
    lr: f32,
    step: u64,
    decay: bool,
) {
    let h = crate::tensor::cpu::adamw::Hyper {
        lr,
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        eps: cfg.eps,
        weight_decay: if decay { cfg.weight_decay } else { 0.0 },
        grad_scale,
        step,
    };
    crate::tensor::cpu::adamw::adamw(&h, param, grad, m, v)
}

/// AdamW over a model's parameters: the moments of each, and the step count.
pub struct AdamW {
    pub cfg: AdamWConfig,
    /// Optimizer steps taken so far.
    pub step: u64,
    /// First and second moments, one pair per parameter, in parameter order.
    pub m: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
}

impl AdamW {
    /// Zeroed moments for parameters of these sizes.
    pub fn new(cfg: AdamWConfig, sizes: &[usize]) -> AdamW {
        AdamW {
            cfg,
            step: 0,
            m: sizes.iter().map(|&n| vec![0.0; n]).collect(),
            v: sizes.iter().map(|&n| vec![0.0; n]).collect(),
        }
    }

    /// Clip the gradients to a global norm of `grad_clip` (0 = off), then update every parameter
    /// in place. 2-D tensors (weights and embeddings) get weight decay; 1-D ones (biases and
    /// LayerNorm) do not, as in nanoGPT. Returns the gradient norm before clipping.
    pub fn update(&mut self, params: &[&Tensor], lr: f32, grad_clip: f32) -> f32 {
        assert_eq!(params.len(), self.m.len(), "AdamW::update: parameter count");
        // The gradients are read in place (no copy of 124M floats for GPT-2 small).
        let grads: Vec<Option<Tensor>> = params.iter().map(|p| p.grad()).collect();
        let sum_sq: f64 = grads
            .iter()
            .flatten()
            .map(|g| g.with_slice(|s: &[f32]| crate::tensor::cpu::adamw::sum_of_squares(&[s])))
            .sum();
        let norm = sum_sq.sqrt() as f32;
        let scale = clip_factor(norm, grad_clip);
        self.step += 1;
        let step = self.step;
        no_grad(|| {
            for (i, p) in params.iter().enumerate() {
                let decay = p.ndim() == 2;
                let (m, v) = (&mut self.m[i], &mut self.v[i]);
                let mut update = |g: &[f32]| {
                    p.with_data_mut(|d: &mut [f32]| {
                        adamw_step(&self.cfg, d, g, scale, m, v, lr, step, decay)
                    })
                };
                match &grads[i] {
                    Some(g) => g.with_slice(|s: &[f32]| update(s)),
                    None => update(&vec![0.0; p.numel()]),
                }
            }
        });
        norm
    }
}

/// Scale factor that brings the global L2 norm of all gradients down to `max_norm`
/// (1.0 when the norm is already below it, or when clipping is off with `max_norm <= 0`).
/// Returns `(norm, scale)`.
pub fn clip_scale(grads: &[&[f32]], max_norm: f32) -> (f32, f32) {
    let sum_sq = crate::tensor::cpu::adamw::sum_of_squares(grads);
    let norm = sum_sq.sqrt() as f32;
    (norm, clip_factor(norm, max_norm))
}

/// The factor that brings a gradient norm of `norm` down to `max_norm`: 1.0 when it is already
/// below, or when clipping is off (`max_norm <= 0`). The GPU trainer uses it too.
pub fn clip_factor(norm: f32, max_norm: f32) -> f32 {
    if max_norm > 0.0 && norm > max_norm {
        // PyTorch's clip_grad_norm_ adds 1e-6 to the norm the same way.
        max_norm / (norm + 1e-6)
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AdamW written in f64 straight from the formula, for comparison.
    fn reference(p: &mut [f64], gs: &[Vec<f64>], lr: f64, wd: f64) {
        let (b1, b2, eps) = (0.9f64, 0.95f64, 1e-8f64);
        let mut m = vec![0.0; p.len()];
        let mut v = vec![0.0; p.len()];
        for (t, g) in gs.iter().enumerate() {
            let t = (t + 1) as i32;
            for i in 0..p.len() {
                p[i] -= lr * wd * p[i];
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                let mh = m[i] / (1.0 - b1.powi(t));
                let vh = v[i] / (1.0 - b2.powi(t));
                p[i] -= lr * mh / (vh.sqrt() + eps);
            }
        }
    }

    #[test]
    fn matches_the_formula_over_several_steps() {
        let n = 37;
        let mut seed = 12345u64;
        let mut rnd = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as f64 / (1u64 << 31) as f64) - 0.5
        };
        let p0: Vec<f64> = (0..n).map(|_| rnd()).collect();
        let gs: Vec<Vec<f64>> = (0..5).map(|_| (0..n).map(|_| rnd()).collect()).collect();
        for decay in [false, true] {
            let cfg = AdamWConfig::default();
            let mut p: Vec<f32> = p0.iter().map(|&x| x as f32).collect();
            let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
            for (t, g) in gs.iter().enumerate() {
                let g: Vec<f32> = g.iter().map(|&x| x as f32).collect();
                adamw_step(
                    &cfg,
                    &mut p,
                    &g,
                    1.0,
                    &mut m,
                    &mut v,
                    1e-2,
                    t as u64 + 1,
                    decay,
                );
            }
            let mut want = p0.clone();
            reference(&mut want, &gs, 1e-2, if decay { 0.1 } else { 0.0 });
            for i in 0..n {
                // f32 arithmetic against f64: 1e-6 absolute on values of order 1.
                assert!(
                    (p[i] as f64 - want[i]).abs() < 1e-6,
                    "i={i}: {} vs {}",
                    p[i],
                    want[i]
                );
            }
        }
    }

    #[test]
    fn clipping_scales_to_the_max_norm() {
        let a = [3.0f32, 0.0];
        let b = [4.0f32];
        let (norm, scale) = clip_scale(&[&a, &b], 1.0);
        assert!((norm - 5.0).abs() < 1e-6);
        assert!((scale * norm - 1.0).abs() < 1e-5);
        assert_eq!(clip_scale(&[&a, &b], 10.0).1, 1.0);
        assert_eq!(clip_scale(&[&a, &b], 0.0).1, 1.0, "0 turns clipping off");
    }
}
