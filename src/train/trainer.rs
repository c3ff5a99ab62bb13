//! The training loop: a batch in, the loss out, backward, clip, AdamW, repeat; with evaluation,
//! samples, metrics, checkpoints and an exact resume.
//!
//! A run folder holds `train_config.json` (the exact settings, see [`run_config`]),
//! `metrics.jsonl`, `loss.svg` and `checkpoint/` (see [`run_dir`]), which `--resume` continues
//! from bit for bit. One run at a time holds it, and each start repairs what a crash of the last
//! one left ([`run_lock`]). A step whose loss, gradient norm or weights are no longer finite
//! stops the run before anything is saved, so the last checkpoint is always a good one.
//!
//! The loop never asks where it runs: [`Placement`] puts the model (and so every activation,
//! gradient and optimizer moment) on the CPU or a GPU, in f32 or bf16, and the same ops follow.
//! It is split the way a step reads: [`Run::setup`], `Run::step`, [`Run::evaluate`],
//! [`Run::checkpoint`].
//!
//! Data parallel: started on several ranks ([`dist`]), each rank runs this same loop on its own
//! share of every step's micro-batches, and the gradients are summed over the ranks before
//! clipping and AdamW, so every rank applies the same update to the same weights. Rank `r`
//! trains on the micro-batch that one process with `--grad-accum` × world size would take `r`-th,
//! with the loss scaled the same way, so 2 ranks compute what one process does with
//! `--grad-accum 2`, bit for bit (a sum of two numbers does not depend on their order; from 3
//! ranks, or with `--grad-accum` above 1, the sums are grouped differently and the last bits can
//! differ). Rank 0 alone writes the run folder.
//!
//! Pipeline parallel (`--pp`): the step's forwards and backwards go through the stages of
//! [`dist::pipeline`] instead, which also updates each stage's own weights; rank 0 gathers the
//! whole model before it evaluates, samples or saves.
//!
//! Tensor parallel (`--tp N`, [`dist::tp`]): each group of `N` neighbouring ranks holds one
//! model in slices and runs the same micro-batches together; the data parallel rank and degree
//! above are then those of the group (`Layout::coords`), not of the single rank.
//!
//! With `--zero 1|2|3` the ranks shard the optimizer state, gradients and weights among
//! themselves instead of repeating them ([`dist::zero`]); the step hands over to it after
//! backward, and the numbers stay those of plain data parallel, bit for bit.

use super::dist::pipeline::Pipeline;
use super::dist::tp::TensorParallel;
use super::dist::zero::{self, HeldBytes, Zero};
use super::dist::{self, Comm, Single};
use super::inputs;
use super::metrics::{MetricsLog, StepMetrics};
use super::optim::{AdamW, AdamWConfig};
use super::run_config;
use super::run_dir::{self, Checkpoint, TrainerState};
use super::run_lock::{self, RunLock};
use super::schedule::{Schedule, ScheduleKind};
use crate::dataset::loader::Loader;
use crate::model::config::GptConfig;
use crate::model::gpt::Gpt;
use crate::sample::{SamplingConfig, generate};
use crate::tensor::devices::{self, DeviceArg};
use crate::tensor::{DType, Device, Tensor, no_grad};
use crate::tokenizer::Tokenizer;
use crate::{detail, info};
use anyhow::{Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
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
    /// How the ranks split the work (ZeRO stage, tensor and pipeline parallel degrees). Not a
    /// setting of the math: a run may resume under another layout.
    #[serde(default)]
    pub layout: dist::Layout,
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
    /// Tensor parallel: what the last step all-reduced inside a group, against the formula.
    pub tp_traffic: Option<String>,
}

/// Where the training steps run: a device, and the dtype of the parameters and activations
/// there (f32, or bf16 for mixed precision on a GPU, with f32 master weights in the optimizer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub device: Device,
    pub dtype: DType,
}

impl Default for Placement {
    fn default() -> Self {
        Placement {
            device: Device::Cpu,
            dtype: DType::F32,
        }
    }
}

/// `--precision`: the storage type of weights and activations on the GPU.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrecisionArg {
    /// fp32 everywhere: the mode that matches the CPU.
    Fp32,
    /// bf16 weights and activations, fp32 master weights and optimizer state.
    Bf16,
}

