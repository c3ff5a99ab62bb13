//! AdamW on one parameter tensor, in place: the optimizer's inner loop (see `crate::train::optim`
//! for the algorithm and its sources), and the squared gradient norm that clipping needs.
//!
//! Every element is independent and the loop does a dozen flops per 28 bytes it reads and writes
//! (param, grad, m, v in; param, m, v out), so it is bound by memory bandwidth. Two things keep
//! it there rather than below: the tensor is cut into blocks that rayon spreads over the cores
//! (one core cannot draw all of the memory bandwidth), and each block runs in the AVX2 build of
//! the loop (`fastmath::simd`), written over zipped slices so the compiler sees no bounds checks
//! and vectorises the divisions and square roots. The arithmetic per element is unchanged (f32,
//! the same operations in the same order), so the result does not depend on threads or SIMD.

use super::elementwise::PAR_GRAIN;
use super::fastmath::simd;
use rayon::prelude::*;

/// Elements per parallel task (a few hundred KiB of each of the four arrays).
const BLOCK: usize = 4 * PAR_GRAIN;

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
    if n <= BLOCK {
        return simd(|| adamw_block(h, param, grad, m, v));
    }
    param
        .par_chunks_mut(BLOCK)
        .zip(grad.par_chunks(BLOCK))
        .zip(m.par_chunks_mut(BLOCK))
        .zip(v.par_chunks_mut(BLOCK))
        .for_each(|(((p, g), m), v)| simd(|| adamw_block(h, p, g, m, v)));
}

/// The loop over one block (equal lengths, checked by the caller).
#[inline(always)]
fn adamw_block(h: &Hyper, param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32]) {
    let bc1 = 1.0 - h.beta1.powi(h.step as i32);
    let bc2 = 1.0 - h.beta2.powi(h.step as i32);
    let decay = 1.0 - h.lr * h.weight_decay;
    for (((p, &g), m), v) in param
        .iter_mut()
        .zip(grad)
        .zip(m.iter_mut())
        .zip(v.iter_mut())
    {
        let g = g * h.grad_scale;
        let pd = *p * decay;
        let mi = h.beta1 * *m + (1.0 - h.beta1) * g;
        let vi = h.beta2 * *v + (1.0 - h.beta2) * g * g;
        *m = mi;
        *v = vi;
        *p = pd - h.lr * (mi / bc1) / ((vi / bc2).sqrt() + h.eps);
    }
}

/// `Σ g²` over every gradient, in f64 (for clipping to a global norm). Blocks are summed in
/// parallel and their partial sums added in order, so the result does not depend on threads.
pub fn sum_of_squares(grads: &[&[f32]]) -> f64 {
    grads
        .iter()
        .map(|g| {
            g.par_chunks(BLOCK)
                .map(|b| simd(|| sum_sq_block(b)))
                .collect::<Vec<f64>>()
                .into_iter()
                .sum::<f64>()
        })
        .sum()
}

/// Σ x² of one block: f32 squares summed in f64, eight lanes at a time so it vectorises.
#[inline(always)]
fn sum_sq_block(b: &[f32]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = b.chunks_exact(8);
    let rest: f64 = chunks
        .remainder()
        .iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum();
    for c in chunks {
        for i in 0..8 {
            acc[i] += (c[i] as f64) * (c[i] as f64);
        }
    }
    acc.iter().sum::<f64>() + rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_threads_give_the_serial_result() {
        let n = 3 * BLOCK + 123;
        let f = |i: usize, s: f32| ((i * 2654435761) % 1000) as f32 * s - 0.5 * 1000.0 * s;
        let h = Hyper {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
            grad_scale: 0.7,
            step: 3,
        };
        let grad: Vec<f32> = (0..n).map(|i| f(i, 1e-4)).collect();
        let init = |s| (0..n).map(|i| f(i + 7, s)).collect::<Vec<f32>>();
        let (mut p, mut m, mut v) = (
            init(1e-3),
            init(1e-5),
            init(1e-9).iter().map(|x| x.abs()).collect(),
        );
        let (mut p2, mut m2, mut v2) = (p.clone(), m.clone(), Vec::clone(&v));
        adamw(&h, &mut p, &grad, &mut m, &mut v);
        // The same formula element by element, written out plainly.
        let (bc1, bc2) = (1.0 - 0.9f32.powi(3), 1.0 - 0.95f32.powi(3));
        for i in 0..n {
            let g = grad[i] * 0.7;
            let pd = p2[i] * (1.0 - 1e-3 * 0.1);
            m2[i] = 0.9 * m2[i] + (1.0 - 0.9) * g;
            v2[i] = 0.95 * v2[i] + (1.0 - 0.95) * g * g;
            p2[i] = pd - 1e-3 * (m2[i] / bc1) / ((v2[i] / bc2).sqrt() + 1e-8);
        }
        assert!(
            p == p2 && m == m2 && v == v2,
            "bit-identical to the plain loop"
        );

        let plain: f64 = grad.iter().map(|&x| (x as f64) * (x as f64)).sum();
        let s = sum_of_squares(&[&grad, &grad[..5]]);
        let want = plain
            + grad[..5]
                .iter()
                .map(|&x| (x as f64) * (x as f64))
                .sum::<f64>();
        assert!((s - want).abs() <= 1e-12 * want, "{s} vs {want}");
    }
}
