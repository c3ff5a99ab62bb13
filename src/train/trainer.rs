//! The training loop: a batch in, the loss out, backward, clip, AdamW, repeat; with evaluation,
//! samples, metrics, checkpoints and an exact resume.
//!
//! A run folder holds `train_config.json` (the exact settings), `metrics.jsonl`, `loss.svg` and
//! `checkpoint/`: a Hugging Face GPT-2 directory (`config.json`, `model.safetensors`, the tokenizer
//! files) plus the trainer state (`optimizer.safetensors`, `trainer_state.json`) that `--resume`
//! needs to continue bit for bit.

use super::metrics::{MetricsLog, StepMetrics};
use super::optim::{AdamW, AdamWConfig};
use super::schedule::{Schedule, ScheduleKind};
use crate::dataset::loader::{Loader, Position};
use crate::model::checkpoint::{
    NamedTensor, load_gpt2_params, read_safetensors, safetensors_bytes, write_dir_atomic,
};
use crate::model::config::GptConfig;
use crate::model::gpt::Gpt;
use crate::sample::{SamplingConfig, generate};
use crate::tensor::cuda::{DeviceArg, Gpu, Precision};
use crate::tensor::{Tensor, no_grad};
use crate::tokenizer::Tokenizer;
use crate::{detail, info};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Every setting of a run; saved as `train_config.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainConfig {
    pub data: PathBuf,
    pub out: PathBuf,
    pub init_from: Option<PathBuf>,
    pub model: GptConfig,
    pub steps: usize,
    pub batch_size: usize,
    pub seq_len: usize,
    pub grad_accum: usize,
    pub lr: f32,
    pub min_lr: f32,
    pub warmup: usize,
    pub schedule: ScheduleKind,
    pub adamw: AdamWConfig,
    /// Global gradient-norm clip; 0 turns it off.
    pub grad_clip: f32,
    pub sequential: bool,
    pub seed: u64,
    /// Evaluate on the validation split every this many steps (and at the end); 0 = only at the end.
    pub eval_every: usize,
    pub eval_batches: usize,
    /// Print a sample every this many steps; 0 = never.
    pub sample_every: usize,
    /// Save a checkpoint every this many steps (and at the end); 0 = only at the end.
    pub checkpoint_every: usize,
}

impl TrainConfig {
    pub fn schedule(&self) -> Schedule {
        Schedule {
            kind: self.schedule,
            max_lr: self.lr,
            min_lr: self.min_lr,
            warmup_steps: self.warmup,
            total_steps: self.steps,
        }
    }

    fn tokens_per_step(&self) -> usize {
        self.batch_size * self.seq_len * self.grad_accum
    }
}

/// What a finished (or interrupted) run reports.
#[derive(Clone, Debug, Default)]
pub struct TrainSummary {
    pub steps_done: usize,
    pub last_loss: f32,
    pub val_loss: Option<f32>,
    /// Cross-entropy of the validation tokens under the training set's unigram frequencies:
    /// the loss of a model that ignores context.
    pub unigram_val_loss: Option<f64>,
    pub bits_per_byte: Option<f64>,
    pub tokens_per_sec: f64,
    pub mfu: f64,
    pub interrupted: bool,
    pub checkpoint: PathBuf,
}

/// Data and optimizer state saved beside the weights.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct TrainerState {
    /// Optimizer steps completed.
    step: usize,
    train_position: Position,
}

/// Where the training steps run: the CPU (`exec: None`), or a GPU with a storage precision.
/// Everything else (data, schedule, metrics, checkpoints, samples) is the same either way.
#[derive(Clone, Default)]
pub struct Device {
    pub gpu: Option<Arc<Gpu>>,
    pub precision: Precision,
}

/// `--precision`: the storage type of weights and activations on the GPU.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrecisionArg {
    /// fp32 everywhere: the mode that matches the CPU.
    Fp32,
    /// bf16 weights and activations, fp32 master weights and optimizer state.
    Bf16,
}

impl Device {
    /// Resolves `--device` and `--precision` (default bf16 on a GPU). Without a GPU it prints the
    /// one-line fallback (see `cuda::select`) and the precision is ignored.
    pub fn from_args(device: DeviceArg, precision: Option<PrecisionArg>) -> Device {
        let gpu = crate::tensor::cuda::select(device);
        let precision = match precision {
            Some(PrecisionArg::Fp32) => Precision::F32,
            Some(PrecisionArg::Bf16) | None => Precision::Bf16,
        };
        match gpu {
            Some(g) => Device::cuda(g, precision),
            None => Device::default(),
        }
    }

    /// This GPU, in this precision.
    pub fn cuda(gpu: Arc<Gpu>, precision: Precision) -> Device {
        Device {
            gpu: Some(gpu),
            precision,
        }
    }
}

/// Set by the Ctrl-C handler; the loop saves a checkpoint after the current step and stops.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// The checkpoint folder of a run.
pub fn checkpoint_dir(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

/// Train according to `cfg` on the CPU. With `resume`, continue from `cfg.out/checkpoint`.
pub fn train(cfg: &TrainConfig, resume: bool) -> Result<TrainSummary> {
    train_on(cfg, resume, &Device::default())
}

/// [`train`] with the steps on `device`. On a GPU the CPU model is a copy, refreshed from the
/// GPU for samples and checkpoints.
pub fn train_on(cfg: &TrainConfig, resume: bool, device: &Device) -> Result<TrainSummary> {
    std::fs::create_dir_all(&cfg.out).with_context(|| format!("creating {}", cfg.out.display()))?;
    let ckpt = checkpoint_dir(&cfg.out);
    let mut train_data = Loader::new(
        &cfg.data,
        "train",
        cfg.batch_size,
        cfg.seq_len,
        cfg.seed,
        cfg.sequential,
    )?;
    let mut val_data = match Loader::new(&cfg.data, "val", cfg.batch_size, cfg.seq_len, 0, true) {
        Ok(l) => Some(l),
        Err(e) => {
            info!("no validation split ({e:#}); evaluating on nothing");
            None
        }
    };
    let tokenizer = crate::tokenizer::formats::load(&cfg.data, None).ok();
    let eos = tokenizer
        .as_ref()
        .and_then(|t| t.special_id(crate::tokenizer::ENDOFTEXT));

    // The model: resumed, initialised from a checkpoint, or fresh.
    let (model, mut opt, start) = if resume {
        let (model, opt, state) = load_run(&ckpt, cfg)?;
        train_data.restore(state.train_position)?;
        info!("resuming {} at step {}", ckpt.display(), state.step);
        (model, opt, state.step)
    } else {
        let model = match &cfg.init_from {
            Some(dir) => load_model(dir)?,
            None => Gpt::new(cfg.model, cfg.seed),
        };
        let sizes: Vec<usize> = model.params().iter().map(|(_, p)| p.numel()).collect();
        (model, AdamW::new(cfg.adamw, &sizes), 0)
    };
    check_fits(&model.config, &train_data, cfg)?;
    // Record the model actually trained (from a checkpoint it may differ from the flags).
    let saved = TrainConfig {
        model: model.config,
        ..cfg.clone()
    };
    let config_json = serde_json::to_string_pretty(&saved)?;
    crate::cli::write_atomic(&cfg.out.join("train_config.json"), config_json.as_bytes())?;
    let n_params = model.config.num_params();
    info!(
        "model: {} layers, {} heads, width {}, context {}, vocab {}: {} parameters",
        model.config.n_layer,
        model.config.n_head,
        model.config.n_embd,
        model.config.block_size,
        model.config.vocab_size,
        group_digits(n_params)
    );

    if let Some(g) = &device.gpu {
        bail!(
            "training on {} is not wired to the tensor engine yet",
            g.describe()
        );
    }
    let peak = measured_peak_gflops();
    let flops_per_token = flops_per_token(&model.config, cfg.seq_len);
    let params: Vec<Tensor> = model.params().into_iter().map(|(_, p)| p.clone()).collect();
    let param_refs: Vec<&Tensor> = params.iter().collect();
    let schedule = cfg.schedule();
    let mut log = MetricsLog::open(&cfg.out, resume.then_some(start))?;
    let mut summary = TrainSummary {
        checkpoint: ckpt.clone(),
        ..Default::default()
    };
    if let Some(val) = &val_data {
        summary.unigram_val_loss = Some(unigram_loss(
            train_data.tokens(),
            val.tokens(),
            model.config.vocab_size,
        ));
    }
    let bytes_per_token = match (&tokenizer, &val_data) {
        (Some(tok), Some(val)) => bytes_per_token(tok, val.tokens()),
        _ => None,
    };

    if start >= cfg.steps {
        info!("the run is already at step {start}; raise --steps to train further");
    }
    summary.steps_done = start;
    let bar = crate::cli::progress(cfg.steps as u64, "train");
    bar.set_position(start as u64);
    let run_start = Instant::now();
    let mut tokens_done = 0usize;
    for step in start..cfg.steps {
        let t0 = Instant::now();
        let lr = schedule.lr(step);
        let mut loss_sum = 0.0f64;
        for _ in 0..cfg.grad_accum {
            let (x, y) = train_data.next_batch();
            let loss = model.loss(&x, &y, cfg.batch_size, cfg.seq_len);
            let l = loss.item();
            if !l.is_finite() {
                bar.abandon();
                bail!(
                    "the loss became {l} at step {step}; stopping without saving, so the last good \
                     checkpoint in {} is kept (try a lower --lr or a --grad-clip)",
                    ckpt.display()
                );
            }
            loss_sum += l as f64;
            if cfg.grad_accum > 1 {
                loss.mul_scalar(1.0 / cfg.grad_accum as f64).backward()
            } else {
                loss.backward()
            }
        }
        let grad_norm = opt.update(&param_refs, lr, cfg.grad_clip);
        params.iter().for_each(|p| p.zero_grad());
        let done = step + 1;
        let secs = t0.elapsed().as_secs_f64();
        tokens_done += cfg.tokens_per_step();
        let tok_per_sec = cfg.tokens_per_step() as f64 / secs;
        let loss = (loss_sum / cfg.grad_accum as f64) as f32;
        let mfu = tok_per_sec * flops_per_token / (peak * 1e9);

        let last = done == cfg.steps;
        let mut val_loss = None;
        if let Some(val) = val_data.as_mut()
            && (last || (cfg.eval_every > 0 && done % cfg.eval_every == 0))
        {
            let v = evaluate(&model, val, cfg.eval_batches)?;
            val_loss = Some(v);
            let bpb = bytes_per_token.map(|bpt| v as f64 / std::f64::consts::LN_2 / bpt);
            summary.bits_per_byte = bpb;
            bar.suspend(|| {
                info!(
                    "step {done}: val loss {v:.4}, perplexity {:.2}{}",
                    (v as f64).exp(),
                    bpb.map(|b| format!(", {b:.3} bits per byte"))
                        .unwrap_or_default()
                )
            });
        }
        log.log(&StepMetrics {
            step: done,
            loss,
            lr,
            grad_norm,
            tokens_per_sec: tok_per_sec,
            val_loss,
        })?;
        if let Some(tok) = &tokenizer
            && cfg.sample_every > 0
            && done % cfg.sample_every == 0
        {
            let text = sample_text(&model, tok, 32, cfg.seed + done as u64);
            bar.suspend(|| info!("step {done} sample: {text:?}"));
        }
        let interrupted = STOP.load(Ordering::Relaxed);
        if last || interrupted || (cfg.checkpoint_every > 0 && done % cfg.checkpoint_every == 0) {
            let state = TrainerState {
                step: done,
                train_position: train_data.position(),
            };
            save_run(&ckpt, &model, &opt, &state, cfg, eos)?;
            log.redraw()?;
            detail!("saved {}", ckpt.display());
        }
        bar.set_position(done as u64);
        bar.set_message(format!(
            "loss {loss:.4} | {:.0} tok/s | MFU {:.1}%",
            tok_per_sec,
            100.0 * mfu
        ));
        summary.steps_done = done;
        summary.last_loss = loss;
        summary.val_loss = val_loss.or(summary.val_loss);
        if interrupted {
            summary.interrupted = true;
            break;
        }
    }
    bar.finish_and_clear();
    let secs = run_start.elapsed().as_secs_f64();
    summary.tokens_per_sec = tokens_done as f64 / secs.max(1e-9);
    summary.mfu = summary.tokens_per_sec * flops_per_token / (peak * 1e9);
    if summary.steps_done == start && !resume {
        log.redraw()?;
    }
    Ok(summary)
}

/// Mean loss over `batches` validation batches, always the same ones (read from the start).
pub fn evaluate(model: &Gpt, val: &mut Loader, batches: usize) -> Result<f32> {
    let (b, t) = val.shape();
    no_grad(|| evaluate_with(val, batches, |x, y| Ok(model.loss(x, y, b, t).item())))
}

/// [`evaluate`] with any loss function of a batch (`ids`, `targets`), e.g. the GPU model's.
pub fn evaluate_with(
    val: &mut Loader,
    batches: usize,
    mut loss: impl FnMut(&[u32], &[u32]) -> Result<f32>,
) -> Result<f32> {
    let start = val.position();
    let mut sum = 0.0f64;
    let n = batches.max(1);
    for _ in 0..n {
        let (x, y) = val.next_batch();
        sum += loss(&x, &y)? as f64;
    }
    val.restore(start)?;
    Ok((sum / n as f64) as f32)
}

/// The loss of the unigram model: cross-entropy of `val` under token frequencies counted on
/// `train` (add-one smoothing). A trained model should beat it clearly.
pub fn unigram_loss(train: &[u32], val: &[u32], vocab: usize) -> f64 {
    let mut counts = vec![1.0f64; vocab];
    for &t in train {
        if let Some(c) = counts.get_mut(t as usize) {
            *c += 1.0;
        }
    }
    let total: f64 = counts.iter().sum();
    let nll: f64 = val
        .iter()
        .map(|&t| -(counts.get(t as usize).copied().unwrap_or(1.0) / total).ln())
        .sum();
    nll / val.len().max(1) as f64
}

/// Average UTF-8 bytes per token of `tokens` (special tokens excluded), for bits per byte.
fn bytes_per_token(tok: &Tokenizer, tokens: &[u32]) -> Option<f64> {
    let ordinary: Vec<u32> = tokens
        .iter()
        .copied()
        .filter(|&t| !tok.is_special(t))
        .collect();
    let bytes = tok.decode_bytes(&ordinary).ok()?.len();
    (!tokens.is_empty() && bytes > 0).then(|| bytes as f64 / tokens.len() as f64)
}

/// A short sample from the model, starting from `<|endoftext|>` (a document boundary).
fn sample_text(model: &Gpt, tok: &Tokenizer, n: usize, seed: u64) -> String {
    let Some(start) = tok.special_id(crate::tokenizer::ENDOFTEXT) else {
        return String::new();
    };
    let cfg = SamplingConfig {
        temperature: 0.8,
        top_k: 40,
    };
    let ids = generate(model, &[start], n, &cfg, seed, Some(start), |_| {});
    tok.decode(&ids).unwrap_or_default()
}

/// Training FLOPs per token: 6 per weight that a token multiplies (forward 2, backward 4) plus
/// attention's `12·L·T·C` (PaLM's estimate). Position embeddings are lookups, not multiplies.
pub fn flops_per_token(c: &GptConfig, t: usize) -> f64 {
    let weights = c.num_params() - c.block_size * c.n_embd;
    6.0 * weights as f64 + 12.0 * (c.n_layer * t * c.n_embd) as f64
}

/// This machine's matmul throughput (GFLOP/s), measured once: the denominator of MFU.
pub fn measured_peak_gflops() -> f64 {
    use crate::tensor::cpu::matmul::{Layout, gemm};
    let n = 1024;
    let a = vec![0.5f32; n * n];
    let b = vec![0.25f32; n * n];
    let mut c = vec![0.0f32; n * n];
    let mut best = f64::INFINITY;
    // The best of several runs: the first warms the caches and the thread pool.
    for _ in 0..8 {
        let t = Instant::now();
        gemm(n, n, n, &a, Layout::N, &b, Layout::N, &mut c, false);
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (n * n * n) as f64 / best / 1e9
}

/// The shards must fit the model: every token id below its vocabulary, windows within its context.
fn check_fits(model: &GptConfig, data: &Loader, cfg: &TrainConfig) -> Result<()> {
    if data.vocab_size() as usize > model.vocab_size {
        bail!(
            "{}: the shards use a vocabulary of {} but the model has {}",
            cfg.data.display(),
            data.vocab_size(),
            model.vocab_size
        );
    }
    if cfg.seq_len > model.block_size {
        bail!(
            "--seq-len {} is longer than the model's context (block_size {})",
            cfg.seq_len,
            model.block_size
        );
    }
    Ok(())
}

/// Load a model from a checkpoint directory (ours, or a Hugging Face GPT-2 download).
pub fn load_model(dir: &Path) -> Result<Gpt> {
    let config = GptConfig::from_hf_json(&dir.join("config.json"))?;
    let params = load_gpt2_params(&dir.join("model.safetensors"), &config)?;
    Ok(Gpt::from_named(config, params))
}

fn load_run(dir: &Path, cfg: &TrainConfig) -> Result<(Gpt, AdamW, TrainerState)> {
    let model = load_model(dir)?;
    let path = dir.join("trainer_state.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (needed by --resume)", path.display()))?;
    let state: TrainerState = serde_json::from_str(&text)
        .with_context(|| format!("{}: bad trainer state", path.display()))?;
    let (tensors, _) = read_safetensors(&dir.join("optimizer.safetensors"))?;
    let names: Vec<String> = model.params().into_iter().map(|(n, _)| n).collect();
    let sizes: Vec<usize> = model.params().iter().map(|(_, p)| p.numel()).collect();
    let mut opt = AdamW::new(cfg.adamw, &sizes);
    opt.step = state.step as u64;
    for t in tensors {
        let (kind, name) = t.name.split_once('.').unwrap_or(("", &t.name));
        let i = names
            .iter()
            .position(|n| n == name)
            .with_context(|| format!("optimizer.safetensors: {} names no parameter", t.name))?;
        if t.data.len() != sizes[i] {
            bail!(
                "optimizer.safetensors: {} has {} values, expected {}",
                t.name,
                t.data.len(),
                sizes[i]
            );
        }
        match kind {
            "m" => opt.m[i] = t.data,
            "v" => opt.v[i] = t.data,
            _ => bail!("optimizer.safetensors: unexpected tensor {}", t.name),
        }
    }
    Ok((model, opt, state))
}

fn save_run(
    dir: &Path,
    model: &Gpt,
    opt: &AdamW,
    state: &TrainerState,
    cfg: &TrainConfig,
    eos: Option<u32>,
) -> Result<()> {
    let mut files: Vec<(&str, Vec<u8>)> = vec![
        (
            "config.json",
            serde_json::to_vec_pretty(&model.config.to_hf_json(eos))?,
        ),
        // Hugging Face's loader insists on the metadata entry {"format": "pt"}.
        (
            "model.safetensors",
            safetensors_bytes(&model.to_named(), Some(pt_format()))?,
        ),
    ];
    let names: Vec<String> = model.params().into_iter().map(|(n, _)| n).collect();
    let mut moments = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let shape = vec![opt.m[i].len()];
        moments.push(NamedTensor {
            name: format!("m.{name}"),
            shape: shape.clone(),
            data: opt.m[i].clone(),
        });
        moments.push(NamedTensor {
            name: format!("v.{name}"),
            shape,
            data: opt.v[i].clone(),
        });
    }
    files.push(("optimizer.safetensors", safetensors_bytes(&moments, None)?));
    files.push(("trainer_state.json", serde_json::to_vec_pretty(state)?));
    for name in ["tokenizer.json", "vocab.json", "merges.txt"] {
        if let Ok(bytes) = std::fs::read(cfg.data.join(name)) {
            files.push((name, bytes));
        }
    }
    write_dir_atomic(dir, &files)
}

/// The safetensors metadata `{"format": "pt"}` that `from_pretrained` checks for.
fn pt_format() -> std::collections::HashMap<String, String> {
    [("format".to_string(), "pt".to_string())]
        .into_iter()
        .collect()
}

/// `1234567` → `"1,234,567"`.
pub fn group_digits(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