impl Placement {
    /// Resolves `--device` and `--precision` (default bf16 on a GPU). Without a GPU it prints the
    /// one-line fallback and trains in f32 on the CPU.
    pub fn from_args(device: DeviceArg, precision: Option<PrecisionArg>) -> Placement {
        match devices::select(device) {
            Device::Cpu => Placement::default(),
            device => Placement {
                device,
                dtype: match precision {
                    Some(PrecisionArg::Fp32) => DType::F32,
                    Some(PrecisionArg::Bf16) | None => DType::BF16,
                },
            },
        }
    }

    /// "the CPU in f32", "NVIDIA H200 (sm_90, 132 SMs) in bf16".
    pub fn describe(&self) -> String {
        format!(
            "{} in {}",
            devices::describe(self.device),
            self.dtype.name()
        )
    }
}

/// Set to stop: the loop saves a checkpoint after the current step and stops. The `train`
/// binary sets it on Ctrl-C and SIGTERM (`cli::signals`).
pub static STOP: AtomicBool = AtomicBool::new(false);

pub use super::run_dir::{checkpoint_dir, load_model};

/// Train according to `cfg` on the CPU. With `resume`, continue from `cfg.out/checkpoint`.
pub fn train(cfg: &TrainConfig, resume: bool) -> Result<TrainSummary> {
    train_on(cfg, resume, &Placement::default())
}

/// [`train`] with the model on `place`.
pub fn train_on(cfg: &TrainConfig, resume: bool, place: &Placement) -> Result<TrainSummary> {
    train_with(cfg, resume, place, &Single)
}

/// [`train_on`] as one rank of a data parallel run over `comm` (world size 1: the same as
/// [`train_on`]).
pub fn train_with(
    cfg: &TrainConfig,
    resume: bool,
    place: &Placement,
    comm: &dyn Comm,
) -> Result<TrainSummary> {
    let mut run = Run::setup(cfg, resume, *place, comm)?;
    let summary = run.train()?;
    run.report_memory();
    if let Some(m) = devices::memory(place.device) {
        info!(
            "GPU memory: peak {:.1} MiB in use, {:.1} MiB reserved, {} driver allocations",
            m.peak as f64 / 1048576.0,
            m.reserved as f64 / 1048576.0,
            m.driver_allocs
        );
    }
    Ok(summary)
}

/// One training run in progress: the model and optimizer on their device, the data, the logs.
pub struct Run<'a> {
    cfg: &'a TrainConfig,
    place: Placement,
    /// The other ranks of a data parallel run ([`Single`] when alone).
    comm: &'a dyn Comm,
    model: Gpt,
    params: Vec<Tensor>,
    opt: AdamW,
    train_data: Loader,
    val_data: Option<Loader>,
    tokenizer: Option<Tokenizer>,
    /// Rank 0's metrics (the other ranks write nothing).
    log: Option<MetricsLog>,
    /// The step the run starts at (0, or where `--resume` picks up).
    start: usize,
    peak_gflops: f64,
    bytes_per_token: Option<f64>,
    summary: TrainSummary,
    /// The step of the last checkpoint this run saved (or resumed from).
    saved: Option<usize>,
    /// Held by rank 0 while the run lives: no other run writes this folder.
    _lock: Option<RunLock>,
    /// This rank's stage when the run is pipeline parallel (`--pp` above 1).
    pipe: Option<Pipeline>,
    /// The tensor parallel groups, when `--tp` is above 1.
    tp: Option<TensorParallel>,
    /// The ZeRO sharding (`--zero` above 0), else `None`: plain data parallel.
    zero: Option<Zero>,
    /// What this rank held after its first step here (for the memory report).
    held: Option<HeldBytes>,
}

/// What one optimizer step measured.
struct StepResult {
    loss: f32,
    grad_norm: f32,
    secs: f64,
    /// Some rank was asked to stop (Ctrl-C, SIGTERM): every rank stops after this step.
    stop: bool,
}

