//! `GpuGpt`'s forward, backward and optimizer sequence against the CPU model, run on the host
//! executor (`Exec::Host`: the launcher contract as naive loops), so that every offset, layout,
//! transpose flag, accumulate flag and scale is checked without a GPU. `tests/cuda_train.rs`
//! repeats these checks with the real kernels on a GPU.

use super::exec::Exec;
use super::gpt::GpuGpt;
use crate::model::config::GptConfig;
use crate::model::gpt::Gpt;
use crate::tensor::{Rng, Tensor, no_grad};
use crate::train::optim::{AdamW, AdamWConfig};
use half::bf16;

/// Small and odd: hs = 8, V = 75 (padded to 128), T = 7, B = 3.
fn config() -> GptConfig {
    GptConfig {
        n_layer: 2,
        n_head: 4,
        n_embd: 32,
        block_size: 9,
        vocab_size: 75,
    }
}
const B: usize = 3;
const T: usize = 7;

/// Every parameter random, LayerNorm gains around 1.
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

fn tokens(rng: &mut Rng, n: usize) -> Vec<u32> {
    (0..n).map(|_| (rng.next_u64() % 75) as u32).collect()
}

fn rel_err(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-30);
    let d = got
        .iter()
        .zip(want)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    d / scale
}

#[test]
fn logits_loss_and_every_gradient_match_the_cpu() {
    let model = Gpt::new(config(), 1);
    randomize(&model, 2);
    let mut rng = Rng::new(3);
    let (x, y) = (tokens(&mut rng, B * T), tokens(&mut rng, B * T));
    let want_logits = no_grad(|| model.forward(&x, B, T).to_vec());
    let loss = model.loss(&x, &y, B, T);
    let want_loss = loss.item();
    loss.backward();

    let mut g = GpuGpt::<f32>::with_exec(Exec::Host, &model, B, T).unwrap();
    let e = rel_err(&g.logits(&x).unwrap(), &want_logits);
    assert!(e < 1e-5, "logits: {e}");
    let l = g.eval_loss(&x, &y).unwrap();
    assert!(
        (l - want_loss).abs() < 1e-5 * want_loss,
        "{l} vs {want_loss}"
    );
    assert!(
        g.backward().is_err(),
        "eval_loss leaves nothing to backward"
    );

    // Two micro-batches with loss scale 1/2 each: the gradient of the mean of the two losses.
    for _ in 0..2 {
        let l = g.forward(&x, &y, 0.5).unwrap();
        assert!(
            (l - want_loss).abs() < 1e-5 * want_loss,
            "{l} vs {want_loss}"
        );
        g.backward().unwrap();
    }
    let grads = g.grads_to_host().unwrap();
    let mut sq = 0.0f64;
    for ((name, p), got) in model.params().into_iter().zip(&grads) {
        let want = p.grad().unwrap().to_vec();
        sq += want.iter().map(|&v| v as f64 * v as f64).sum::<f64>();
        let e = rel_err(got, &want);
        assert!(e < 1e-4, "gradient of {name}: relative error {e}");
    }
    let norm = g.grad_norm().unwrap();
    assert!((norm as f64 - sq.sqrt()).abs() < 1e-5 * sq.sqrt());
    g.zero_grad().unwrap();
    assert!(
        g.grads_to_host()
            .unwrap()
            .iter()
            .flatten()
            .all(|&v| v == 0.0)
    );

    // bf16 storage: the same within bf16's precision.
    let mut g = GpuGpt::<bf16>::with_exec(Exec::Host, &model, B, T).unwrap();
    let e = rel_err(&g.logits(&x).unwrap(), &want_logits);
    assert!(e < 3e-2, "bf16 logits: {e}");
}

