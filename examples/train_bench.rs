//! Times full training steps (forward, backward, clip + AdamW) of a GPT-2 on random tokens and
//! prints one JSON line. On the CPU, `benches/compare/train_vs_torch.sh` runs it beside the same
//! model in PyTorch; on the GPU (`--device cuda`, our kernels), `scripts/gpu-check.sh` runs it
//! beside `benches/compare/train_torch_gpu.py`.
//!
//! cargo run --release --example train_bench -- L D H T B V STEPS
//! (layers, width, heads, sequence length, batch, vocabulary, timed steps; defaults: 4 256 4 256 8 8192 5)
//!
//! cargo run --release --example train_bench -- --device cuda --preset gpt2 --steps 20
//! (GPT-2 124M at T=1024, B=16; options: --batch B, --precision fp32|bf16 (default bf16),
//! --matmul v3|v4|cublas (default: our fastest); 3 warm-up steps on the GPU, 1 on the CPU)

use pretrain::model::config::GptConfig;
use pretrain::model::gpt::Gpt;
use pretrain::train::optim::{AdamW, AdamWConfig};
use pretrain::train::trainer::{flops_per_token, measured_peak_gflops};
use std::time::Instant;

/// The command line: positional sizes and `--name value` options.
struct Args {
    nums: Vec<usize>,
    device: String,
    preset: Option<String>,
    steps: Option<usize>,
    batch: Option<usize>,
    precision: String,
    matmul: Option<String>,
}

fn parse() -> Args {
    let mut a = Args {
        nums: Vec::new(),
        device: "cpu".into(),
        preset: None,
        steps: None,
        batch: None,
        precision: "bf16".into(),
        matmul: None,
    };
    let mut it = std::env::args().skip(1);
    let num = |s: Option<String>, what: &str| -> usize {
        s.and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("train_bench: {what} needs a number"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--device" => a.device = it.next().expect("--device cpu|cuda"),
            "--preset" => a.preset = it.next(),
            "--steps" => a.steps = Some(num(it.next(), "--steps")),
            "--batch" => a.batch = Some(num(it.next(), "--batch")),
            "--precision" => a.precision = it.next().expect("--precision fp32|bf16"),
            "--matmul" => a.matmul = it.next(),
            _ => a.nums.push(
                arg.parse()
                    .unwrap_or_else(|_| panic!("train_bench: {arg:?} is not a number")),
            ),
        }
    }
    a
}

fn main() {
    let a = parse();
    let defaults = match a.preset.as_deref() {
        Some("gpt2") => [12, 768, 12, 1024, 16, 50257, 10],
        Some(p) => panic!("train_bench: unknown preset {p:?} (gpt2)"),
        None => [4, 256, 4, 256, 8, 8192, 5],
    };
    let get = |i: usize| a.nums.get(i).copied().unwrap_or(defaults[i]);
    let (l, d, h, t, v) = (get(0), get(1), get(2), get(3), get(5));
    let b = a.batch.unwrap_or(get(4));
    let steps = a.steps.unwrap_or(get(6)).max(1);
    let config = GptConfig {
        n_layer: l,
        n_head: h,
        n_embd: d,
        block_size: t,
        vocab_size: v,
    };
    let model = Gpt::new(config, 1);
    let (name, median, cpu, peak_gflops) = match a.device.as_str() {
        "cpu" => {
            let (median, cpu) = cpu_steps(&model, b, t, steps);
            ("pretrain".to_string(), median, cpu, measured_peak_gflops())
        }
        other => panic!("train_bench: --device {other:?} (cpu or cuda)"),
    };
    let tps = (b * t) as f64 / median;
    let mfu = tps * flops_per_token(&config, t) / (peak_gflops * 1e9);
    println!(
        "{{\"impl\":\"{name}\",\"config\":\"L{l} d{d} h{h} T{t} B{b} V{v}\",\"params\":{},\"ms_per_step\":{:.1},\"tokens_per_sec\":{tps:.0},\"mfu\":{mfu:.3}{}}}",
        config.num_params(),
        median * 1e3,
        cpu.map(|c| format!(",\"cpu_ms_per_step\":{:.1}", c * 1e3))
            .unwrap_or_default()
    );
}

/// Random token ids below `v`, from a fixed seed.
fn token_stream(v: usize) -> impl FnMut(usize) -> Vec<u32> {
    let mut x = 12345u64;
    move |n| {
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 33) as u32 % v as u32
            })
            .collect()
    }
}

/// CPU time (user + system, all threads) of this process so far, in seconds, where Linux's
/// `/proc/self/stat` tells it (clock ticks of 1/100 s).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses): utime and stime are 12 and 13.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Median seconds per CPU step, and the mean CPU seconds (all threads) per timed step: on a
/// shared machine the CPU time moves less than the wall time when other jobs take the cores.
fn cpu_steps(model: &Gpt, b: usize, t: usize, steps: usize) -> (f64, Option<f64>) {
    let params: Vec<_> = model.params().into_iter().map(|(_, p)| p.clone()).collect();
    let refs: Vec<_> = params.iter().collect();
    let sizes: Vec<usize> = params.iter().map(|p| p.numel()).collect();
    let mut opt = AdamW::new(AdamWConfig::default(), &sizes);
    let mut tokens = token_stream(model.config.vocab_size);
    // PROFILE=1 prints where the time goes, per op (forward and backward).
    let profile = std::env::var("PROFILE").is_ok_and(|v| v == "1");
    pretrain::tensor::profile::enable(profile);
    let mut times = Vec::new();
    // With PROFILE=1, seconds per phase: forward, backward, clip + AdamW + zeroing the gradients.
    let mut phases = [0.0f64; 3];
    let mut cpu_start = None;
    for step in 0..steps + 1 {
        if step == 1 {
            cpu_start = process_cpu_seconds();
        }
        let (ids, targets) = (tokens(b * t), tokens(b * t));
        let t0 = Instant::now();
        let loss = model.loss(&ids, &targets, b, t);
        let t1 = Instant::now();
        loss.backward();
        let t2 = Instant::now();
        opt.update(&refs, 1e-4, 1.0);
        params.iter().for_each(|p| p.zero_grad());
        if step > 0 {
            times.push(t0.elapsed().as_secs_f64()); // step 0 warms up caches and allocations
            let d = [t1 - t0, t2 - t1, t2.elapsed()];
            phases
                .iter_mut()
                .zip(d)
                .for_each(|(p, d)| *p += d.as_secs_f64());
        }
    }
    if profile {
        eprintln!("{}", pretrain::tensor::profile::report());
        let [f, bw, o] = phases.map(|p| 1e3 * p / steps as f64);
        eprintln!("ms per step: forward {f:.1}, backward {bw:.1}, clip + AdamW + zero_grad {o:.1}");
    }
    let cpu = cpu_start
        .zip(process_cpu_seconds())
        .map(|(a, b)| (b - a) / steps as f64);
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], cpu)
}
