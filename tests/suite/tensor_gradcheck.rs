//! Every differentiable op's backward against central finite differences in f64
//! (`|analytic − numeric| ≤ 1e-6·(1 + |numeric|)`, eps = 1e-6: `gradcheck::EPS`, `gradcheck::TOL`),
//! on random odd shapes, with broadcasting and non-contiguous (transposed, narrowed) inputs.
//! Each case also runs in f32 and must match the f64 gradients within
//! `|g32 − g64| ≤ 1e-5·(1 + max|g64|)` (`F32_TOL`).

use pretrain::tensor::gradcheck::{EPS, TOL, f32_vs_f64, gradcheck};
use pretrain::tensor::{Rng, Tensor};

/// f32 gradients against f64 gradients, relative to the input's largest gradient.
const F32_TOL: f64 = 1e-5;

fn randn(shape: &[usize], rng: &mut Rng) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec_f64((0..n).map(|_| rng.normal()).collect(), shape)
}

/// Values in [lo, hi), for ops that need positive inputs.
fn unif(shape: &[usize], lo: f64, hi: f64, rng: &mut Rng) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec_f64(
        (0..n).map(|_| lo + (hi - lo) * rng.uniform()).collect(),
        shape,
    )
}

/// A random size in 1..=max (odd sizes come up often).
fn dim(rng: &mut Rng, max: u64) -> usize {
    1 + rng.below(max) as usize
}

fn check(name: &str, f: &dyn Fn(&[Tensor]) -> Tensor, inputs: &[Tensor]) {
    let shapes: Vec<_> = inputs.iter().map(|t| t.shape().to_vec()).collect();
    let err = gradcheck(f, inputs, EPS, TOL).unwrap_or_else(|e| panic!("{name} {shapes:?}: {e}"));
    let d = f32_vs_f64(f, inputs);
    eprintln!("{name:<28} {shapes:?} max scaled err {err:.2e}, f32 vs f64 {d:.2e}");
    assert!(
        d <= F32_TOL,
        "{name} {shapes:?}: f32 vs f64 gradient difference {d:.3e} > {F32_TOL:.0e}"
    );
}

#[test]
fn binary_ops_with_broadcasting() {
    let mut rng = Rng::new(1);
    for _ in 0..3 {
        let (a, b, c) = (dim(&mut rng, 4), dim(&mut rng, 5), dim(&mut rng, 6));
        let x = randn(&[a, 1, c], &mut rng);
        let y = randn(&[b, c], &mut rng);
        let pos = unif(&[b, c], 0.5, 2.0, &mut rng);
        check(
            "add (broadcast)",
            &|t| t[0].add(&t[1]),
            &[x.clone(), y.clone()],
        );
        check(
            "sub (broadcast)",
            &|t| t[0].sub(&t[1]),
            &[y.clone(), x.clone()],
        );
        check(
            "mul (broadcast)",
            &|t| t[0].mul(&t[1]),
            &[x.clone(), y.clone()],
        );
        check(
            "div (broadcast)",
            &|t| t[0].div(&t[1]),
            &[x.clone(), pos.clone()],
        );
        check(
            "mul (same tensor)",
            &|t| t[0].mul(&t[0]),
            std::slice::from_ref(&y),
        );
        // Non-contiguous operands: a transposed view and a narrowed view.
        let z = randn(&[c, b + 2], &mut rng);
        check(
            "add (transposed, narrowed)",
            &|t| t[0].narrow(1, 0, b).t().add(&t[1].narrow(1, 1, b).t()),
            &[z.clone(), z.clone()],
        );
        let s = randn(&[c], &mut rng);
        check(
            "mul (row broadcast, .t())",
            &|t| t[0].narrow(1, 2, b).t().mul(&t[1].reshape(&[1, c])),
            &[z, s],
        );
    }
}