impl<'a> Run<'a> {
    /// Checks the settings, locks and repairs the run folder, opens the data, builds or resumes
    /// the model and optimizer on `place`, records the config.
    pub fn setup(
        cfg: &'a TrainConfig,
        resume: bool,
        place: Placement,
        comm: &'a dyn Comm,
    ) -> Result<Run<'a>> {
        inputs::check_config(cfg)?;
        dist::tp::check_model(&cfg.model, cfg.layout.tp)?;
        inputs::check_layout(&cfg.layout, comm.world_size())?;
        let pipe = (cfg.layout.pp > 1)
            .then(|| Pipeline::new(comm, &cfg.layout, cfg.model.n_layer))
            .transpose()?;
        let root = comm.is_root();
        let lock = root
            .then(|| run_lock::open_run_folder(&cfg.out))
            .transpose()?;
        // Rank 0 has finished repairing the folder before the others read its checkpoint.
        comm.barrier();
        let (train_data, val_data) = inputs::open_data(cfg)?;
        let tokenizer = crate::tokenizer::formats::load(&cfg.data, None).ok();
        let world = comm.world_size();
        let tp = (cfg.layout.tp > 1).then(|| TensorParallel::new(comm, &cfg.layout));
        let (model, opt, start, train_data, zero) =
            build_model(cfg, resume, place, train_data, (comm, tp.as_ref()))?;
        inputs::check_fits(&model.config, &train_data, cfg, resume)?;
        if root {
            run_config::write_config(cfg, &model.config)?;
            announce(&model.config, &place, comm.world_size(), &cfg.layout);
        }
        let params: Vec<Tensor> = model.params().into_iter().map(|(_, p)| p.clone()).collect();
        let mut summary = TrainSummary {
            checkpoint: checkpoint_dir(&cfg.out),
            steps_done: start,
            ..Default::default()
        };
        let bytes_per_token = match (&tokenizer, &val_data) {
            (Some(tok), Some(val)) => bytes_per_token(tok, val.tokens()),
            _ => None,
        };
        if let Some(val) = &val_data {
            let vocab = model.config.vocab_size;
            summary.unigram_val_loss = Some(unigram_loss(train_data.tokens(), val.tokens(), vocab));
        }
        Ok(Run {
            cfg,
            place,
            comm,
            log: root
                .then(|| MetricsLog::open(&cfg.out, resume.then_some(start)))
                .transpose()?,
            model,
            params,
            opt,
            train_data,
            val_data,
            tokenizer,
            start,
            // MFU compares the global tokens/s with the peak of every rank's share of the machine.
            peak_gflops: devices::peak_gflops(place.device, place.dtype) * world as f64,
            bytes_per_token,
            summary,
            saved: resume.then_some(start),
            _lock: lock,
            pipe,
            tp,
            zero,
            held: None,
        })
    }

    /// Runs the steps from `start` to `cfg.steps` (or until Ctrl-C) and reports.
    pub fn train(&mut self) -> Result<TrainSummary> {
        let cfg = self.cfg;
        if self.start >= cfg.steps {
            info!(
                "the run is already at step {}; raise --steps to train further",
                self.start
            );
        }
        let bar = crate::cli::progress(cfg.steps as u64, "train");
        bar.set_position(self.start as u64);
        let flops_per_token = flops_per_token(&self.model.config, cfg.seq_len);
        let run_start = Instant::now();
        let tokens_per_step = cfg.tokens_per_step() * self.data_rank().1;
        for step in self.start..cfg.steps {
            let r = match self.step(step) {
                Ok(r) => r,
                Err(e) => {
                    bar.abandon();
                    return Err(e);
                }
            };
            let done = step + 1;
            let tok_per_sec = tokens_per_step as f64 / r.secs;
            let mfu = tok_per_sec * flops_per_token / (self.peak_gflops * 1e9);
            let last = done == cfg.steps;
            self.gather_stages(done, last || r.stop);
            let val_loss = if last || (cfg.eval_every > 0 && done % cfg.eval_every == 0) {
                self.evaluate_and_report(done, &bar)?
            } else {
                None
            };
            self.log_step(&StepMetrics {
                step: done,
                loss: r.loss,
                lr: cfg.schedule().lr(step),
                grad_norm: r.grad_norm,
                tokens_per_sec: tok_per_sec,
                val_loss,
            })?;
            if cfg.sample_every > 0 && done % cfg.sample_every == 0 {
                self.gather_weights();
            }
            if cfg.sample_every > 0
                && done % cfg.sample_every == 0
                && let Some(text) = self.sample(done)
            {
                bar.suspend(|| info!("step {done} sample: {text:?}"));
            }
            let interrupted = r.stop && !last;
            if last || interrupted || (cfg.checkpoint_every > 0 && done % cfg.checkpoint_every == 0)
            {
                self.checkpoint(done)?;
            }
            bar.set_position(done as u64);
            bar.set_message(format!(
                "loss {:.4} | {tok_per_sec:.0} tok/s | MFU {:.1}%",
                r.loss,
                100.0 * mfu
            ));
            let s = &mut self.summary;
            s.steps_done = done;
            s.last_loss = r.loss;
            s.val_loss = val_loss.or(s.val_loss);
            if interrupted {
                s.interrupted = true;
                break;
            }
        }
        bar.finish_and_clear();
        if let Some(line) = self
            .pipe
            .as_ref()
            .and_then(|p| p.report(self.comm, cfg.grad_accum))
        {
            info!("{line}");
        }
        let tokens = (self.summary.steps_done - self.start) * tokens_per_step;
        let s = &mut self.summary;
        s.tokens_per_sec = tokens as f64 / run_start.elapsed().as_secs_f64().max(1e-9);
        s.mfu = s.tokens_per_sec * flops_per_token / (self.peak_gflops * 1e9);
        if let Some(log) = self.log.as_ref().filter(|_| s.steps_done == 0) {
            log.redraw()?;
        }
        if let Some(tp) = &self.tp {
            let (c, b, t) = (&self.model.config, cfg.batch_size, cfg.seq_len);
            self.summary.tp_traffic = Some(tp.traffic(c, cfg.grad_accum, b, t));
        }
        Ok(self.summary.clone())
    }

    /// One optimizer step: `grad_accum` micro-batches forward and backward on every rank (the
    /// loss scaled so the gradients average over all of them), the gradients summed over the
    /// ranks, then clipping and AdamW. Stops on a non-finite loss.
    fn step(&mut self, step: usize) -> Result<StepResult> {
        let cfg = self.cfg;
        let t0 = Instant::now();
        self.gather_weights();
        let micro_batches = cfg.grad_accum * self.data_rank().1;
        self.tp.iter().for_each(|tp| tp.step_begins());
        let loss_sum = match self.pipe.is_some() {
            true => self.pipeline_forward_backward(micro_batches),
            false => self.forward_backward(micro_batches),
        };
        self.tp.iter().for_each(|tp| tp.step_done());
        // One message for the loss and the stop flag, so every rank decides the same. (The
        // ranks of a tensor parallel group add the same loss, and of a pipeline only the last
        // stage adds it: divide by all the ranks over the stages.)
        let mut sums = [loss_sum, STOP.load(Ordering::Relaxed) as u8 as f64];
        self.comm.all_reduce_sum_f64(&mut sums);
        let ranks = self.comm.world_size() / cfg.layout.pp;
        let loss = (sums[0] / (cfg.grad_accum * ranks) as f64) as f32;
        if !loss.is_finite() {
            self.params.iter().for_each(|p| p.zero_grad());
            return Err(self.diverged(&format!("the loss became {loss}"), step + 1));
        }
        let refs: Vec<&Tensor> = self.params.iter().collect();
        let lr = cfg.schedule().lr(step);
        let grad_norm = match (&mut self.zero, &self.tp, &self.pipe) {
            (_, _, Some(pipe)) => pipe.update(&self.params, &mut self.opt, lr, cfg.grad_clip),
            (Some(z), _, None) => z.step(self.comm, &self.params, &mut self.opt, lr, cfg.grad_clip),
            (None, None, None) => {
                dist::all_reduce_grads(self.comm, &self.params);
                self.opt.update(&refs, lr, cfg.grad_clip)
            }
            (None, Some(tp), None) => {
                dist::all_reduce_grads(tp.dp(), &self.params);
                let norm = tp.grad_norm(&self.model);
                self.opt.apply(&refs, lr, norm, cfg.grad_clip);
                norm
            }
        };
        if self.held.is_none() {
            self.held = Some(HeldBytes::count(&self.params, &self.opt));
        }
        self.params.iter().for_each(|p| p.zero_grad());
        if !grad_norm.is_finite() {
            let what = format!("the gradient norm became {grad_norm}");
            return Err(self.diverged(&what, step + 1));
        }
        Ok(StepResult {
            loss,
            grad_norm,
            secs: t0.elapsed().as_secs_f64(),
            stop: sums[1] > 0.0,
        })
    }

    /// `grad_accum` micro-batches forward and backward on this rank, each loss scaled by
    /// `1/micro_batches`: the sum of the losses (NaN from the first that is not finite).
    fn forward_backward(&mut self, micro_batches: usize) -> f64 {
        let cfg = self.cfg;
        let mut loss_sum = 0.0f64;
        for _ in 0..cfg.grad_accum {
            let (x, y) = self.next_micro_batch();
            let loss = self.model.loss(&x, &y, cfg.batch_size, cfg.seq_len);
            let l = loss.item();
            if !l.is_finite() {
                return f64::NAN;
            }
            loss_sum += l as f64;
            if micro_batches > 1 {
                loss.mul_scalar(1.0 / micro_batches as f64).backward()
            } else {
                loss.backward()
            }
        }
        loss_sum
    }

    /// [`Run::forward_backward`] through the stages of a pipeline: the losses sum on the last.
    fn pipeline_forward_backward(&mut self, micro_batches: usize) -> f64 {
        let cfg = self.cfg;
        let batches: Vec<_> = (0..cfg.grad_accum)
            .map(|_| self.next_micro_batch())
            .collect();
        let shape = (cfg.batch_size, cfg.seq_len);
        let pipe = self.pipe.as_mut().expect("a pipeline parallel run");
        pipe.forward_backward(self.comm, &self.model, &batches, micro_batches, shape)
    }

    /// Pipeline parallel: before rank 0 evaluates, samples or saves after step `done`, the
    /// stages send it their current weights (every rank calls this after every step).
    fn gather_stages(&mut self, done: usize, saving: bool) {
        let c = self.cfg;
        let every = |n: usize| n > 0 && done.is_multiple_of(n);
        let needed =
            saving || every(c.eval_every) || every(c.sample_every) || every(c.checkpoint_every);
        if let Some(pipe) = self.pipe.as_ref().filter(|_| needed) {
            pipe.gather_to_root(self.comm, &self.params, &mut self.opt);
        }
    }

    /// ZeRO-3: every rank gathers the weights it released (before the forward, an evaluation
    /// or a sample). Nothing otherwise.
    fn gather_weights(&mut self) {
        if let Some(z) = &mut self.zero {
            z.gather(self.comm, &self.params);
        }
    }

    /// Each rank's bytes held and peak memory, printed by rank 0 (runs on several ranks).
    fn report_memory(&self) {
        if let (Some(held), true) = (self.held, self.comm.world_size() > 1) {
            for line in zero::memory_report(self.comm, held) {
                if self.comm.is_root() {
                    info!("{line}");
                }
            }
        }
    }

    /// This rank's next micro-batch: of the next `dp` batches of the stream, the one of its
    /// data parallel rank. Every rank steps over all of them, so the loaders stay at the same
    /// position (the one a single process with `--grad-accum` × `dp` would reach).
    fn next_micro_batch(&mut self) -> (Vec<u32>, Vec<u32>) {
        let (rank, world) = self.data_rank();
        (0..rank).for_each(|_| self.train_data.skip_batch());
        let batch = self.train_data.next_batch();
        (rank + 1..world).for_each(|_| self.train_data.skip_batch());
        batch
    }

    /// This rank's data parallel coordinate and the data parallel degree (the rank and the
    /// world size when every rank holds the whole model).
    fn data_rank(&self) -> (usize, usize) {
        let (world, layout) = (self.comm.world_size(), &self.cfg.layout);
        let dp = layout.dp(world).unwrap_or(world);
        (layout.coords(self.comm.rank()).0, dp)
    }

    /// Appends a line to `metrics.jsonl` (rank 0 only).
    fn log_step(&mut self, m: &StepMetrics) -> Result<()> {
        match &mut self.log {
            Some(log) => log.log(m),
            None => Ok(()),
        }
    }

    /// The validation loss (the same batches every time), or `None` without a validation split.
    pub fn evaluate(&mut self) -> Result<Option<f32>> {
        match self.val_data.as_mut() {
            Some(val) => Ok(Some(evaluate(&self.model, val, self.cfg.eval_batches)?)),
            None => Ok(None),
        }
    }

    fn evaluate_and_report(
        &mut self,
        done: usize,
        bar: &indicatif::ProgressBar,
    ) -> Result<Option<f32>> {
        self.gather_weights();
        // A tensor parallel model evaluates on every rank: its forward needs the whole group.
        if !self.comm.is_root() && self.tp.is_none() {
            return Ok(None);
        }
        let v = self.evaluate()?;
        let Some(v) = v.filter(|_| self.comm.is_root()) else {
            return Ok(None);
        };
        let bpb = self
            .bytes_per_token
            .map(|bpt| v as f64 / std::f64::consts::LN_2 / bpt);
        self.summary.bits_per_byte = bpb;
        bar.suspend(|| {
            info!(
                "step {done}: val loss {v:.4}, perplexity {:.2}{}",
                (v as f64).exp(),
                bpb.map(|b| format!(", {b:.3} bits per byte"))
                    .unwrap_or_default()
            )
        });
        Ok(Some(v))
    }

    /// A short sample from the model (on the CPU, from the full-precision weights), on rank 0
    /// (`None` elsewhere). A tensor parallel group first gathers the whole model.
    fn sample(&self, done: usize) -> Option<String> {
        let whole = self
            .tp
            .as_ref()
            .map(|tp| tp.gather_weights(&self.model, &self.opt));
        if !self.comm.is_root() {
            return None;
        }
        let Some(tok) = &self.tokenizer else {
            return Some(String::new());
        };
        let seed = self.cfg.seed + done as u64;
        let model = match whole {
            Some(weights) => Gpt::from_named(self.model.config, weights),
            None if self.place.device == Device::Cpu => {
                return Some(sample_text(&self.model, tok, 32, seed));
            }
            None => run_dir::cpu_model(&self.model, &self.opt),
        };
        Some(sample_text(&model, tok, 32, seed))
    }

    /// The error that stops a run whose numbers are no longer finite, saying what is kept.
    fn diverged(&self, what: &str, step: usize) -> anyhow::Error {
        let kept = match self.saved {
            Some(n) => format!(
                "{} keeps the last good checkpoint, from step {n}",
                self.summary.checkpoint.display()
            ),
            None => "this run saved no checkpoint".to_string(),
        };
        anyhow!(
            "{what} at step {step}; stopping without saving: {kept} (try a lower --lr or a \
             --grad-clip)"
        )
    }

    /// Saves the checkpoint folder after step `done` and redraws the loss plot; refuses (with
    /// the error of [`Run::diverged`]) when a weight is no longer finite.
    pub fn checkpoint(&mut self, done: usize) -> Result<()> {
        // Tensor parallel: the group gathers its slices (every rank takes part). ZeRO: the owners
        // send their shards. Either way rank 0 saves what one process would.
        let gathered = match (&self.tp, &self.zero) {
            (Some(tp), _) => Some((
                tp.gather_weights(&self.model, &self.opt),
                tp.gather_optimizer(&self.model, &self.opt),
            )),
            (None, Some(z)) => z.gather_checkpoint(self.comm, &self.model.params(), &self.opt),
            (None, None) => None,
        };
        if !self.comm.is_root() {
            self.saved = Some(done);
            return Ok(());
        }
        let refs: Vec<&Tensor> = self.params.iter().collect();
        let finite = match &gathered {
            Some((weights, _)) => weights.iter().all(|w| w.data.iter().all(|x| x.is_finite())),
            None => self.opt.weights_finite(&refs),
        };
        if !finite {
            return Err(self.diverged("the weights are no longer finite", done));
        }
        let (weights, full_opt) = match gathered {
            Some((weights, opt)) => (weights, Some(opt)),
            None => (
                run_dir::full_precision_weights(&self.model, &self.opt),
                None,
            ),
        };
        let eos = self
            .tokenizer
            .as_ref()
            .and_then(|t| t.special_id(crate::tokenizer::ENDOFTEXT));
        let ck = Checkpoint {
            config: self.model.config,
            weights,
            opt: full_opt.as_ref().unwrap_or(&self.opt),
            state: TrainerState {
                step: done,
                train_position: self.train_data.position(),
                world_size: self.data_rank().1,
                global_batch: Some(global_batch(self.cfg, self.data_rank().1)),
            },
            eos,
            data: &self.cfg.data,
        };
        run_dir::save_run(&self.summary.checkpoint, &ck)?;
        self.saved = Some(done);
        if let Some(log) = &self.log {
            log.redraw()?;
        }
        detail!("saved {}", self.summary.checkpoint.display());
        Ok(())
    }
}

