//! criterion benchmarks for every matmul version (`cargo bench --bench matmul`).
//!
//! v1 and v2 run on 256×256×256 (they are too slow for more); v3–v5 and the transposed variants
//! on 1024×768×768 for the layouts; `gpt2_124m_step` runs `gemm` on every product shape of a
//! GPT-2 124M training step at batch 4 × 64 tokens (256 rows: the short, wide products that v5's
//! split by columns and by depth are for). Throughput counts floating-point operations (2·m·k·n) as
//! "elements", so criterion's `Gelem/s` reads as GFLOP/s.
//! For quick side-by-side numbers use `cargo run --release --bin kernels` instead.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pretrain::tensor::cpu::matmul::{Layout, VERSIONS, gemm};
use std::hint::black_box;
use std::time::Duration;

fn inputs(m: usize, k: usize, n: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut s = 0x2545_f491_u32;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        s as f32 / u32::MAX as f32 - 0.5
    };
    let a = (0..m * k).map(|_| next()).collect();
    let b = (0..k * n).map(|_| next()).collect();
    (a, b, vec![0.0; m * n])
}

fn versions(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    for (name, f) in VERSIONS {
        let s = if matches!(name, "v1" | "v2") {
            256
        } else {
            1024
        };
        let (a, b, mut out) = inputs(s, s, s);
        group.throughput(Throughput::Elements(2 * (s * s * s) as u64));
        group.bench_function(format!("{name}/{s}x{s}x{s}"), |bench| {
            bench.iter(|| {
                f(
                    s,
                    s,
                    s,
                    black_box(&a),
                    Layout::N,
                    black_box(&b),
                    Layout::N,
                    &mut out,
                    false,
                )
            })
        });
    }
    group.finish();
}

fn layouts(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm_layouts");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    let (m, k, n) = (1024, 768, 768);
    let (a, b, mut out) = inputs(m, k, n);
    group.throughput(Throughput::Elements(2 * (m * k * n) as u64));
    for (label, ta, tb) in [
        ("A·B", Layout::N, Layout::N),
        ("A·Bt", Layout::N, Layout::T),
        ("At·B", Layout::T, Layout::N),
    ] {
        group.bench_function(format!("{label}/{m}x{k}x{n}"), |bench| {
            bench.iter(|| {
                gemm(
                    m,
                    k,
                    n,
                    black_box(&a),
                    ta,
                    black_box(&b),
                    tb,
                    &mut out,
                    false,
                )
            })
        });
    }
    group.finish();
}

/// The products of one GPT-2 124M training step at B·T = 256 rows, as the engine calls them:
/// forward `x·W`, backward `dx = g·Wᵀ` and `dW = xᵀ·g`, for the four linear layers of a block
/// and the tied classifier (`x·wteᵀ`, `dlogits·wte`, `dlogitsᵀ·x`).
fn gpt2_124m_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("gpt2_124m_step");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    let (r, d, v) = (256, 768, 50257);
    let (n, t) = (Layout::N, Layout::T);
    let shapes = [
        ("qkv", r, d, 3 * d, n, n),
        ("qkv dx", r, 3 * d, d, n, t),
        ("qkv dW", d, r, 3 * d, t, n),
        ("attn proj", r, d, d, n, n),
        ("fc", r, d, 4 * d, n, n),
        ("fc dx", r, 4 * d, d, n, t),
        ("fc dW", d, r, 4 * d, t, n),
        ("mlp proj", r, 4 * d, d, n, n),
        ("mlp proj dW", 4 * d, r, d, t, n),
        ("logits", r, d, v, n, t),
        ("logits dx", r, v, d, n, n),
        ("logits dW", v, r, d, t, n),
    ];
    for (name, m, k, nn, ta, tb) in shapes {
        let (a, b, mut out) = inputs(m, k, nn);
        group.throughput(Throughput::Elements(2 * (m * k * nn) as u64));
        group.bench_function(format!("{name}/{m}x{k}x{nn}"), |bench| {
            bench.iter(|| {
                gemm(
                    m,
                    k,
                    nn,
                    black_box(&a),
                    ta,
                    black_box(&b),
                    tb,
                    &mut out,
                    false,
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, versions, layouts, gpt2_124m_step);
criterion_main!(benches);