#[test]
fn scalar_and_unary_ops() {
    let mut rng = Rng::new(2);
    let shape = [dim(&mut rng, 5), dim(&mut rng, 7)];
    let x = randn(&shape, &mut rng);
    let p = unif(&shape, 0.3, 2.0, &mut rng);
    check(
        "add_scalar",
        &|t| t[0].add_scalar(1.7),
        std::slice::from_ref(&x),
    );
    check(
        "mul_scalar",
        &|t| t[0].mul_scalar(-0.3),
        std::slice::from_ref(&x),
    );
    check(
        "operators",
        &|t| &(&(&t[0] * 2.0) - 1.0) / 3.0 + 0.5,
        std::slice::from_ref(&x),
    );
    check("neg", &|t| -&t[0], std::slice::from_ref(&x));
    check("exp", &|t| t[0].exp(), std::slice::from_ref(&x));
    check("log", &|t| t[0].log(), std::slice::from_ref(&p));
    check("sqrt", &|t| t[0].sqrt(), std::slice::from_ref(&p));
    check("tanh", &|t| t[0].tanh(), std::slice::from_ref(&x));
    check("powf 2.5", &|t| t[0].powf(2.5), std::slice::from_ref(&p));
    check(
        "powf 3 (negatives)",
        &|t| t[0].powf(3.0),
        std::slice::from_ref(&x),
    );
    check("gelu", &|t| t[0].gelu(), std::slice::from_ref(&x));
    check(
        "gelu (transposed)",
        &|t| t[0].t().gelu(),
        std::slice::from_ref(&x),
    );
    // relu: keep inputs away from the kink at 0.
    let away = x
        .to_vec_f64()
        .iter()
        .map(|v| if v.abs() < 0.1 { 0.5 } else { *v })
        .collect();
    check(
        "relu",
        &|t| t[0].relu(),
        &[Tensor::from_vec_f64(away, &shape)],
    );
}

#[test]
fn reductions() {
    let mut rng = Rng::new(3);
    let shape = [dim(&mut rng, 4), dim(&mut rng, 5) + 1, dim(&mut rng, 6)];
    let x = randn(&shape, &mut rng);
    for axis in [0isize, 1, -1] {
        for keep in [true, false] {
            check(
                &format!("sum axis {axis} keep {keep}"),
                &|t| t[0].sum(axis, keep),
                std::slice::from_ref(&x),
            );
            check(
                &format!("mean axis {axis} keep {keep}"),
                &|t| t[0].mean(axis, keep),
                std::slice::from_ref(&x),
            );
            check(
                &format!("max axis {axis} keep {keep}"),
                &|t| t[0].max(axis, keep),
                std::slice::from_ref(&x),
            );
        }
    }
    check(
        "sum of permuted view",
        &|t| t[0].permute(&[2, 0, 1]).sum(1, false),
        std::slice::from_ref(&x),
    );
    check("sum_all", &|t| t[0].sum_all(), std::slice::from_ref(&x));
    check("mean_all", &|t| t[0].mean_all(), std::slice::from_ref(&x));
}

#[test]
fn matmul_2d_batched_broadcast_transposed() {
    let mut rng = Rng::new(4);
    for _ in 0..2 {
        let (b, m, k, n) = (
            dim(&mut rng, 3),
            dim(&mut rng, 6),
            dim(&mut rng, 7),
            dim(&mut rng, 5),
        );
        let a2 = randn(&[m, k], &mut rng);
        let b2 = randn(&[k, n], &mut rng);
        check(
            "matmul 2-d",
            &|t| t[0].matmul(&t[1]),
            &[a2.clone(), b2.clone()],
        );
        let at = randn(&[k, m], &mut rng);
        let bt = randn(&[n, k], &mut rng);
        check(
            "matmul Aᵀ·Bᵀ (views)",
            &|t| t[0].t().matmul(&t[1].t()),
            &[at.clone(), bt.clone()],
        );
        let a3 = randn(&[b, m, k], &mut rng);
        let b3 = randn(&[b, k, n], &mut rng);
        check(
            "matmul batched",
            &|t| t[0].matmul(&t[1]),
            &[a3.clone(), b3.clone()],
        );
        check(
            "matmul 3-d @ 2-d",
            &|t| t[0].matmul(&t[1]),
            &[a3.clone(), b2.clone()],
        );
        let a4 = randn(&[2, 1, m, k], &mut rng);
        let b4 = randn(&[b, k, n], &mut rng);
        check("matmul broadcast batch", &|t| t[0].matmul(&t[1]), &[a4, b4]);
        // A permuted (non-contiguous, not a plain transpose) operand is copied first.
        let p = randn(&[m, b, k], &mut rng);
        check(
            "matmul permuted operand",
            &|t| t[0].permute(&[1, 0, 2]).matmul(&t[1]),
            &[p, b3.clone()],
        );
        check(
            "matmul batched q·kᵀ",
            &|t| t[0].matmul(&t[1].t()),
            &[a3.clone(), a3],
        );
    }
}

