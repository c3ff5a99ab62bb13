//! The one GPT on a GPU against the same GPT on the CPU: the same tiny model, the same batches,
//! the same code; only `Gpt::to(Device::Cuda(0), dtype)` differs. Without a GPU the GPU is the
//! CPU emulator of `tools/cuda-emu`, which runs the real kernels through the real launchers.
//!
//! - forward logits, loss and every parameter's gradient on the GPU (f32) equal the CPU's;
//! - 10 training steps (gradient accumulation, clipping, weight decay) give the same losses and
//!   gradient norms in f32, and bf16 follows;
//! - the trainer on the GPU writes checkpoints the CPU loads with the same validation loss, and
//!   a `--resume` on the GPU continues bit for bit.
//!
//! Tolerances (f32): the GPU sums in another order (tiles, warps), so values differ by
//! rounding only, about 1e-6 relative; the bounds leave a margin of about 100. bf16 keeps 8
//! bits of mantissa (relative rounding 2⁻⁹ ≈ 2e-3 per value), and in bf16 the weights
//! themselves are rounded, so the bf16 model is a slightly different model: measured here, its
//! logits differ by 8.4e-3 of the largest (bound 2e-2), its loss at init by 9e-5 (bound 1e-3),
//! and its training losses follow the f32 run's within 5.4e-4 over 10 steps (bound 2e-3).

use pretrain::dataset::shard::write_shard;
use pretrain::model::config::GptConfig;
use pretrain::model::gpt::Gpt;
use pretrain::tensor::cuda::device::for_tests;
use pretrain::tensor::{DType, Device, Rng, Tensor, no_grad};
use pretrain::train::optim::{AdamW, AdamWConfig};
use pretrain::train::schedule::ScheduleKind;
use pretrain::train::trainer::{
    Placement, TrainConfig, checkpoint_dir, evaluate, load_model, train, train_on,
};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

const GPU: Device = Device::Cuda(0);

/// The GPU (device 0) for this test, and one test on it at a time (kernels compile once).
fn gpu(test: &str) -> Option<MutexGuard<'static, ()>> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for_tests(test).map(|_| guard)
}

fn config(t: usize) -> GptConfig {
    GptConfig {
        n_layer: 2,
        n_head: 4,
        n_embd: 64,
        block_size: t,
        vocab_size: 300,
    }
}

/// A learnable token stream: a period-13 pattern with 5% noise.
fn corpus(n: usize, vocab: u32) -> Vec<u32> {
    let mut rng = Rng::new(11);
    (0..n)
        .map(|i| {
            if rng.uniform() < 0.05 {
                (rng.next_u64() % vocab as u64) as u32
            } else {
                (i as u32 % 13) * 23 % vocab
            }
        })
        .collect()
}

/// `b` windows of `t` tokens and their next tokens, at random offsets.
fn batch(data: &[u32], b: usize, t: usize, rng: &mut Rng) -> (Vec<u32>, Vec<u32>) {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for _ in 0..b {
        let o = (rng.next_u64() % (data.len() - t - 1) as u64) as usize;
        x.extend_from_slice(&data[o..o + t]);
        y.extend_from_slice(&data[o + 1..o + t + 1]);
    }
    (x, y)
}

/// Every parameter random (LayerNorm gains around 1), so a swapped weight and bias shows.
fn randomize(model: &Gpt, seed: u64) {
    let mut rng = Rng::new(seed);
    for (name, p) in model.params() {
        p.with_data_mut(|d: &mut [f32]| {
            for x in d.iter_mut() {
                let r = rng.normal() as f32;
                *x = if name.contains("ln_") && name.ends_with("weight") {
                    1.0 + 0.2 * r
                } else {
                    0.1 * r
                };
            }
        });
    }
}

/// `max |got − want| / max |want|` (the lengths must agree).
fn rel_err(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-30);
    let diff = got
        .iter()
        .zip(want)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    diff / scale
}