/// Sequences per optimizer step over the `dp` data parallel ranks: what a resumed run must keep.
pub fn global_batch(cfg: &TrainConfig, dp: usize) -> usize {
    cfg.batch_size * cfg.grad_accum * dp
}

/// The model and optimizer on `place`: resumed, initialised from a checkpoint, or fresh; the
/// step to start at (the loader moved to where a resumed run left off); the ZeRO sharding. A run
/// may resume on another data parallel degree (or ZeRO stage, or tensor parallel degree) if it
/// keeps the global batch. With tensor parallel `tp`, the rank keeps its slices of the model.
fn build_model(
    cfg: &TrainConfig,
    resume: bool,
    place: Placement,
    mut train_data: Loader,
    (comm, tp): (&dyn Comm, Option<&TensorParallel>),
) -> Result<(Gpt, AdamW, usize, Loader, Option<Zero>)> {
    let dp = cfg.layout.dp(comm.world_size())?;
    let ckpt = checkpoint_dir(&cfg.out);
    let (cpu, saved) = if resume {
        let (model, moments, state) = run_dir::load_run(&ckpt)?;
        if model.config != cfg.model {
            bail!(
                "{} holds a model of {}, but the run's settings ({}) say {}",
                ckpt.join("config.json").display(),
                inputs::describe(&model.config),
                cfg.out.join(run_config::FILE).display(),
                inputs::describe(&cfg.model)
            );
        }
        inputs::check_global_batch(cfg, &state, dp, &ckpt)?;
        train_data.restore(state.train_position)?;
        info!("resuming {} at step {}", ckpt.display(), state.step);
        (model, Some((moments, state.step)))
    } else {
        let model = match &cfg.init_from {
            Some(dir) => load_model(dir)?,
            None => Gpt::new(cfg.model, cfg.seed),
        };
        (model, None)
    };
    let (cpu, saved) = match tp {
        Some(tp) => tp.shard(cpu, saved),
        None => (cpu, saved),
    };
    // The f32 values: the source of the master copies when the model is kept in bf16.
    let values: Vec<Tensor> = cpu.params().into_iter().map(|(_, p)| p.clone()).collect();
    let model = if place == Placement::default() {
        cpu
    } else {
        cpu.to(place.device, place.dtype)
    };
    let sizes: Vec<usize> = values.iter().map(Tensor::numel).collect();
    let zero = (cfg.layout.zero > 0).then(|| Zero::new(cfg.layout.zero, sizes, comm));
    let owned = zero.as_ref().map_or(0..values.len(), Zero::owned);
    let (model, opt, start, train_data) =
        finish_optimizer(cfg, model, &values, saved, train_data, owned)?;
    Ok((model, opt, start, train_data, zero))
}

