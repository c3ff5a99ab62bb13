//! The training loop end to end on synthetic shards: the loss drops, resume is bit-identical,
//! a NaN stops training and keeps the last good checkpoint, and KV-cache sampling matches a full
//! recompute.

use pretrain::dataset::shard::write_shard;
use pretrain::model::config::GptConfig;
use pretrain::model::gpt::Gpt;
use pretrain::sample::{KvCache, SamplingConfig, generate};
use pretrain::train::optim::AdamWConfig;
use pretrain::train::schedule::ScheduleKind;
use pretrain::train::trainer::{TrainConfig, checkpoint_dir, load_model, train};
use std::path::{Path, PathBuf};

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pretrain-train-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Shards of a learnable sequence: a repeating pattern with a little noise.
fn shards(dir: &Path, vocab: usize) {
    let mut rng = pretrain::tensor::Rng::new(7);
    let mut tokens = Vec::new();
    for i in 0..6000u64 {
        let noise = rng.uniform() < 1.0 / 16.0;
        tokens.push(if noise {
            rng.below(vocab as u64) as u32
        } else {
            (i % 13) as u32 * 3 % vocab as u32
        });
    }
    write_shard(&dir.join("train_000000.bin"), &tokens[..5000], vocab).unwrap();
    write_shard(&dir.join("val_000000.bin"), &tokens[5000..], vocab).unwrap();
}

fn config(data: &Path, out: &Path, steps: usize) -> TrainConfig {
    TrainConfig {
        data: data.to_path_buf(),
        layout: Default::default(),
        out: out.to_path_buf(),
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

fn losses(out: &Path) -> Vec<String> {
    // Compare the printed losses as text: bit-identical means the same digits.
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!("{} {}", v["loss"], v["grad_norm"])
        })
        .collect()
}

#[test]
fn loss_drops_and_resume_is_bit_identical() {
    let dir = tmp("resume");
    let data = dir.join("shards");
    std::fs::create_dir_all(&data).unwrap();
    shards(&data, 50);

    let straight = dir.join("straight");
    let s = train(&config(&data, &straight, 30), false).unwrap();
    let first: f32 = losses(&straight)[0]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(s.last_loss < 0.6 * first, "loss {first} -> {}", s.last_loss);
    let unigram = s.unigram_val_loss.unwrap();
    assert!(
        s.val_loss.unwrap() < unigram as f32,
        "val {:?} vs unigram {unigram}",
        s.val_loss
    );

    let split = dir.join("split");
    train(&config(&data, &split, 15), false).unwrap();
    let mut more = config(&data, &split, 15);
    more.steps = 30;
    train(&more, true).unwrap();
    assert_eq!(
        losses(&split),
        losses(&straight),
        "15 steps + resume + 15 steps == 30 steps"
    );

    // The checkpoint is a Hugging Face directory that our loader reads back.
    let ck = checkpoint_dir(&split);
    for f in [
        "config.json",
        "model.safetensors",
        "optimizer.safetensors",
        "trainer_state.json",
    ] {
        assert!(ck.join(f).is_file(), "missing {f}");
    }
    let a = load_model(&ck).unwrap().to_named();
    let b = load_model(&checkpoint_dir(&straight)).unwrap().to_named();
    assert_eq!(a, b, "the final weights are identical too");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nan_loss_stops_and_keeps_the_last_checkpoint() {
    let dir = tmp("nan");
    let data = dir.join("shards");
    std::fs::create_dir_all(&data).unwrap();
    shards(&data, 50);
    let out = dir.join("run");
    let mut cfg = config(&data, &out, 30);
    cfg.lr = 1e30; // blows the weights up within a few steps
    cfg.warmup = 0;
    cfg.grad_clip = 0.0;
    cfg.adamw.weight_decay = 0.0;
    cfg.checkpoint_every = 1;
    let err = format!("{:#}", train(&cfg, false).unwrap_err());
    assert!(err.contains("the loss became"), "{err}");
    let state = std::fs::read_to_string(checkpoint_dir(&out).join("trainer_state.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert!(
        v["step"].as_u64().unwrap() >= 1,
        "a checkpoint from before the NaN survives"
    );
    let model = load_model(&checkpoint_dir(&out)).unwrap();
    assert!(
        model
            .to_named()
            .iter()
            .all(|t| t.data.iter().all(|x| x.is_finite()))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn kv_cache_generation_matches_full_recompute() {
    let config = GptConfig {
        n_layer: 2,
        n_head: 2,
        n_embd: 16,
        block_size: 12,
        vocab_size: 31,
    };
    let model = Gpt::new(config, 9);
    let prompt = [3u32, 1, 4, 1, 5];
    let greedy = SamplingConfig {
        temperature: 0.0,
        top_k: 0,
    };
    // 20 new tokens overflow the 12-token context, so the cache is rebuilt on the way.
    let cached = generate(&model, &prompt, 20, &greedy, 0, None, |_| {});
    let mut seq = prompt.to_vec();
    for &got in &cached {
        // Without a cache: run the same window the generator keeps, pick the argmax.
        let logits = pretrain::tensor::no_grad(|| {
            let window = window_of(&seq, config.block_size);
            model.forward(&window, 1, window.len()).to_vec()
        });
        let v = config.vocab_size;
        let last = &logits[logits.len() - v..];
        let want = (0..v).max_by(|&a, &b| last[a].total_cmp(&last[b])).unwrap() as u32;
        assert_eq!(got, want);
        seq.push(got);
    }
    let mut cache = KvCache::new(2);
    model.forward_cached(&prompt, &mut cache);
    assert_eq!(cache.len(), prompt.len());
}

/// The context the generator attends over when it makes token number `seq.len()`: everything
/// while it fits; after a rebuild, the tokens since the last rebuild point.
fn window_of(seq: &[u32], block: usize) -> Vec<u32> {
    if seq.len() <= block {
        return seq.to_vec();
    }
    // The cache fills at `block` tokens, then restarts from the last block/2 and grows again.
    let mut start = 0;
    let mut len = block;
    while start + len < seq.len() {
        start = start + len - block / 2;
        len = block;
    }
    seq[start..].to_vec()
}