#[test]
fn forward_and_gradients_match_the_cpu() {
    let Some(_lock) = gpu("forward_and_gradients_match_the_cpu") else {
        return;
    };
    // Odd T (29) and B (3): edges of every tile.
    let (b, t) = (3, 29);
    let model = Gpt::new(config(32), 1);
    randomize(&model, 2);
    let data = corpus(4000, 300);
    let (x, y) = batch(&data, b, t, &mut Rng::new(3));
    let want_logits = no_grad(|| model.forward(&x, b, t).to_vec());
    let loss = model.loss(&x, &y, b, t);
    let want_loss = loss.item();
    loss.backward();

    let g = model.to(GPU, DType::F32);
    let logits = no_grad(|| g.forward(&x, b, t));
    assert_eq!(logits.device(), GPU);
    let e = rel_err(&logits.to_vec(), &want_logits);
    assert!(e < 1e-5, "f32 logits: relative error {e}");
    let loss = g.loss(&x, &y, b, t);
    let l = loss.item();
    assert!(
        (l - want_loss).abs() < 1e-5 * want_loss,
        "loss {l} vs {want_loss}"
    );
    loss.backward();
    for ((name, p), (_, q)) in model.params().into_iter().zip(g.params()) {
        let (want, got) = (p.grad().unwrap(), q.grad().unwrap());
        assert_eq!(got.device(), GPU, "{name}");
        let e = rel_err(&got.to_vec(), &want.to_vec());
        assert!(e < 1e-4, "gradient of {name}: relative error {e}");
    }
    let refs = |m: &Gpt| {
        m.params()
            .into_iter()
            .map(|(_, p)| p.clone())
            .collect::<Vec<_>>()
    };
    let (pc, pg) = (refs(&model), refs(&g));
    let norm = AdamW::grad_norm(&pg.iter().collect::<Vec<_>>());
    let want_norm = AdamW::grad_norm(&pc.iter().collect::<Vec<_>>());
    assert!(
        (norm - want_norm).abs() < 1e-5 * want_norm,
        "norm {norm} vs {want_norm}"
    );

    let bf = model.to(GPU, DType::BF16);
    let e = rel_err(&no_grad(|| bf.forward(&x, b, t)).to_vec(), &want_logits);
    assert!(e < 2e-2, "bf16 logits: relative error {e}");
    let l = no_grad(|| bf.loss(&x, &y, b, t)).item();
    assert!(
        (l - want_loss).abs() < 1e-3 * want_loss,
        "bf16 loss {l} vs {want_loss}"
    );
}

/// Per step: (mean loss over the micro-batches, gradient norm).
type Curve = Vec<(f32, f32)>;

const STEPS: usize = 10;
const ACCUM: usize = 2;
const LR: f32 = 1e-3;
const CLIP: f32 = 1.0;

/// The batches of every step: `STEPS × ACCUM` micro-batches of 4 × 32.
fn batches() -> Vec<(Vec<u32>, Vec<u32>)> {
    let data = corpus(6000, 300);
    let mut rng = Rng::new(5);
    (0..STEPS * ACCUM)
        .map(|_| batch(&data, 4, 32, &mut rng))
        .collect()
}

/// The trainer's step (`train::trainer`), on whatever device the model is on.
fn train_steps(model: &Gpt, f32_values: &Gpt) -> Curve {
    let params: Vec<Tensor> = model.params().into_iter().map(|(_, p)| p.clone()).collect();
    let values: Vec<Tensor> = f32_values
        .params()
        .into_iter()
        .map(|(_, p)| p.clone())
        .collect();
    let refs: Vec<&Tensor> = params.iter().collect();
    let vrefs: Vec<&Tensor> = values.iter().collect();
    let mut opt = AdamW::new(AdamWConfig::default(), &refs, &vrefs);
    let mut curve = Vec::new();
    for step in batches().chunks(ACCUM) {
        let mut sum = 0.0f64;
        for (x, y) in step {
            let loss = model.loss(x, y, 4, 32);
            sum += loss.item() as f64;
            loss.mul_scalar(1.0 / ACCUM as f64).backward();
        }
        let norm = opt.update(&refs, LR, CLIP);
        params.iter().for_each(|p| p.zero_grad());
        curve.push(((sum / ACCUM as f64) as f32, norm));
    }
    curve
}

