//! `train`: train a GPT-2 on token shards (or continue a run), writing a run folder.

use anyhow::Context;
use clap::Parser;
use pretrain::cli::{self, Common, signals};
use pretrain::model::config::GptConfig;
use pretrain::model::memory::{self, MemoryEstimate, TrainingShape};
use pretrain::tensor::cuda::DeviceArg;
use pretrain::train::dist::{self, Comm, PipeSchedule};
use pretrain::train::optim::AdamWConfig;
use pretrain::train::run_config;
use pretrain::train::schedule::{MIN_LR_FRACTION, ScheduleKind};
use pretrain::train::trainer::{self, Placement, PrecisionArg, TrainConfig, TrainSummary};
use std::path::PathBuf;
use std::process::ExitCode;

/// Train a GPT-2 model on token shards written by `tokenize`.
///
/// The run folder gets train_config.json, metrics.jsonl, loss.svg and checkpoint/ (loadable by
/// Hugging Face's GPT2LMHeadModel.from_pretrained). One run at a time per folder. Ctrl-C or
/// SIGTERM saves a checkpoint, then exits with 130 or 143; errors exit with 2.
///
/// Data parallel on several processes: `train --nproc N ...` (or `mpirun -np N train ...`), with
/// a binary built with `--features mpi`. --batch-size is then per rank.
#[derive(Parser, Debug)]
#[command(name = "train", version)]
struct Args {
    /// Shard directory written by `tokenize` (train_*.bin, val_*.bin, tokenizer.json) [with
    /// --resume: default the run's own, stored relative to the run folder].
    #[arg(long, required_unless_present = "resume")]
    data: Option<PathBuf>,
    /// Run folder for metrics, the loss plot and checkpoints.
    #[arg(long)]
    out: PathBuf,
    /// Start from the weights in this checkpoint directory (fresh optimizer).
    #[arg(long)]
    init_from: Option<PathBuf>,
    /// Continue the run in --out from its checkpoint, bit for bit (optimizer, data position). It
    /// keeps the run's settings: only --steps, --data, --device, --precision, the layout flags
    /// (--nproc, --zero, ...) and --grad-accum may be given; on another number of ranks,
    /// --grad-accum must keep the global batch (--batch-size × --grad-accum × ranks).
    #[arg(long, conflicts_with_all = SETTINGS)]
    resume: bool,
    /// Optimizer steps in total [default: 1000, or the resumed run's].
    #[arg(long)]
    steps: Option<usize>,
    /// Sequences per micro-batch.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 256)]
    seq_len: usize,
    /// Micro-batches per optimizer step (gradient accumulation) [default: 1, or the resumed
    /// run's].
    #[arg(long)]
    grad_accum: Option<usize>,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3, value_parser = cli::positive, allow_negative_numbers = true)]
    lr: f32,
    /// Floor of the cosine decay (default: lr / 10).
    #[arg(long, value_parser = cli::non_negative, allow_negative_numbers = true)]
    min_lr: Option<f32>,
    /// Linear warmup steps.
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    /// Learning-rate schedule after warmup.
    #[arg(long, value_enum, default_value_t = Sched::Cosine)]
    schedule: Sched,
    /// AdamW weight decay (on 2-D weights and embeddings only).
    #[arg(long, default_value_t = 0.1, value_parser = cli::non_negative, allow_negative_numbers = true)]
    weight_decay: f32,
    /// Clip the global gradient norm to this (0 = off).
    #[arg(long, default_value_t = 1.0, value_parser = cli::non_negative, allow_negative_numbers = true)]
    grad_clip: f32,
    /// Read batches in order from the start of the train shards instead of at random.
    #[arg(long)]
    sequential: bool,
    /// Seed for the initialisation and the batch order.
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// Transformer blocks (fresh model).
    #[arg(long, default_value_t = 4)]
    n_layer: usize,
    /// Attention heads (fresh model).
    #[arg(long, default_value_t = 4)]
    n_head: usize,
    /// Embedding width (fresh model).
    #[arg(long, default_value_t = 256)]
    n_embd: usize,
    /// Context length (fresh model; default: --seq-len).
    #[arg(long)]
    block_size: Option<usize>,
    /// Evaluate every N steps (0 = only at the end).
    #[arg(long, default_value_t = 100)]
    eval_every: usize,
    /// Validation batches per evaluation.
    #[arg(long, default_value_t = 8)]
    eval_batches: usize,
    /// Print a sample every N steps (0 = never).
    #[arg(long, default_value_t = 0)]
    sample_every: usize,
    /// Save a checkpoint every N steps (0 = only at the end).
    #[arg(long, default_value_t = 500)]
    checkpoint_every: usize,
    /// Where to train: cuda (falls back to the CPU with a message when there is no GPU), cpu, or
    /// auto (the GPU when there is one).
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
    /// Storage type on the GPU [default: bf16]; fp32 matches the CPU's numbers.
    #[arg(long, value_enum)]
    precision: Option<PrecisionArg>,
    /// Data parallel on N processes on this machine: starts itself again under `mpirun -np N`
    /// (needs Open MPI and a binary built with `--features mpi`).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    nproc: Option<u32>,
    /// ZeRO stage over the data parallel ranks: 1 shards the optimizer state, 2 also the
    /// gradients, 3 also the weights [default: 0, or the resumed run's].
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=3))]
    zero: Option<u8>,
    /// Tensor parallel ranks per layer (Megatron) [default: 1, or the resumed run's].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    tp: Option<u32>,
    /// Pipeline stages [default: 1, or the resumed run's].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pp: Option<u32>,
    /// Pipeline schedule [default: 1f1b, or the resumed run's].
    #[arg(long, value_enum)]
    pp_schedule: Option<PipeSchedule>,
    #[command(flatten)]
    common: Common,
}
pretrain::has_common!(Args);

