//! Criterion benches for the tensor engine's main ops at GPT training shapes
//! (the config: B8 T256 C256 H4 V8192, so 2048 rows).
//!
//! `cargo bench --bench ops` (add a name to filter, e.g. `cargo bench --bench ops -- softmax`).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pretrain::tensor::{Rng, Tensor, no_grad};
use std::hint::black_box;

const ROWS: usize = 2048; // B·T
const C: usize = 256;
const V: usize = 8192;

fn ops(c: &mut Criterion) {
    let mut rng = Rng::new(0);
    let mut g = c.benchmark_group("ops");
    g.sample_size(10);

    let att = Tensor::randn(&[8, 4, 256, 256], 0.0, 1.0, &mut rng);
    g.throughput(Throughput::Bytes((att.numel() * 8) as u64));
    g.bench_function("softmax 8x4x256x256", |b| {
        b.iter(|| no_grad(|| black_box(att.softmax())))
    });

    let x = Tensor::randn(&[ROWS, C], 0.0, 1.0, &mut rng);
    let w = Tensor::ones(&[C]);
    let bias = Tensor::zeros(&[C]);
    g.throughput(Throughput::Bytes((x.numel() * 8) as u64));
    g.bench_function("layernorm 2048x256", |b| {
        b.iter(|| no_grad(|| black_box(x.layer_norm(&w, &bias, 1e-5))))
    });
    let xl = x.clone().requires_grad_();
    let wl = w.clone().requires_grad_();
    let bl = bias.clone().requires_grad_();
    g.bench_function("layernorm fwd+bwd 2048x256", |b| {
        b.iter(|| {
            xl.layer_norm(&wl, &bl, 1e-5).sum_all().backward();
            xl.zero_grad();
        })
    });

    let h = Tensor::randn(&[ROWS, 4 * C], 0.0, 1.0, &mut rng);
    g.throughput(Throughput::Bytes((h.numel() * 8) as u64));
    g.bench_function("gelu 2048x1024", |b| {
        b.iter(|| no_grad(|| black_box(h.gelu())))
    });

    let logits = Tensor::randn(&[ROWS, V], 0.0, 1.0, &mut rng);
    let targets: Vec<u32> = (0..ROWS).map(|_| rng.below(V as u64) as u32).collect();
    g.throughput(Throughput::Bytes((logits.numel() * 4) as u64));
    g.bench_function("cross_entropy 2048x8192", |b| {
        b.iter(|| no_grad(|| black_box(logits.cross_entropy(&targets))))
    });
    let ll = logits.clone().requires_grad_();
    g.bench_function("cross_entropy fwd+bwd 2048x8192", |b| {
        b.iter(|| {
            ll.cross_entropy(&targets).backward();
            ll.zero_grad();
        })
    });

    let a = Tensor::randn(&[ROWS, C], 0.0, 1.0, &mut rng);
    let r = Tensor::randn(&[C], 0.0, 1.0, &mut rng);
    g.throughput(Throughput::Bytes((a.numel() * 12) as u64));
    g.bench_function("add row-broadcast 2048x256", |b| {
        b.iter(|| no_grad(|| black_box(a.add(&r))))
    });
    g.finish();

    // A small GPT-style MLP block, forward + backward: LN → fc (C→4C) → GELU → proj (4C→C) → +x.
    let mut g = c.benchmark_group("block");
    g.sample_size(10);
    let rows = 512;
    let x = Tensor::randn(&[rows, C], 0.0, 1.0, &mut rng).requires_grad_();
    let p = [
        Tensor::ones(&[C]).requires_grad_(),
        Tensor::zeros(&[C]).requires_grad_(),
        Tensor::randn(&[C, 4 * C], 0.0, 0.02, &mut rng).requires_grad_(),
        Tensor::zeros(&[4 * C]).requires_grad_(),
        Tensor::randn(&[4 * C, C], 0.0, 0.02, &mut rng).requires_grad_(),
        Tensor::zeros(&[C]).requires_grad_(),
    ];
    g.bench_function("mlp block fwd+bwd 512x256", |b| {
        b.iter(|| {
            let h = x.layer_norm(&p[0], &p[1], 1e-5);
            let h = h.matmul(&p[2]).add(&p[3]).gelu().matmul(&p[4]).add(&p[5]);
            h.add(&x).sum_all().backward();
        })
    });
    g.finish();
}

criterion_group!(benches, ops);
criterion_main!(benches);