#[test]
fn ten_steps_match_the_cpu_in_f32_and_bf16_follows() {
    let Some(_lock) = gpu("ten_steps_match_the_cpu_in_f32_and_bf16_follows") else {
        return;
    };
    let cpu_model = Gpt::new(config(32), 7);
    let gpu_model = cpu_model.to(GPU, DType::F32);
    let bf_model = cpu_model.to(GPU, DType::BF16);
    let start = Gpt::new(config(32), 7);
    let gpu = train_steps(&gpu_model, &start);
    let bf = train_steps(&bf_model, &start);
    let cpu = train_steps(&cpu_model, &cpu_model);
    assert_eq!((cpu.len(), gpu.len()), (STEPS, STEPS));
    for (i, (c, g)) in cpu.iter().zip(&gpu).enumerate() {
        assert!(
            (c.0 - g.0).abs() <= 1e-4 * c.0,
            "step {i}: loss cpu {} gpu {}",
            c.0,
            g.0
        );
        assert!(
            (c.1 - g.1).abs() <= 1e-3 * c.1,
            "step {i}: grad norm cpu {} gpu {}",
            c.1,
            g.1
        );
    }
    // The weights after training. Adam divides by √v, so an element whose gradient is nearly
    // zero can step ±lr on either side; allow that for a handful of elements, and ask for
    // rounding-level agreement everywhere else.
    let (mut far, mut total) = (0, 0);
    for ((name, c), (_, g)) in cpu_model.params().into_iter().zip(gpu_model.params()) {
        let (c, g) = (c.to_vec(), g.to_vec());
        assert_eq!(c.len(), g.len(), "{name}");
        for (a, b) in c.iter().zip(g) {
            let d = (a - b).abs();
            assert!(d <= 2.0 * LR * STEPS as f32, "{name}: {a} vs {b}");
            far += (d > 1e-5) as usize;
            total += 1;
        }
    }
    assert!(
        far * 10_000 <= total,
        "{far} of {total} weights differ by more than 1e-5"
    );
    // bf16 follows: each loss within 2e-3 relative of the f32 run's, and it learns.
    for (i, (c, g)) in gpu.iter().zip(&bf).enumerate() {
        assert!(
            (c.0 - g.0).abs() <= 2e-3 * c.0,
            "step {i}: loss f32 {} bf16 {}",
            c.0,
            g.0
        );
    }
    assert!(
        bf[STEPS - 1].0 < bf[0].0 - 0.1,
        "bf16 loss does not fall: {bf:?}"
    );
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pretrain-devtrain-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run_config(data: &Path, out: &Path, steps: usize) -> TrainConfig {
    TrainConfig {
        data: data.to_path_buf(),
        layout: Default::default(),
        out: out.to_path_buf(),
        init_from: None,
        model: config(32),
        steps,
        batch_size: 4,
        seq_len: 32,
        grad_accum: 2,
        lr: 3e-3,
        min_lr: 3e-4,
        warmup: 2,
        schedule: ScheduleKind::Constant,
        adamw: AdamWConfig::default(),
        grad_clip: 1.0,
        sequential: false,
        seed: 5,
        eval_every: 0,
        eval_batches: 2,
        sample_every: 0,
        checkpoint_every: 0,
    }
}

/// `(loss, grad_norm)` of every step in a run's metrics.
fn metrics(out: &Path) -> Vec<(f32, f32)> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["loss"].as_f64().unwrap() as f32,
                v["grad_norm"].as_f64().unwrap() as f32,
            )
        })
        .collect()
}

