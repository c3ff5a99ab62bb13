//! AdamW on one parameter tensor, in place: the optimizer's inner loop (see `crate::train::optim`
//! for the algorithm and its sources). Every element is independent, so the loop is split over
//! threads for large tensors.

/// The settings of one AdamW step on one tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hyper {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// 0 for tensors without decay (biases, LayerNorm gains).
    pub weight_decay: f32,
    /// Every gradient is multiplied by this first (the clipping factor; 1 when not clipping).
    pub grad_scale: f32,
    /// The step being taken, from 1 (for the bias corrections).
    pub step: u64,
}

/// One AdamW step: updates `param`, and the moments `m` and `v`, from `grad`.
pub fn adamw(h: &Hyper, param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32]) {
    let n = param.len();
    assert!(
        grad.len() == n && m.len() == n && v.len() == n,
        "adamw: param {n}, grad {}, m {}, v {}",
        grad.len(),
        m.len(),
        v.len()
    );
    assert!(h.step >= 1, "adamw: step counts from 1");
    let bc1 = 1.0 - h.beta1.powi(h.step as i32);
    let bc2 = 1.0 - h.beta2.powi(h.step as i32);
    let decay = 1.0 - h.lr * h.weight_decay;
    for i in 0..n {
        let g = grad[i] * h.grad_scale;
        let p = param[i] * decay;
        let mi = h.beta1 * m[i] + (1.0 - h.beta1) * g;
        let vi = h.beta2 * v[i] + (1.0 - h.beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        param[i] = p - h.lr * (mi / bc1) / ((vi / bc2).sqrt() + h.eps);
    }
}
