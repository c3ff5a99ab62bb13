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

use crate::tensor::{AdamwHyper, DType, Tensor, backend};
use std::ops::Range;

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

/// The optimizer's state for one parameter, on the parameter's device: the two moments (f32),
/// and an f32 master copy when the parameter itself is kept in lower precision (bf16). The
/// master is what AdamW updates and what checkpoints save; the parameter is its rounding.
pub struct ParamState {
    pub m: Tensor,
    pub v: Tensor,
    pub master: Option<Tensor>,
}

/// AdamW over a model's parameters: the state of each, and the step count.
///
/// Sharded (ZeRO, see `train::dist::zero`), it keeps state for and updates only the parameters
/// `owned` (a range of parameter indices); the other ranks own the rest.
pub struct AdamW {
    pub cfg: AdamWConfig,
    /// Optimizer steps taken so far.
    pub step: u64,
    /// One per owned parameter, in parameter order: `state[0]` is parameter `owned.start`'s.
    pub state: Vec<ParamState>,
    /// The parameters this optimizer updates: all of them unless sharded.
    pub owned: Range<usize>,
}

impl AdamW {
    /// Zero moments for `params`; `values` holds each parameter's value in f32 (the source of
    /// the master copies of parameters kept in bf16; it may be `params` itself when they are
    /// f32).
    pub fn new(cfg: AdamWConfig, params: &[&Tensor], values: &[&Tensor]) -> AdamW {
        Self::new_sharded(cfg, params, values, 0..params.len())
    }

    /// [`AdamW::new`] with state for the parameters `owned` only (ZeRO's sharded optimizer).
    pub fn new_sharded(
        cfg: AdamWConfig,
        params: &[&Tensor],
        values: &[&Tensor],
        owned: Range<usize>,
    ) -> AdamW {
        assert_eq!(params.len(), values.len(), "AdamW::new: parameter count");
        assert!(owned.end <= params.len(), "AdamW::new: owned {owned:?}");
        let state = params[owned.clone()]
            .iter()
            .zip(&values[owned.clone()])
            .map(|(p, v)| {
                let zeros = || backend::full(p.shape(), 0.0, DType::F32, p.device());
                let master = (p.dtype() != DType::F32)
                    .then(|| backend::cast(&v.detach().to(p.device()), DType::F32));
                ParamState {
                    m: zeros(),
                    v: zeros(),
                    master,
                }
            })
            .collect();
        AdamW {
            cfg,
            step: 0,
            state,
            owned,
        }
    }

    /// The global L2 norm of the gradients of `params` (missing gradients count as zero),
    /// summed on the parameters' device and read back once.
    pub fn grad_norm(params: &[&Tensor]) -> f32 {
        fold_norm(
            params
                .iter()
                .filter_map(|p| p.grad())
                .map(|g| backend::sum_squares(&g)),
        )
    }

    /// Clip the gradients to a global norm of `grad_clip` (0 = off), then update every parameter
    /// in place. 2-D tensors (weights and embeddings) get weight decay; 1-D ones (biases and
    /// LayerNorm) do not, as in nanoGPT. Returns the gradient norm before clipping.
    pub fn update(&mut self, params: &[&Tensor], lr: f32, grad_clip: f32) -> f32 {
        let norm = Self::grad_norm(params);
        self.apply(params, lr, norm, grad_clip);
        norm
    }

    /// [`AdamW::update`] of the owned parameters, given the global gradient norm `norm` (which
    /// a sharded optimizer cannot compute alone).
    pub fn apply(&mut self, params: &[&Tensor], lr: f32, norm: f32, grad_clip: f32) {
        assert!(
            self.owned.end <= params.len() && self.owned.len() == self.state.len(),
            "AdamW::update: parameter count"
        );
        self.apply_selected(params, lr, clip_factor(norm, grad_clip), &|_| true);
    }

