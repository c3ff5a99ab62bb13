//! Lesson 05's demo: one small graph differentiated by hand and by the tape, then a gradient
//! check. `cargo run --release --example autograd`. Deterministic output (no timings).

use pretrain::tensor::gradcheck::{EPS, TOL, f32_vs_f64, gradcheck};
use pretrain::tensor::{Rng, Tensor, no_grad};

fn main() {
    // 1. The graph: L = tanh(a·b + c)², with scalars a = 0.5, b = −1.5, c = 0.25.
    let (a0, b0, c0) = (0.5f64, -1.5, 0.25);
    let a = Tensor::from_vec_f64(vec![a0], &[]).requires_grad_();
    let b = Tensor::from_vec_f64(vec![b0], &[]).requires_grad_();
    let c = Tensor::from_vec_f64(vec![c0], &[]).requires_grad_();
    let u = a.mul(&b);
    let v = u.add(&c);
    let y = v.tanh();
    let loss = y.mul(&y);
    println!(
        "forward: u = a·b = {}, v = u + c = {}, y = tanh(v) = {:.6}, L = y² = {:.6}",
        u.item_f64(),
        v.item_f64(),
        y.item_f64(),
        loss.item_f64()
    );
    println!("the tape behind L:");
    print!("{}", loss.graph());

    // By hand, the chain rule from L back to the leaves.
    let yv = (a0 * b0 + c0).tanh();
    let dl_dy = 2.0 * yv;
    let dl_dv = dl_dy * (1.0 - yv * yv);
    let (dl_da, dl_db, dl_dc) = (dl_dv * b0, dl_dv * a0, dl_dv);
    println!("by hand: dL/dy = 2y = {dl_dy:.6}, dL/dv = dL/dy·(1−y²) = {dl_dv:.6}");
    println!(
        "by hand: dL/da = dL/dv·b = {dl_da:.6}, dL/db = dL/dv·a = {dl_db:.6}, dL/dc = {dl_dc:.6}"
    );

    loss.backward();
    let (ga, gb, gc) = (
        a.grad().unwrap().item_f64(),
        b.grad().unwrap().item_f64(),
        c.grad().unwrap().item_f64(),
    );
    println!("by tape: dL/da = {ga:.6}, dL/db = {gb:.6}, dL/dc = {gc:.6}");
    let worst = [(ga, dl_da), (gb, dl_db), (gc, dl_dc)]
        .iter()
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-15);
    println!("tape gradients match the hand derivation (max |diff| = {worst:.1e})");
    print!("after backward the graph is freed: {}", loss.graph());

    // 2. Gradients accumulate until zeroed; no_grad records nothing.
    a.mul_scalar(3.0).backward();
    println!(
        "a second backward (of 3a) adds 3 to a.grad: {:.6}",
        a.grad().unwrap().item_f64()
    );
    a.zero_grad();
    let z = no_grad(|| a.mul_scalar(3.0));
    println!("inside no_grad: requires_grad = {}", z.requires_grad());

    // 3. Gradient check: a LayerNorm → matmul → GELU → log-softmax chain on random inputs,
    //    including a transposed (non-contiguous) weight and a broadcast bias.
    let mut rng = Rng::new(5);
    let mut r = |s: &[usize]| {
        Tensor::from_vec_f64((0..s.iter().product()).map(|_| rng.normal()).collect(), s)
    };
    let inputs = [r(&[3, 5]), r(&[5]), r(&[5]), r(&[4, 5]), r(&[4])];
    let f = |p: &[Tensor]| {
        p[0].layer_norm(&p[1], &p[2], 1e-5)
            .matmul(&p[3].t())
            .add(&p[4])
            .gelu()
            .log_softmax()
    };
    let err = gradcheck(&f, &inputs, EPS, TOL).expect("gradient check");
    let n: usize = inputs.iter().map(|t| t.numel()).sum();
    println!(
        "gradcheck over {n} input elements: max |analytic − numeric|/(1+|numeric|) = {err:.1e} (tolerance {TOL:.0e}, eps {EPS:.0e})"
    );
    println!(
        "f32 gradients vs f64 gradients: max scaled difference = {:.1e}",
        f32_vs_f64(&f, &inputs)
    );
}
