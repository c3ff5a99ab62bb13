//! The fused causal-attention op against attention composed from basic ops: forward values,
//! gradients by finite differences in f64, and f32 against f64.

use pretrain::tensor::gradcheck::{EPS, TOL, f32_vs_f64, gradcheck};
use pretrain::tensor::{Rng, Tensor};

fn composed(q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
    let scale = 1.0 / (q.shape()[2] as f64).sqrt();
    q.matmul(&k.t())
        .mul_scalar(scale)
        .causal_mask(f64::NEG_INFINITY)
        .softmax()
        .matmul(v)
}

fn qkv(bh: usize, t: usize, d: usize, seed: u64) -> Vec<Tensor> {
    let mut rng = Rng::new(seed);
    (0..3)
        .map(|_| Tensor::randn(&[bh, t, d], 0.0, 1.0, &mut rng))
        .collect()
}

#[test]
fn fused_matches_composed_forward() {
    // Odd sizes, T = 1, and a long-ish sequence.
    for (i, &(bh, t, d)) in [(1, 1, 4), (3, 7, 5), (2, 33, 16), (4, 64, 8)]
        .iter()
        .enumerate()
    {
        let x = qkv(bh, t, d, 100 + i as u64);
        let fused = Tensor::causal_attention(&x[0], &x[1], &x[2]).to_vec();
        let want = composed(&x[0], &x[1], &x[2]).to_vec();
        assert_eq!(fused.len(), want.len(), "bh={bh} t={t} d={d}: lengths");
        for (a, b) in fused.iter().zip(&want) {
            // f32 with different summation orders: 1e-5 relative to values of order 1.
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "bh={bh} t={t} d={d}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn fused_gradients_match_finite_differences() {
    let f = |x: &[Tensor]| Tensor::causal_attention(&x[0], &x[1], &x[2]);
    for (i, &(bh, t, d)) in [(1, 1, 3), (2, 5, 3), (3, 9, 4)].iter().enumerate() {
        let x = qkv(bh, t, d, 7 + i as u64);
        let worst = gradcheck(&f, &x, EPS, TOL).unwrap_or_else(|e| panic!("bh={bh} t={t}: {e}"));
        assert!(worst <= TOL);
        let drift = f32_vs_f64(&f, &x);
        // f32 backward against f64: 1e-5 of the largest gradient.
        assert!(drift < 1e-5, "f32 vs f64 drift {drift:e}");
    }
}

#[test]
fn fused_gradients_match_composed_gradients_on_views() {
    // Inputs that arrive as non-contiguous views (as they do inside the model).
    let mut rng = Rng::new(3);
    let base = Tensor::randn(&[2, 6, 3, 4], 0.0, 1.0, &mut rng).requires_grad_();
    let grads = |fused: bool| {
        base.zero_grad();
        let p = base.permute(&[2, 0, 1, 3]); // [3, 2, 6, 4]
        let parts = p.chunk(3, 0);
        let (q, k, v) = (
            parts[0].reshape(&[2, 6, 4]),
            parts[1].reshape(&[2, 6, 4]),
            parts[2].reshape(&[2, 6, 4]),
        );
        let y = if fused {
            Tensor::causal_attention(&q, &k, &v)
        } else {
            composed(&q, &k, &v)
        };
        y.mul(&y).sum_all().backward();
        base.grad().unwrap().to_vec()
    };
    let (a, b) = (grads(true), grads(false));
    assert_eq!(a.len(), b.len(), "gradient lengths");
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{x} vs {y}");
    }
}