/// Three steps of 2 micro-batches, clipped, with weight decay; the CPU trainer's arithmetic.
#[test]
fn training_steps_match_the_cpu_trainer() {
    let (cpu, gpu_side) = (Gpt::new(config(), 4), Gpt::new(config(), 4));
    let mut rng = Rng::new(5);
    let batches: Vec<(Vec<u32>, Vec<u32>)> = (0..6)
        .map(|_| (tokens(&mut rng, B * T), tokens(&mut rng, B * T)))
        .collect();
    let (lr, clip) = (1e-2, 0.5);

    let params: Vec<Tensor> = cpu.params().into_iter().map(|(_, p)| p.clone()).collect();
    let refs: Vec<&Tensor> = params.iter().collect();
    let sizes: Vec<usize> = params.iter().map(|p| p.numel()).collect();
    let mut opt = AdamW::new(AdamWConfig::default(), &sizes);
    let mut want = Vec::new();
    for step in batches.chunks(2) {
        let mut sum = 0.0;
        for (x, y) in step {
            let loss = cpu.loss(x, y, B, T);
            sum += loss.item();
            loss.mul_scalar(0.5).backward();
        }
        let norm = opt.update(&refs, lr, clip);
        params.iter().for_each(|p| p.zero_grad());
        want.push((sum / 2.0, norm));
    }

    let mut gopt = AdamW::new(AdamWConfig::default(), &sizes);
    let mut g = GpuGpt::<f32>::with_exec(Exec::Host, &gpu_side, B, T).unwrap();
    for (i, step) in batches.chunks(2).enumerate() {
        let mut sum = 0.0;
        for (x, y) in step {
            sum += g.forward(x, y, 0.5).unwrap();
            g.backward().unwrap();
        }
        let norm = g.update(&mut gopt, lr, clip).unwrap();
        g.zero_grad().unwrap();
        let (wl, wn) = want[i];
        assert!(
            (sum / 2.0 - wl).abs() < 1e-5 * wl,
            "step {i}: loss {} vs {wl}",
            sum / 2.0
        );
        assert!(
            (norm - wn).abs() < 1e-4 * wn,
            "step {i}: norm {norm} vs {wn}"
        );
        assert!(norm > clip, "the test should exercise clipping");
    }
    assert_eq!(gopt.step, 3);

    // Weights and moments back on the CPU: the CPU optimizer's, within rounding. Adam divides
    // by √v, which magnifies rounding where a gradient is tiny, hence 1e-3 on the weights.
    g.to_cpu(&gpu_side).unwrap();
    g.save_optimizer(&mut gopt).unwrap();
    for (((name, a), (_, b)), i) in cpu.params().into_iter().zip(gpu_side.params()).zip(0..) {
        let e = rel_err(&b.to_vec(), &a.to_vec());
        assert!(e < 1e-3, "{name}: weights differ by {e}");
        assert!(rel_err(&gopt.m[i], &opt.m[i]) < 1e-3, "{name}: m");
        assert!(rel_err(&gopt.v[i], &opt.v[i]) < 1e-3, "{name}: v");
    }

    // The optimizer state survives a round trip through a fresh model (what --resume does).
    let mut h = GpuGpt::<f32>::with_exec(Exec::Host, &gpu_side, B, T).unwrap();
    h.load_optimizer(&gopt).unwrap();
    let mut back = AdamW::new(AdamWConfig::default(), &sizes);
    h.save_optimizer(&mut back).unwrap();
    assert_eq!(back.m, gopt.m);
    assert_eq!(back.v, gopt.v);
}