    /// One AdamW step with the gradients scaled by `grad_scale`, for the owned parameters (by
    /// index) that `mine` selects; the others keep their values and moments (a pipeline stage
    /// updates only its own).
    pub fn apply_selected(
        &mut self,
        params: &[&Tensor],
        lr: f32,
        grad_scale: f32,
        mine: &dyn Fn(usize) -> bool,
    ) {
        self.step += 1;
        let owned = self.owned.clone();
        for (i, s) in owned.zip(&self.state).filter(|(i, _)| mine(*i)) {
            let p = params[i];
            let grad = p
                .grad()
                .unwrap_or_else(|| backend::full(p.shape(), 0.0, p.dtype(), p.device()));
            let decay = p.ndim() == 2;
            let h = AdamwHyper {
                lr,
                beta1: self.cfg.beta1,
                beta2: self.cfg.beta2,
                eps: self.cfg.eps,
                weight_decay: if decay { self.cfg.weight_decay } else { 0.0 },
                grad_scale,
                step: self.step,
            };
            p.adamw_(&grad, [&s.m, &s.v], s.master.as_ref(), &h);
        }
    }

    /// True when every parameter (its f32 master copy where it has one) is finite. `Σ (0·w)²`
    /// is 0 for finite weights and NaN as soon as one weight is NaN or infinite (0·∞ = NaN):
    /// exact, where a sum of squares would also overflow for finite weights above 1e19.
    /// Computed on the parameters' device and read back once; checked before every save.
    pub fn weights_finite(&self, params: &[&Tensor]) -> bool {
        let zeros = params[self.owned.clone()]
            .iter()
            .zip(&self.state)
            .map(|(p, s)| {
                let w = s.master.as_ref().unwrap_or(p);
                backend::sum_squares(&backend::unary(backend::Unary::MulScalar(0.0), w))
            })
            .reduce(|a, b| backend::binary(backend::Binary::Add, &a, &b));
        zeros.is_none_or(|z| z.item_f64() == 0.0)
    }

    /// Parameter `i`'s value in f32 on the host: its master copy when it has one. For a
    /// parameter another rank owns (ZeRO), the parameter's own value: good for a sample, not
    /// for a checkpoint, which gathers the owners' copies instead.
    pub fn full_precision(&self, i: usize, param: &Tensor) -> Vec<f32> {
        let master = self
            .owned
            .contains(&i)
            .then(|| self.state[i - self.owned.start].master.as_ref())
            .flatten();
        master.unwrap_or(param).to_vec()
    }
}

/// The global gradient norm from the per-tensor sums of squares (scalars on the parameters'
/// device), added in parameter order on that device: `√(s₀ + s₁ + …)`, 0 when there are none.
/// [`AdamW::grad_norm`] and ZeRO's sharded norm both end here, so they agree to the bit.
pub fn fold_norm(squares: impl Iterator<Item = Tensor>) -> f32 {
    squares
        .reduce(|a, b| backend::binary(backend::Binary::Add, &a, &b))
        .map_or(0.0, |s| s.item_f64().sqrt() as f32)
}

/// Scale factor that brings the global L2 norm of all gradients down to `max_norm`
/// (1.0 when the norm is already below it, or when clipping is off with `max_norm <= 0`).
/// Returns `(norm, scale)`.
pub fn clip_scale(grads: &[&[f32]], max_norm: f32) -> (f32, f32) {
    let sum_sq: f64 = grads
        .iter()
        .flat_map(|g| g.iter())
        .map(|&x| (x as f64) * (x as f64))
        .sum();
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
                let h = AdamwHyper {
                    lr: 1e-2,
                    beta1: cfg.beta1,
                    beta2: cfg.beta2,
                    eps: cfg.eps,
                    weight_decay: if decay { cfg.weight_decay } else { 0.0 },
                    grad_scale: 1.0,
                    step: t as u64 + 1,
                };
                let param = Tensor::from_vec(p.clone(), &[n]);
                let (mt, vt) = (
                    Tensor::from_vec(m.clone(), &[n]),
                    Tensor::from_vec(v.clone(), &[n]),
                );
                param.adamw_(&Tensor::from_vec(g, &[n]), [&mt, &vt], None, &h);
                (p, m, v) = (param.to_vec(), mt.to_vec(), vt.to_vec());
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
