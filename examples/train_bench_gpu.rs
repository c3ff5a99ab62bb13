//! Times full training steps (forward, backward, clip + AdamW) of a GPT-2 on the GPU with our
//! kernels, on random tokens, and prints one JSON line like `train_bench` (the CPU version).
//! `benches/compare/train_torch_gpu.py` times the same model in PyTorch.
//!
//! cargo run --release --example train_bench_gpu -- [--fp32] [--matmul v3|v4|cublas] L D H T B V STEPS
//! (defaults: GPT-2 124M, 12 768 12 1024 16 50257 10; bf16 with our best matmul; 3 warm-up steps)

use pretrain::cuda::Precision;
use pretrain::cuda::device::Gpu;
use pretrain::cuda::trainer::peak_gflops;
use pretrain::model::config::GptConfig;
use pretrain::model::gpt::Gpt;
use pretrain::train::optim::{AdamW, AdamWConfig};
use pretrain::train::trainer::flops_per_token;
use std::time::Instant;

const WARMUP: usize = 3;

fn main() {
    let mut precision = Precision::Bf16;
    let mut matmul = None;
    let mut nums = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--fp32" => precision = Precision::F32,
            "--matmul" => matmul = args.next(),
            _ => nums.push(
                a.parse::<usize>()
                    .unwrap_or_else(|_| panic!("train_bench_gpu: {a:?} is not a number")),
            ),
        }
    }
    let get = |i: usize, d: usize| nums.get(i).copied().unwrap_or(d);
    let (l, d, h, t, b, v, steps) = (
        get(0, 12),
        get(1, 768),
        get(2, 12),
        get(3, 1024),
        get(4, 16),
        get(5, 50257),
        get(6, 10).max(1),
    );
    let gpu = match Gpu::open(0) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("train_bench_gpu: no GPU ({e:#})");
            std::process::exit(2);
        }
    };
    let config = GptConfig {
        n_layer: l,
        n_head: h,
        n_embd: d,
        block_size: t,
        vocab_size: v,
    };
    let model = Gpt::new(config, 1);
    let r = match precision {
        Precision::F32 => run::<f32>(&gpu, &model, b, t, steps, matmul.as_deref()),
        Precision::Bf16 => run::<half::bf16>(&gpu, &model, b, t, steps, matmul.as_deref()),
    };
    let (median, version) = r.unwrap_or_else(|e| {
        eprintln!("train_bench_gpu: {e:#}");
        std::process::exit(1);
    });
    let tps = (b * t) as f64 / median;
    let mfu = tps * flops_per_token(&config, t) / (peak_gflops(&gpu.name, precision) * 1e9);
    println!(
        "{{\"impl\":\"pretrain-cuda {} {version}\",\"device\":\"{}\",\"config\":\"L{l} d{d} h{h} T{t} B{b} V{v}\",\"params\":{},\"ms_per_step\":{:.1},\"tokens_per_sec\":{tps:.0},\"mfu\":{mfu:.3}}}",
        precision.name(),
        gpu.name,
        config.num_params(),
        median * 1e3
    );
}

/// Median seconds per step after the warm-up, and the matmul version used.
fn run<X: pretrain::cuda::GpuFloat>(
    gpu: &std::sync::Arc<Gpu>,
    model: &Gpt,
    b: usize,
    t: usize,
    steps: usize,
    matmul: Option<&str>,
) -> anyhow::Result<(f64, String)> {
    use pretrain::cuda::gpt::MatmulVersion as Version;
    let mut g = pretrain::cuda::gpt::GpuGpt::<X>::new(gpu, model, b, t)?;
    match matmul {
        None => {}
        Some("v3") => g.set_matmul(Version::V3Register),
        Some("v4") => g.set_matmul(Version::V4TensorCore),
        Some("cublas") => g.set_matmul(Version::Cublas),
        Some(other) => anyhow::bail!("--matmul {other}: expected v3, v4 or cublas"),
    }
    eprintln!(
        "train_bench_gpu: {}, activations {:.1} GB",
        gpu.describe(),
        g.dims.activation_bytes(std::mem::size_of::<X>()) as f64 / 1e9
    );
    let sizes: Vec<usize> = model.params().iter().map(|(_, p)| p.numel()).collect();
    let mut opt = AdamW::new(AdamWConfig::default(), &sizes);
    let v = model.config.vocab_size as u64;
    let mut x = 12345u64;
    let mut tokens = |n: usize| -> Vec<u32> {
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 33) % v) as u32
            })
            .collect()
    };
    let mut times = Vec::new();
    for step in 0..WARMUP + steps {
        let (ids, targets) = (tokens(b * t), tokens(b * t));
        gpu.sync()?;
        let t0 = Instant::now();
        let loss = g.forward(&ids, &targets, 1.0)?;
        g.backward()?;
        g.update(&mut opt, 1e-4, 1.0)?;
        g.zero_grad()?;
        gpu.sync()?;
        let secs = t0.elapsed().as_secs_f64();
        eprintln!("step {step}: loss {loss:.4}, {:.1} ms", secs * 1e3);
        if step >= WARMUP {
            times.push(secs);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], format!("{:?}", g.matmul)))
}