#[test]
fn trainer_on_the_gpu_checkpoints_and_resumes_bit_for_bit() {
    let Some(_lock) = gpu("trainer_on_the_gpu_checkpoints_and_resumes_bit_for_bit") else {
        return;
    };
    let dir = tmp("trainer");
    let data = dir.join("shards");
    std::fs::create_dir_all(&data).unwrap();
    let tokens = corpus(8000, 300);
    write_shard(&data.join("train_000000.bin"), &tokens[..7000], 300).unwrap();
    write_shard(&data.join("val_000000.bin"), &tokens[7000..], 300).unwrap();
    let place = Placement {
        device: GPU,
        dtype: DType::F32,
    };

    // The same run on the CPU and on the GPU: the same curve.
    let cpu_out = dir.join("cpu");
    let cpu = train(&run_config(&data, &cpu_out, 6), false).unwrap();
    let gpu_out = dir.join("gpu");
    let s = train_on(&run_config(&data, &gpu_out, 6), false, &place).unwrap();
    let (mc, mg) = (metrics(&cpu_out), metrics(&gpu_out));
    assert_eq!((mc.len(), mg.len()), (6, 6));
    for (i, (c, g)) in mc.iter().zip(&mg).enumerate() {
        assert!(
            (c.0 - g.0).abs() <= 1e-4 * c.0,
            "step {i}: loss {c:?} vs {g:?}"
        );
        assert!(
            (c.1 - g.1).abs() <= 1e-3 * c.1,
            "step {i}: norm {c:?} vs {g:?}"
        );
    }
    let (vc, vg) = (cpu.val_loss.unwrap(), s.val_loss.unwrap());
    assert!((vc - vg).abs() <= 1e-4 * vc, "val loss cpu {vc} gpu {vg}");

    // The GPU run's checkpoint on the CPU: the same validation loss as the GPU measured.
    let model = load_model(&checkpoint_dir(&gpu_out)).unwrap();
    let mut val = pretrain::dataset::loader::Loader::new(&data, "val", 4, 32, 0, true).unwrap();
    let v = evaluate(&model, &mut val, 2).unwrap();
    assert!(
        (v - vg).abs() <= 1e-4 * vg,
        "checkpoint on the CPU {v} vs GPU {vg}"
    );

    // 3 steps, then --resume to 6, on the GPU: every kernel is deterministic, so the resumed
    // run repeats the straight one bit for bit, and so do the weights it saves.
    let split = dir.join("split");
    train_on(&run_config(&data, &split, 3), false, &place).unwrap();
    train_on(&run_config(&data, &split, 6), true, &place).unwrap();
    assert_eq!(metrics(&split), mg, "resumed run vs straight run");
    let weights =
        |out: &Path| std::fs::read(checkpoint_dir(out).join("model.safetensors")).unwrap();
    assert!(weights(&split) == weights(&gpu_out), "saved weights differ");

    // bf16: the resumed run repeats the straight one too (master weights round-trip in f32).
    let bf = Placement {
        device: GPU,
        dtype: DType::BF16,
    };
    let (straight, split) = (dir.join("bf"), dir.join("bf-split"));
    train_on(&run_config(&data, &straight, 4), false, &bf).unwrap();
    train_on(&run_config(&data, &split, 2), false, &bf).unwrap();
    train_on(&run_config(&data, &split, 4), true, &bf).unwrap();
    assert_eq!(
        metrics(&split),
        metrics(&straight),
        "bf16 resumed vs straight"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn training_steps_reuse_the_allocators_blocks() {
    // A handle of this test's own on the GPU (device 1: its own allocator), so no other
    // test's tensors move its counters.
    let Some(_lock) = gpu("training_steps_reuse_the_allocators_blocks") else {
        return;
    };
    use pretrain::tensor::cuda::{Gpu, device};
    let shared = device::get(0).unwrap();
    let own = if shared.is_emulated() {
        Gpu::emulated().unwrap()
    } else {
        Gpu::open(0).unwrap()
    };
    device::install(1, own.clone());
    let dev = Device::Cuda(1);
    let cpu_model = Gpt::new(config(16), 3);
    let model = cpu_model.to(dev, DType::F32);
    let params: Vec<Tensor> = model.params().into_iter().map(|(_, p)| p.clone()).collect();
    let refs: Vec<&Tensor> = params.iter().collect();
    let mut opt = AdamW::new(AdamWConfig::default(), &refs, &refs);
    let data = corpus(2000, 300);
    let mut rng = Rng::new(9);
    let mut step = || {
        let (x, y) = batch(&data, 2, 16, &mut rng);
        model.loss(&x, &y, 2, 16).backward();
        opt.update(&refs, LR, CLIP);
        params.iter().for_each(|p| p.zero_grad());
    };
    step();
    step();
    let warm = own.memory();
    for _ in 0..3 {
        step();
    }
    let after = own.memory();
    assert_eq!(
        after.driver_allocs, warm.driver_allocs,
        "steps after the first two asked the driver for memory: {warm:?} → {after:?}"
    );
    assert_eq!(
        after.in_use, warm.in_use,
        "memory in use grows step to step"
    );
    assert!(after.peak >= after.in_use && after.reserved >= after.peak);
}

#[test]
fn ops_on_two_devices_panic_naming_both() {
    let Some(_lock) = gpu("ops_on_two_devices_panic_naming_both") else {
        return;
    };
    let a = Tensor::ones(&[2, 3]);
    let b = Tensor::ones(&[2, 3]).to(GPU);
    assert_eq!(
        b.to(Device::Cpu).to_vec(),
        a.to_vec(),
        "to(cuda) then to(cpu)"
    );
    let err = std::panic::catch_unwind(|| a.add(&b)).expect_err("cpu + cuda must panic");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("two devices") && msg.contains("cpu") && msg.contains("cuda:0"),
        "{msg}"
    );
}