#[test]
fn linear_with_bias() {
    let mut rng = Rng::new(41);
    let (b, t, i, o) = (
        dim(&mut rng, 3),
        dim(&mut rng, 4),
        dim(&mut rng, 6),
        dim(&mut rng, 5),
    );
    let x = randn(&[b, t, i], &mut rng);
    let w = randn(&[i, o], &mut rng);
    let wt = randn(&[o, i], &mut rng);
    let bias = randn(&[o], &mut rng);
    check(
        "linear 3-d + bias",
        &|p| p[0].linear(&p[1], Some(&p[2])),
        &[x.clone(), w.clone(), bias.clone()],
    );
    check(
        "linear no bias",
        &|p| p[0].linear(&p[1], None),
        &[x.clone(), w],
    );
    check(
        "linear wᵀ view (tied head)",
        &|p| p[0].linear(&p[1].t(), Some(&p[2])),
        &[x.clone(), wt.clone(), bias],
    );
    check(
        "matmul with wᵀ view",
        &|p| p[0].matmul(&p[1].t()),
        &[x.clone(), wt],
    );
    check(
        "linear of transposed input",
        &|p| p[0].transpose(0, 1).linear(&p[1].t(), None),
        &[x, randn(&[o, i], &mut rng)],
    );
}

#[test]
fn softmax_log_softmax() {
    let mut rng = Rng::new(5);
    let x = randn(
        &[dim(&mut rng, 4), dim(&mut rng, 3), dim(&mut rng, 9) + 1],
        &mut rng,
    );
    check("softmax", &|t| t[0].softmax(), std::slice::from_ref(&x));
    check(
        "log_softmax",
        &|t| t[0].log_softmax(),
        std::slice::from_ref(&x),
    );
    check(
        "softmax (transposed)",
        &|t| t[0].transpose(0, 2).softmax(),
        std::slice::from_ref(&x),
    );
    check(
        "log_softmax (narrowed)",
        &|t| t[0].narrow(-1, 1, t[0].dim(-1) - 1).log_softmax(),
        &[x],
    );
}

#[test]
fn layer_norm() {
    let mut rng = Rng::new(6);
    let c = dim(&mut rng, 9) + 2;
    let x = randn(&[dim(&mut rng, 4), dim(&mut rng, 3), c], &mut rng);
    let w = randn(&[c], &mut rng);
    let b = randn(&[c], &mut rng);
    check(
        "layer_norm",
        &|t| t[0].layer_norm(&t[1], &t[2], 1e-5),
        &[x.clone(), w.clone(), b.clone()],
    );
    let xt = randn(&[c, 5], &mut rng);
    check(
        "layer_norm (transposed)",
        &|t| t[0].t().layer_norm(&t[1], &t[2], 1e-5),
        &[xt, w, b],
    );
}

#[test]
fn embedding_and_cross_entropy() {
    let mut rng = Rng::new(7);
    let (v, c) = (dim(&mut rng, 6) + 3, dim(&mut rng, 5));
    let table = randn(&[v, c], &mut rng);
    let ids: Vec<u32> = (0..10).map(|_| rng.below(v as u64) as u32).collect(); // repeats likely
    let ids2 = ids.clone();
    check(
        "embedding (repeated ids)",
        &move |t| t[0].embedding(&ids2, &[2, 5]),
        &[table],
    );
    let rows = dim(&mut rng, 7) + 1;
    let logits = randn(&[rows, v], &mut rng);
    let targets: Vec<u32> = (0..rows).map(|_| rng.below(v as u64) as u32).collect();
    let t1 = targets.clone();
    check(
        "cross_entropy",
        &move |t| t[0].cross_entropy(&t1).mul_scalar(2.0),
        std::slice::from_ref(&logits),
    );
    let mut t2 = targets.clone();
    t2[0] = u32::MAX;
    check(
        "cross_entropy ignore",
        &move |t| t[0].cross_entropy_ignore(&t2, Some(u32::MAX)),
        std::slice::from_ref(&logits),
    );
    let t3 = targets.clone();
    let l3 = randn(&[v, rows], &mut rng);
    check(
        "cross_entropy (transposed)",
        &move |t| t[0].t().cross_entropy(&t3),
        &[l3],
    );
    let l4 = randn(&[1, rows, v], &mut rng);
    check(
        "cross_entropy 3-d logits",
        &move |t| t[0].cross_entropy(&targets),
        &[l4],
    );
}