/// The trainer routed through `GpuTrainer` (host executor): the same curve as on the CPU, a
/// checkpoint the CPU reads back with the same validation loss, and a resume that continues the
/// same curve (the optimizer state made the round trip).
#[test]
fn trainer_on_the_executor_matches_the_cpu_and_resumes() {
    use crate::dataset::loader::Loader;
    use crate::dataset::shard::write_shard;
    use crate::train::schedule::ScheduleKind;
    use crate::train::trainer::{
        Device, TrainConfig, checkpoint_dir, evaluate, load_model, train, train_on,
    };
    let dir = std::env::temp_dir().join(format!("pretrain-exec-trainer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.join("shards");
    std::fs::create_dir_all(&data).unwrap();
    let mut rng = Rng::new(9);
    let stream: Vec<u32> = (0..3000u32)
        .map(|i| {
            if rng.uniform() < 0.05 {
                (rng.next_u64() % 50) as u32
            } else {
                i % 13 * 3
            }
        })
        .collect();
    write_shard(&data.join("train_000000.bin"), &stream[..2500], 50).unwrap();
    write_shard(&data.join("val_000000.bin"), &stream[2500..], 50).unwrap();
    let cfg = |out: &str, steps: usize| TrainConfig {
        data: data.clone(),
        out: dir.join(out),
        init_from: None,
        model: GptConfig {
            n_layer: 2,
            n_head: 2,
            n_embd: 32,
            block_size: 16,
            vocab_size: 50,
        },
        steps,
        batch_size: 4,
        seq_len: 16,
        grad_accum: 2,
        lr: 1e-2,
        min_lr: 1e-3,
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
    };
    let metrics = |out: &str| -> Vec<(f64, f64)> {
        std::fs::read_to_string(dir.join(out).join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["loss"].as_f64().unwrap(),
                    v["grad_norm"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let host = Device {
        exec: Some(Exec::Host),
        precision: crate::tensor::cuda::Precision::F32,
    };
    let cpu = train(&cfg("cpu", 10), false).unwrap();
    let gpu = train_on(&cfg("exec", 10), false, &host).unwrap();
    let (mc, mg) = (metrics("cpu"), metrics("exec"));
    assert_eq!(mc.len(), 10);
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
    let (vc, vg) = (cpu.val_loss.unwrap(), gpu.val_loss.unwrap());
    assert!((vc - vg).abs() <= 1e-4 * vc, "val loss {vc} vs {vg}");

    let model = load_model(&checkpoint_dir(&dir.join("exec"))).unwrap();
    let mut val = Loader::new(&data, "val", 4, 16, 0, true).unwrap();
    let v = evaluate(&model, &mut val, 2).unwrap();
    assert!(
        (v - vg).abs() <= 1e-5 * vg,
        "checkpoint on the CPU {v} vs {vg}"
    );

    train_on(&cfg("split", 5), false, &host).unwrap();
    train_on(&cfg("split", 10), true, &host).unwrap();
    let ms = metrics("split");
    assert_eq!(ms.len(), 10);
    for (i, (a, b)) in mg.iter().zip(&ms).enumerate() {
        assert!(
            (a.0 - b.0).abs() <= 1e-6 * a.0,
            "step {i}: {a:?} vs resumed {b:?}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The setup of `tests/cuda_train.rs::ten_steps_match_the_cpu_in_fp32_and_bf16_follows` on the
/// host executor: checks that its tolerances hold where only rounding differs (fp32 vs CPU)
/// and where storage is bf16.
#[test]
fn gpu_test_tolerances_hold_on_the_host() {
    let config = GptConfig {
        n_layer: 2,
        n_head: 4,
        n_embd: 64,
        block_size: 32,
        vocab_size: 300,
    };
    let (b, t, steps, accum, lr) = (4, 32, 10, 2, 1e-3);
    // The test's corpus: a period-13 pattern with 5% noise.
    let mut rng = Rng::new(11);
    let data: Vec<u32> = (0..6000)
        .map(|i| {
            if rng.uniform() < 0.05 {
                (rng.next_u64() % 300) as u32
            } else {
                (i as u32 % 13) * 23 % 300
            }
        })
        .collect();
    let mut rng = Rng::new(5);
    let batches: Vec<(Vec<u32>, Vec<u32>)> = (0..steps * accum)
        .map(|_| {
            let (mut x, mut y) = (Vec::new(), Vec::new());
            for _ in 0..b {
                let o = (rng.next_u64() % (data.len() - t - 1) as u64) as usize;
                x.extend_from_slice(&data[o..o + t]);
                y.extend_from_slice(&data[o + 1..o + t + 1]);
            }
            (x, y)
        })
        .collect();
    let sizes: Vec<usize> = Gpt::new(config, 7)
        .params()
        .iter()
        .map(|(_, p)| p.numel())
        .collect();
    fn run<X: super::GpuFloat>(
        model: &Gpt,
        batches: &[(Vec<u32>, Vec<u32>)],
        sizes: &[usize],
        (b, t, accum, lr): (usize, usize, usize, f32),
    ) -> Vec<(f32, f32)> {
        let mut opt = AdamW::new(AdamWConfig::default(), sizes);
        let mut g = GpuGpt::<X>::with_exec(Exec::Host, model, b, t).unwrap();
        let mut curve = Vec::new();
        for step in batches.chunks(accum) {
            let mut sum = 0.0f64;
            for (x, y) in step {
                sum += g.forward(x, y, 1.0 / accum as f32).unwrap() as f64;
                g.backward().unwrap();
            }
            let norm = g.update(&mut opt, lr, 1.0).unwrap();
            g.zero_grad().unwrap();
            curve.push(((sum / accum as f64) as f32, norm));
        }
        curve
    }
    let shape = (b, t, accum, lr);
    let fp32 = run::<f32>(&Gpt::new(config, 7), &batches, &sizes, shape);
    let bf = run::<bf16>(&Gpt::new(config, 7), &batches, &sizes, shape);
    for (i, (c, g)) in fp32.iter().zip(&bf).enumerate() {
        assert!(
            (c.0 - g.0).abs() <= 2e-2 * c.0,
            "step {i}: {c:?} vs bf16 {g:?}"
        );
    }
    assert!(
        bf[steps - 1].0 < bf[0].0 - 0.1,
        "bf16 loss does not fall: {bf:?}"
    );
}
