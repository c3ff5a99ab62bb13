//! Times the tensor engine's main ops at GPT training shapes and prints one JSON object per op
//! (`op`, `shape`, `ms`: the best of several runs). `benches/compare/ops_vs_torch.py` runs this
//! beside the same ops in PyTorch and prints the ratios; `cargo bench --bench ops` has the
//! criterion versions. `cargo run --release --example ops_bench`

use pretrain::tensor::{Rng, Tensor, no_grad};
use std::time::Instant;

fn best_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm up (and fill the buffer pool)
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let quick = pretrain::cli::quick();
    let (rows, c, v, reps) = if quick {
        (256, 64, 512, 3)
    } else {
        (2048, 256, 8192, 10)
    };
    let mut rng = Rng::new(0);
    let row = |op: &str, shape: String, ms: f64| {
        println!("{{\"op\": \"{op}\", \"shape\": \"{shape}\", \"ms\": {ms:.4}}}");
    };

    let att = Tensor::randn(&[8, 4, rows / 8, rows / 8], 0.0, 1.0, &mut rng);
    row(
        "softmax",
        format!("{:?}", att.shape()),
        best_ms(reps, || drop(no_grad(|| att.softmax()))),
    );
    let attl = att.clone().requires_grad_();
    row(
        "causal_softmax fwd+bwd",
        format!("{:?}", att.shape()),
        best_ms(reps, || {
            attl.causal_softmax(0.125).sum_all().backward();
            attl.zero_grad();
        }),
    );

    let x = Tensor::randn(&[rows, c], 0.0, 1.0, &mut rng).requires_grad_();
    let w = Tensor::ones(&[c]).requires_grad_();
    let b = Tensor::zeros(&[c]).requires_grad_();
    row(
        "layernorm",
        format!("[{rows}, {c}]"),
        best_ms(reps, || drop(no_grad(|| x.layer_norm(&w, &b, 1e-5)))),
    );
    row(
        "layernorm fwd+bwd",
        format!("[{rows}, {c}]"),
        best_ms(reps, || {
            x.layer_norm(&w, &b, 1e-5).sum_all().backward();
            [&x, &w, &b].iter().for_each(|t| t.zero_grad());
        }),
    );

    let h = Tensor::randn(&[rows, 4 * c], 0.0, 1.0, &mut rng).requires_grad_();
    row(
        "gelu",
        format!("[{rows}, {}]", 4 * c),
        best_ms(reps, || drop(no_grad(|| h.gelu()))),
    );
    row(
        "gelu fwd+bwd",
        format!("[{rows}, {}]", 4 * c),
        best_ms(reps, || {
            h.gelu().sum_all().backward();
            h.zero_grad();
        }),
    );

    let logits = Tensor::randn(&[rows, v], 0.0, 1.0, &mut rng).requires_grad_();
    let targets: Vec<u32> = (0..rows).map(|_| rng.below(v as u64) as u32).collect();
    row(
        "cross_entropy",
        format!("[{rows}, {v}]"),
        best_ms(reps, || drop(no_grad(|| logits.cross_entropy(&targets)))),
    );
    row(
        "cross_entropy fwd+bwd",
        format!("[{rows}, {v}]"),
        best_ms(reps, || {
            logits.cross_entropy(&targets).backward();
            logits.zero_grad();
        }),
    );

    let r = Tensor::randn(&[c], 0.0, 1.0, &mut rng);
    row(
        "add row-broadcast",
        format!("[{rows}, {c}] + [{c}]"),
        best_ms(reps, || drop(no_grad(|| x.add(&r)))),
    );
}