/// The optimizer for `model`, fresh or with the saved moments; `values` are the f32 weights.
fn finish_optimizer(
    cfg: &TrainConfig,
    model: Gpt,
    values: &[Tensor],
    saved: Option<(run_dir::SavedMoments, usize)>,
    train_data: Loader,
    owned: std::ops::Range<usize>,
) -> Result<(Gpt, AdamW, usize, Loader)> {
    let params: Vec<Tensor> = model.params().into_iter().map(|(_, p)| p.clone()).collect();
    let (p, v): (Vec<&Tensor>, Vec<&Tensor>) = (params.iter().collect(), values.iter().collect());
    let (opt, start) = match saved {
        Some((moments, step)) => (
            run_dir::restore_optimizer(cfg.adamw, &p, &v, moments, step, owned),
            step,
        ),
        None => (AdamW::new_sharded(cfg.adamw, &p, &v, owned), 0),
    };
    Ok((model, opt, start, train_data))
}

fn announce(c: &GptConfig, place: &Placement, world: usize, layout: &dist::Layout) {
    info!(
        "model: {}: {} parameters",
        inputs::describe(c),
        group_digits(c.num_params())
    );
    if world > 1 {
        info!("{world} ranks: {}", layout.describe(world));
    }
    if place.device != Device::Cpu {
        info!("training on {}", place.describe());
    }
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

pub use crate::tensor::devices::measured_cpu_peak_gflops as measured_peak_gflops;

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