/// The flags that set a run's settings: a resumed run keeps its own, so they conflict with
/// --resume.
const SETTINGS: [&str; 19] = [
    "init_from",
    "batch_size",
    "seq_len",
    "lr",
    "min_lr",
    "warmup",
    "schedule",
    "weight_decay",
    "grad_clip",
    "sequential",
    "seed",
    "n_layer",
    "n_head",
    "n_embd",
    "block_size",
    "eval_every",
    "eval_batches",
    "sample_every",
    "checkpoint_every",
];

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Sched {
    Cosine,
    Constant,
}

fn main() -> ExitCode {
    cli::run_with_code::<Args, _>("train", |a| {
        let launched = std::env::var_os(dist::MPI_WORLD_SIZE_VAR).is_some();
        if launched {
            // The launcher (or mpirun) speaks of signals: mpirun's SIGTERM as it ends the ranks
            // after a failure is not news. Quiet from the start, before MPI is even up.
            signals::quiet();
        }
        signals::on_stop_signals(&trainer::STOP, "saving a checkpoint after this step")?;
        if let Some(n) = a.nproc.filter(|&n| n > 1 && !launched) {
            let code = dist::launch::relaunch(n as usize)?;
            return Ok(ExitCode::from(code.clamp(0, 255) as u8));
        }
        let comm = dist::connect()?;
        if !comm.is_root() {
            // Rank 0 speaks for the run; the others print only their errors.
            cli::Common::default().apply_quiet();
        }
        match run(a, comm.as_ref()) {
            // One rank failing must not leave the others waiting in a collective: end them all.
            Err(e) if comm.world_size() > 1 => {
                // One write per line, so that the ranks' lines do not interleave.
                let line = format!("{e:#}").replace('\n', " ");
                let line = format!("train: error: rank {}: {line}\n", comm.rank());
                let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
                comm.abort(2)
            }
            r => r,
        }
    })
}

