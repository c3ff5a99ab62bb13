//! Times full training steps (forward, backward, clip + AdamW) of a GPT-2 on random tokens and
//! prints one JSON line. The step is the trainer's, on the one tensor engine, on either device.
//! On the CPU, `benches/compare/train_vs_torch.sh` runs it beside the same model in PyTorch; on
//! the GPU (`--device cuda`, our kernels), `scripts/gpu-check.sh` runs it beside
//! `benches/compare/train_torch_gpu.py`. With `PRETRAIN_GPU_EMU=1` and no GPU, `--device cuda`
//! runs on the CPU emulator (toy sizes only: the times are the emulator's).
//!
//! cargo run --release --example train_bench -- L D H T B V STEPS
//! (layers, width, heads, sequence length, batch, vocabulary, timed steps; defaults: 4 256 4 256 8 8192 5)
//!
//! cargo run --release --example train_bench -- --device cuda --preset gpt2 --steps 20
//! (GPT-2 124M at T=1024, B=16; options: --batch B, --precision fp32|bf16 (default bf16),
//! --matmul v3|v4|cublas (default: our fastest); 3 warm-up steps on the GPU, 1 on the CPU)

use pretrain::model::config::GptConfig;
use pretrain::model::gpt::Gpt;
use pretrain::tensor::cuda::matmul::{self, Version};
use pretrain::tensor::devices::{self, DeviceArg};
use pretrain::tensor::{DType, Device, Tensor};
use pretrain::train::optim::{AdamW, AdamWConfig};
use pretrain::train::trainer::flops_per_token;
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
    let (device, dtype, name) = placement(&a);
    let warmup = if device == Device::Cpu { 1 } else { 3 };
    let (median, cpu) = timed_steps(&model, (device, dtype), (b, t), (warmup, steps));
    let peak_gflops = devices::peak_gflops(device, dtype);
    let tps = (b * t) as f64 / median;
    let mfu = tps * flops_per_token(&config, t) / (peak_gflops * 1e9);
    // On a GPU: the most memory tensors held at once, from the caching allocator.
    let peak = devices::memory(device)
        .map(|m| format!(",\"peak_mib\":{:.1}", m.peak as f64 / 1048576.0))
        .unwrap_or_default();
    let cpu = cpu
        .map(|c| format!(",\"cpu_ms_per_step\":{:.1}", c * 1e3))
        .unwrap_or_default();
    println!(
        "{{\"impl\":\"{name}\",\"config\":\"L{l} d{d} h{h} T{t} B{b} V{v}\",\"params\":{},\"ms_per_step\":{:.1},\"tokens_per_sec\":{tps:.0},\"mfu\":{mfu:.3}{cpu}{peak}}}",
        config.num_params(),
        median * 1e3
    );
}

/// Random token ids below `v`, from a fixed seed.
fn token_stream(v: usize) -> impl FnMut(usize) -> Vec<u32> {
    let mut rng = pretrain::tensor::Rng::new(12345);
    move |n| (0..n).map(|_| rng.below(v as u64) as u32).collect()
}

/// Where to run (`--device`, `--precision`, `--matmul`), and the name the JSON line gives it.
fn placement(a: &Args) -> (Device, DType, String) {
    if a.device == "cpu" {
        return (Device::Cpu, DType::F32, "pretrain".into());
    }
    assert_eq!(a.device, "cuda", "train_bench: --device cpu|cuda");
    let device = devices::select(DeviceArg::Cuda);
    if device == Device::Cpu {
        eprintln!("train_bench: no GPU (set PRETRAIN_GPU_EMU=1 for the emulator)");
        std::process::exit(1);
    }
    let dtype = match a.precision.as_str() {
        "fp32" => DType::F32,
        "bf16" => DType::BF16,
        p => panic!("train_bench: --precision {p:?} (fp32 or bf16)"),
    };
    let version = a.matmul.as_deref().map(|m| {
        *Version::all()
            .iter()
            .find(|v| v.name() == m)
            .unwrap_or_else(|| panic!("train_bench: --matmul {m:?} (v1..v4, cublas)"))
    });
    matmul::set_preferred(version);
    let used = match dtype {
        DType::BF16 => matmul::preferred::<half::bf16>(),
        _ => matmul::preferred::<f32>(),
    };
    let prec = if dtype == DType::BF16 { "bf16" } else { "fp32" };
    let name = format!(
        "pretrain-cuda {prec} {used:?} on {}",
        devices::describe(device)
    );
    (device, dtype, name)
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

/// Median seconds per training step of `model` placed on `(device, dtype)`, on batches of
/// `(b, t)` random tokens, after `warmup` untimed steps; and the mean CPU seconds (all threads)
/// per timed step, which on a shared machine moves less than wall time when other jobs take the
/// cores. `PROFILE=1` prints where the time goes: per op, and per phase.
fn timed_steps(
    model: &Gpt,
    (device, dtype): (Device, DType),
    (b, t): (usize, usize),
    (warmup, steps): (usize, usize),
) -> (f64, Option<f64>) {
    let placed = model.to(device, dtype);
    let params: Vec<Tensor> = placed
        .params()
        .into_iter()
        .map(|(_, p)| p.clone())
        .collect();
    let values: Vec<Tensor> = model.params().into_iter().map(|(_, p)| p.clone()).collect();
    let refs: Vec<&Tensor> = params.iter().collect();
    let vrefs: Vec<&Tensor> = values.iter().collect();
    let mut opt = AdamW::new(AdamWConfig::default(), &refs, &vrefs);
    let mut tokens = token_stream(model.config.vocab_size);
    let profile = std::env::var("PROFILE").is_ok_and(|v| v == "1");
    let (mut times, mut phases, mut cpu_start) = (Vec::new(), [0.0f64; 3], None);
    for step in 0..warmup + steps {
        pretrain::tensor::profile::enable(profile && step >= warmup);
        if step == warmup {
            cpu_start = process_cpu_seconds();
        }
        let (ids, targets) = (tokens(b * t), tokens(b * t));
        let t0 = Instant::now();
        let loss = placed.loss(&ids, &targets, b, t);
        let t1 = Instant::now();
        loss.backward();
        let t2 = Instant::now();
        opt.update(&refs, 1e-4, 1.0);
        params.iter().for_each(|p| p.zero_grad());
        devices::synchronize(device);
        let secs = t0.elapsed().as_secs_f64();
        if device != Device::Cpu {
            eprintln!("step {step}: loss {:.4}, {:.1} ms", loss.item(), secs * 1e3);
        }
        if step >= warmup {
            // The warm-up steps fill caches and the allocator, and compile the kernels.
            times.push(secs);
            let d = [t1 - t0, t2 - t1, t2.elapsed()].map(|d| d.as_secs_f64());
            phases.iter_mut().zip(d).for_each(|(p, d)| *p += d);
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