#[test]
fn masks() {
    let mut rng = Rng::new(8);
    let t = dim(&mut rng, 6) + 1;
    let x = randn(&[2, t, t], &mut rng);
    check(
        "causal_mask + softmax",
        &|a| a[0].causal_mask(f64::NEG_INFINITY).softmax(),
        std::slice::from_ref(&x),
    );
    check(
        "causal_softmax (fused)",
        &|a| a[0].causal_softmax(0.7),
        std::slice::from_ref(&x),
    );
    let xs = randn(&[2, 3, t + 2], &mut rng);
    check(
        "causal_softmax (kv longer)",
        &|a| a[0].causal_softmax(1.3),
        std::slice::from_ref(&xs),
    );
    check(
        "causal_mask (kv longer)",
        &|a| a[0].causal_mask(-3.0),
        &[xs],
    );
    let mask: Vec<f64> = (0..t).map(|i| (i % 2) as f64).collect();
    let mask = Tensor::from_vec_f64(mask, &[t]);
    check(
        "masked_fill (broadcast)",
        &move |a| a[0].masked_fill(&mask.to_dtype(a[0].dtype()), 3.0),
        &[x],
    );
}

#[test]
fn views_and_joins() {
    let mut rng = Rng::new(9);
    let (a, b, c) = (dim(&mut rng, 4), dim(&mut rng, 4) + 1, dim(&mut rng, 5) + 1);
    let x = randn(&[a, b, c], &mut rng);
    let y = randn(&[a, 2, c], &mut rng);
    check(
        "reshape",
        &|t| t[0].reshape(&[a * b, c]),
        std::slice::from_ref(&x),
    );
    check(
        "reshape of transposed",
        &|t| t[0].transpose(1, 2).reshape(&[a, b * c]),
        std::slice::from_ref(&x),
    );
    check(
        "permute",
        &|t| t[0].permute(&[2, 0, 1]),
        std::slice::from_ref(&x),
    );
    check(
        "narrow",
        &|t| t[0].narrow(1, 1, b - 1),
        std::slice::from_ref(&x),
    );
    check(
        "expand",
        &|t| t[0].narrow(1, 0, 1).expand(&[a, 3, c]),
        std::slice::from_ref(&x),
    );
    check(
        "contiguous",
        &|t| t[0].t().contiguous(),
        std::slice::from_ref(&x),
    );
    check(
        "cat axis 1",
        &|t| Tensor::cat(&[&t[0], &t[1]], 1),
        &[x.clone(), y.clone()],
    );
    check(
        "cat of views",
        &|t| Tensor::cat(&[&t[0].t(), &t[1].t()], -1),
        &[x.clone(), y],
    );
    check(
        "split",
        &|t| {
            let p = t[0].split(&[1, c - 1], -1);
            p[1].mul(&p[1]).sum(-1, true).add(&p[0])
        },
        std::slice::from_ref(&x),
    );
    check(
        "chunk (q, k, v style)",
        &|t| {
            let p = t[0]
                .reshape(&[a, b * c])
                .narrow(1, 0, b * c / 2 * 2)
                .chunk(2, 1);
            p[0].mul(&p[1])
        },
        std::slice::from_ref(&x),
    );
}

#[test]
fn attention_block_composed() {
    // A whole causal self-attention, composed of the ops above, as GPT-2 will use it.
    let mut rng = Rng::new(10);
    let (b, t, nh, hs) = (2, 5, 2, 3);
    let c = nh * hs;
    let x = randn(&[b, t, c], &mut rng);
    let w = randn(&[c, 3 * c], &mut rng).mul_scalar(0.3);
    let lw = unif(&[c], 0.5, 1.5, &mut rng);
    let lb = randn(&[c], &mut rng);
    let f = move |p: &[Tensor]| {
        let h = p[0].layer_norm(&p[2], &p[3], 1e-5);
        let qkv = h.matmul(&p[1]);
        let parts = qkv.split(&[c, c, c], -1);
        let heads = |z: &Tensor| z.reshape(&[b, t, nh, hs]).transpose(1, 2);
        let (q, k, v) = (heads(&parts[0]), heads(&parts[1]), heads(&parts[2]));
        let att = q.matmul(&k.t()).mul_scalar(1.0 / (hs as f64).sqrt());
        let att = att.causal_mask(f64::NEG_INFINITY).softmax();
        let y = att.matmul(&v).transpose(1, 2).reshape(&[b, t, c]);
        y.gelu().add(&p[0])
    };
    check("attention block", &f, &[x, w, lw, lb]);
}