/// One rank's run: the settings, the memory check, training, the report.
fn run(a: Args, comm: &dyn Comm) -> anyhow::Result<ExitCode> {
    let resume = a.resume;
    let device = Placement::from_args(a.device, a.precision);
    let mut cfg = if resume {
        // A resumed run keeps its settings; --steps may extend it, --data move it.
        let mut cfg = run_config::resume_config(&a.out, a.data.as_deref())?;
        cfg.steps = a.steps.unwrap_or(cfg.steps);
        cfg.grad_accum = a.grad_accum.unwrap_or(cfg.grad_accum);
        cfg
    } else {
        fresh_config(&a)?
    };
    // The layout may change on resume: it splits the same math another way.
    let l = &mut cfg.layout;
    l.zero = a.zero.unwrap_or(l.zero);
    l.tp = a.tp.map_or(l.tp, |n| n as usize);
    l.pp = a.pp.map_or(l.pp, |n| n as usize);
    l.schedule = a.pp_schedule.unwrap_or(l.schedule);
    if cli::quick() {
        // Quick sizes for tests and lessons: a handful of steps.
        cfg.steps = cfg.steps.min(20);
        cfg.eval_batches = cfg.eval_batches.min(2);
    }
    check_memory(&cfg, resume, &device)?;
    let s = trainer::train_with(&cfg, resume, &device, comm)?;
    if comm.is_root() {
        report(&s);
    }
    if s.interrupted {
        let sig = signals::stop_signal().unwrap_or(signal_hook::consts::SIGINT);
        return Ok(ExitCode::from(signals::exit_code(sig)));
    }
    Ok(ExitCode::SUCCESS)
}

/// The summary lines on stdout.
fn report(s: &TrainSummary) {
    println!(
        "trained {} steps: loss {:.4}{}; {:.0} tokens/s, MFU {:.1}%",
        s.steps_done,
        s.last_loss,
        s.val_loss
            .map(|v| format!(", val loss {v:.4}"))
            .unwrap_or_default(),
        s.tokens_per_sec,
        100.0 * s.mfu
    );
    if let Some(u) = s.unigram_val_loss {
        println!("unigram baseline val loss {u:.4}");
    }
    if let Some(t) = &s.tp_traffic {
        println!("{t}");
    }
    if s.interrupted {
        println!(
            "interrupted after step {}; continue with --resume",
            s.steps_done
        );
    }
    println!("checkpoint: {}", s.checkpoint.display());
}

/// Refuses, before anything large is allocated, a run whose model, optimizer state and
/// activations cannot fit in the memory of the device it would run on.
fn check_memory(cfg: &TrainConfig, resume: bool, place: &Placement) -> anyhow::Result<()> {
    // With --init-from the checkpoint's config.json says what the model is.
    let config = match &cfg.init_from {
        Some(dir) if !resume => GptConfig::from_hf_json(&dir.join("config.json"))?,
        _ => cfg.model,
    };
    let shape = TrainingShape {
        config,
        batch: cfg.batch_size,
        seq_len: cfg.seq_len,
        dtype: place.dtype,
        device: place.device,
    };
    memory::check_fits(&MemoryEstimate::training(&shape), "training", place.device)
}

/// The settings of a new run, from the flags.
fn fresh_config(a: &Args) -> anyhow::Result<TrainConfig> {
    let data = a.data.clone().context("--data is required for a new run")?;
    let shards = pretrain::dataset::loader::shard_paths(&data, "train")?;
    let vocab = pretrain::dataset::shard::read_header(&shards[0])?.vocab_size as usize;
    let model = GptConfig {
        n_layer: a.n_layer,
        n_head: a.n_head,
        n_embd: a.n_embd,
        block_size: a.block_size.unwrap_or(a.seq_len),
        vocab_size: vocab,
    };
    model.validate()?;
    if a.batch_size == 0 || a.seq_len == 0 {
        anyhow::bail!("--batch-size and --seq-len must be positive");
    }
    Ok(TrainConfig {
        data,
        out: a.out.clone(),
        init_from: a.init_from.clone(),
        model,
        steps: a.steps.unwrap_or(1000),
        batch_size: a.batch_size,
        seq_len: a.seq_len,
        grad_accum: a.grad_accum.unwrap_or(1),
        lr: a.lr,
        min_lr: a.min_lr.unwrap_or(a.lr * MIN_LR_FRACTION),
        warmup: a.warmup,
        schedule: match a.schedule {
            Sched::Cosine => ScheduleKind::Cosine,
            Sched::Constant => ScheduleKind::Constant,
        },
        adamw: AdamWConfig {
            weight_decay: a.weight_decay,
            ..AdamWConfig::default()
        },
        grad_clip: a.grad_clip,
        sequential: a.sequential,
        seed: a.seed,
        eval_every: a.eval_every,
        eval_batches: a.eval_batches,
        sample_every: a.sample_every,
        checkpoint_every: a.checkpoint_every,
        layout: Default::default(),
    })
}
