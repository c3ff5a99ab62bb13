//! Gradient checking: the analytic gradient from the tape against central finite differences,
//! both in `f64`.
//!
//! For a function `f` of some input tensors, [`gradcheck`] reduces the output to a scalar with
//! fixed random weights `r` (`L = Σ f(x)⊙r`, so every output element matters), runs backward,
//! then nudges each input element by `±eps` and compares
//! `(L(x + eps) − L(x − eps)) / 2eps` with the tape's gradient. An element passes when
//! `|analytic − numeric| ≤ tol · (1 + |numeric|)`. With `eps = 1e-6` in `f64` the truncation
//! error is about `eps²·|f'''|` ≈ 1e-12 and the rounding error about `1e-16·|L|/eps` ≈ 1e-9, so
//! the tests use `tol = 1e-6` (see [`EPS`], [`TOL`]).
//!
//! [`f32_vs_f64`] runs the same graph in `f32` and `f64` and reports the largest gradient
//! difference relative to the input's largest gradient: it catches kernels that are right in
//! exact arithmetic but lose precision in `f32`.

use super::autograd::no_grad;
use super::rng::Rng;
use super::storage::DType;
use super::tensor::Tensor;

/// Finite-difference step used by the tests.
pub const EPS: f64 = 1e-6;
/// Tolerance used by the tests: `|analytic − numeric| ≤ TOL·(1 + |numeric|)`.
pub const TOL: f64 = 1e-6;

/// Fresh `f64` leaves holding copies of `inputs`.
fn leaves(inputs: &[Tensor], dtype: DType) -> Vec<Tensor> {
    inputs
        .iter()
        .map(|t| {
            let c = match dtype {
                DType::F64 => Tensor::from_vec_f64(t.to_vec_f64(), t.shape()),
                _ => Tensor::from_vec(t.to_vec(), t.shape()).to_dtype(dtype),
            };
            c.requires_grad_()
        })
        .collect()
}

/// Fixed random weights of `shape` used to reduce an output to a scalar.
fn weights(shape: &[usize], dtype: DType) -> Tensor {
    let mut rng = Rng::new(0x9e37);
    let r = Tensor::randn(shape, 0.0, 1.0, &mut rng);
    r.to_dtype(dtype)
}

fn scalar_loss(y: &Tensor) -> Tensor {
    let r = weights(y.shape(), y.dtype());
    y.mul(&r).sum_all()
}

/// Analytic gradients of `Σ f(inputs)⊙r` for every input, computed in `dtype`.
pub fn analytic_grads(
    f: &dyn Fn(&[Tensor]) -> Tensor,
    inputs: &[Tensor],
    dtype: DType,
) -> Vec<Vec<f64>> {
    let xs = leaves(inputs, dtype);
    scalar_loss(&f(&xs)).backward();
    xs.iter()
        .map(|x| match x.grad() {
            Some(g) => g.to_vec_f64(),
            None => vec![0.0; x.numel()],
        })
        .collect()
}

/// The largest scaled error `|analytic − numeric| / (1 + |numeric|)` over every element of every
/// input, or an error naming the first element that exceeds `tol`.
pub fn gradcheck(
    f: &dyn Fn(&[Tensor]) -> Tensor,
    inputs: &[Tensor],
    eps: f64,
    tol: f64,
) -> Result<f64, String> {
    let analytic = analytic_grads(f, inputs, DType::F64);
    let xs = leaves(inputs, DType::F64);
    let loss = |xs: &[Tensor]| no_grad(|| scalar_loss(&f(xs)).item_f64());
    let mut worst: f64 = 0.0;
    for (i, x) in xs.iter().enumerate() {
        for j in 0..x.numel() {
            let orig = x.with_data_mut(|d: &mut [f64]| {
                let o = d[j];
                d[j] = o + eps;
                o
            });
            let up = loss(&xs);
            x.with_data_mut(|d: &mut [f64]| d[j] = orig - eps);
            let down = loss(&xs);
            x.with_data_mut(|d: &mut [f64]| d[j] = orig);
            let numeric = (up - down) / (2.0 * eps);
            let err = (analytic[i][j] - numeric).abs() / (1.0 + numeric.abs());
            if err > tol || !err.is_finite() {
                return Err(format!(
                    "input {i} {:?} element {j}: analytic {} vs numeric {numeric} (scaled error {err:.3e} > {tol:.0e})",
                    x.shape(),
                    analytic[i][j]
                ));
            }
            worst = worst.max(err);
        }
    }
    Ok(worst)
}

/// Runs `f` in `f32` and `f64` and returns the largest `|g32 − g64| / (1 + max|g64|)` over the
/// inputs (each input scaled by its own largest gradient).
pub fn f32_vs_f64(f: &dyn Fn(&[Tensor]) -> Tensor, inputs: &[Tensor]) -> f64 {
    let g64 = analytic_grads(f, inputs, DType::F64);
    let g32 = analytic_grads(f, inputs, DType::F32);
    let mut worst: f64 = 0.0;
    for (a, b) in g32.iter().zip(&g64) {
        let scale = 1.0 + b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (x, y) in a.iter().zip(b) {
            worst = worst.max((x - y).abs() / scale);
        }
    }
    worst
}
