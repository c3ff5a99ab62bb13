//! Criterion benches for the tensor engine's main ops at GPT training shapes
//! (the config: B8 T256 C256 H4 V8192, so 2048 rows), and for the CPU kernels a GPT-2
//! 124M step spends its non-matmul time in (`gpt2_124m`: B4 T64, so 256 rows, V 50257): the
//! fused classifier against matmul + cross-entropy, AdamW over the 38.6M-float embedding, GELU
//! and causal attention.
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

/// The 124M step's kernels, called directly on slices.
fn gpt2_124m(c: &mut Criterion) {
    use pretrain::tensor::cpu::matmul::{Layout, gemm};
    use pretrain::tensor::cpu::{adamw, attention, classifier, cross_entropy, gelu};
    let mut g = c.benchmark_group("gpt2_124m");
    g.sample_size(10);
    let mut rng = Rng::new(1);
    let (rows, d, v) = (256, 768, 50257);
    let x = Tensor::randn(&[rows, d], 0.0, 1.0, &mut rng).to_vec();
    let w = Tensor::randn(&[v, d], 0.0, 0.02, &mut rng).to_vec();
    let targets: Vec<u32> = (0..rows).map(|_| rng.below(v as u64) as u32).collect();
    let dims = classifier::Dims { rows, c: d, v };
    g.throughput(Throughput::Elements((6 * rows * d * v) as u64));
    g.bench_function("classifier fused fwd+grad 256x768x50257", |b| {
        b.iter(|| {
            let opts = classifier::Options::new(true);
            let out = classifier::classifier(&x, &w, &targets, None, dims, opts);
            // Back to the pool, as the tensors that hold them in a training step are: a fresh
            // 154 MB dW every call would time page faults, not the kernel.
            let (dx, dw) = out.grads.expect("asked for");
            pretrain::tensor::pool::give(dx);
            pretrain::tensor::pool::give(dw);
            black_box(out.loss_sum)
        })
    });
    // The same work kernel by kernel: logits, cross-entropy forward and backward, dx, and dW
    // already in w's [V, C] layout (the op-by-op tensor path before the fused op also wrote dW
    // as [C, V] and copied it into place, and kept the logits and dlogits as tensors).
    let (mut logits, mut dl, mut lse) = (vec![0.0; rows * v], vec![0.0; rows * v], vec![0.0; rows]);
    let (mut dx, mut dw) = (vec![0.0; rows * d], vec![0.0; v * d]);
    g.bench_function("classifier unfused fwd+grad 256x768x50257", |b| {
        b.iter(|| {
            gemm(rows, d, v, &x, Layout::N, &w, Layout::T, &mut logits, false);
            let (_, count) = cross_entropy::cross_entropy(&logits, &targets, None, v, &mut lse);
            let s = 1.0 / count as f32;
            cross_entropy::cross_entropy_backward(&logits, &lse, &targets, None, v, s, &mut dl);
            gemm(rows, v, d, &dl, Layout::N, &w, Layout::N, &mut dx, false);
            gemm(v, rows, d, &dl, Layout::T, &x, Layout::N, &mut dw, false);
        })
    });

    let n = v * d;
    let grad = Tensor::randn(&[n], 0.0, 1e-3, &mut rng).to_vec();
    let (mut p, mut m, mut vv) = (w.clone(), vec![0.0; n], vec![0.0; n]);
    let h = adamw::Hyper {
        lr: 1e-4,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.1,
        grad_scale: 1.0,
        step: 1,
    };
    g.throughput(Throughput::Bytes((n * 28) as u64));
    g.bench_function("adamw 50257x768", |b| {
        b.iter(|| adamw::adamw(&h, &mut p, &grad, &mut m, &mut vv))
    });
    g.throughput(Throughput::Bytes((n * 4) as u64));
    g.bench_function("grad sum_of_squares 50257x768", |b| {
        b.iter(|| black_box(adamw::sum_of_squares(&[&grad])))
    });

    let hx = Tensor::randn(&[rows, 4 * d], 0.0, 1.0, &mut rng).to_vec();
    let mut hy = vec![0.0; hx.len()];
    g.throughput(Throughput::Elements(hx.len() as u64));
    g.bench_function("gelu 256x3072", |b| b.iter(|| gelu::gelu(&hx, &mut hy)));
    g.bench_function("gelu_backward 256x3072", |b| {
        b.iter(|| gelu::gelu_backward(&hx, &hx, &mut hy))
    });

    // 4 sequences × 12 heads of 64 tokens × 64 dims.
    let (bh, t, hd) = (48, 64, 64);
    let q = Tensor::randn(&[bh * t * hd], 0.0, 1.0, &mut rng).to_vec();
    let (mut y, mut l) = (vec![0.0; q.len()], vec![0.0; bh * t]);
    let (mut dq, mut dk, mut dv) = (vec![0.0; q.len()], vec![0.0; q.len()], vec![0.0; q.len()]);
    g.throughput(Throughput::Elements(bh as u64));
    g.bench_function("causal_attention 48x64x64", |b| {
        b.iter(|| attention::causal_attention_forward(&q, &q, &q, &mut y, &mut l, t, hd, 0.125))
    });
    g.bench_function("causal_attention_backward 48x64x64", |b| {
        b.iter(|| {
            attention::causal_attention_backward(
                &q, &q, &q, &y, &l, &q, &mut dq, &mut dk, &mut dv, t, hd, 0.125,
            )
        })
    });
    g.finish();
}

criterion_group!(benches, ops, gpt2_124m);
criterion_main!(benches);
