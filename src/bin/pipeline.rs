//! `pipeline`: every stage of pretrain on the bundled corpus. `cargo run --release` runs this.
//!
//! clean → train-tokenizer → tokenize → train → sample, each through the same library calls the
//! stage binaries make, with a short summary per stage. Artifacts go to `runs/pipeline/`
//! (`runs/pipeline-quick/` for the quick preset).

use anyhow::Context;
use clap::Parser;
use pretrain::cli::{self, Common, signals};
use pretrain::data::{CleanConfig, clean};
use pretrain::dataset::write::{TokenizeOptions, tokenize_jsonl};
use pretrain::model::config::GptConfig;
use pretrain::model::memory::{self, MemoryEstimate, TrainingShape};
use pretrain::sample::{SamplingConfig, generate};
use pretrain::tensor::cuda::DeviceArg;
use pretrain::tokenizer::corpus::count_files;
use pretrain::tokenizer::train::train_from_counts;
use pretrain::tokenizer::{ENDOFTEXT, Split, TrainOptions, formats};
use pretrain::train::optim::AdamWConfig;
use pretrain::train::schedule::ScheduleKind;
use pretrain::train::trainer::{self, Placement, PrecisionArg, TrainConfig};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Run every pipeline stage on the bundled corpus: clean → train-tokenizer → tokenize → train → sample.
#[derive(Parser, Debug)]
#[command(name = "pipeline", version)]
struct Args {
    /// Quick preset (under a minute, for tests) instead of the default (about 10 minutes).
    #[arg(long)]
    quick: bool,
    /// Raw corpus to start from [default: the bundled data/raw].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Folder for every artifact [default: runs/pipeline, or runs/pipeline-quick for --quick].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Override the preset's number of training steps.
    #[arg(long)]
    steps: Option<usize>,
    /// Where to train: cuda (falls back to the CPU with a message when there is no GPU), cpu, or
    /// auto (the GPU when there is one).
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
    /// Storage type on the GPU [default: bf16]; fp32 matches the CPU's numbers.
    #[arg(long, value_enum)]
    precision: Option<PrecisionArg>,
    #[command(flatten)]
    common: Common,
}
pretrain::has_common!(Args);

/// The sizes of one run of the pipeline.
struct Preset {
    name: &'static str,
    vocab_size: usize,
    model: GptConfig,
    batch_size: usize,
    steps: usize,
    lr: f32,
    warmup: usize,
    eval_every: usize,
    eval_batches: usize,
    new_tokens: usize,
}

impl Preset {
    /// About 10 minutes on a 2-core CPU: the config of the PyTorch comparison.
    fn default_preset() -> Preset {
        Preset {
            name: "default",
            vocab_size: 8192,
            model: GptConfig {
                n_layer: 4,
                n_head: 4,
                n_embd: 256,
                block_size: 256,
                vocab_size: 0,
            },
            batch_size: 8,
            steps: 1000,
            lr: 1e-3,
            warmup: 100,
            eval_every: 250,
            eval_batches: 16,
            new_tokens: 80,
        }
    }

    /// Under a minute, for tests and lessons.
    fn quick() -> Preset {
        Preset {
            name: "quick",
            vocab_size: 1024,
            model: GptConfig {
                n_layer: 2,
                n_head: 2,
                n_embd: 64,
                block_size: 64,
                vocab_size: 0,
            },
            batch_size: 8,
            steps: 200,
            lr: 3e-3,
            warmup: 10,
            eval_every: 100,
            eval_batches: 4,
            new_tokens: 24,
        }
    }
}

/// Refuses, before the first stage, a preset whose training cannot fit where it would run.
fn check_memory(p: &Preset, place: &Placement) -> anyhow::Result<()> {
    let shape = TrainingShape {
        config: GptConfig {
            vocab_size: p.vocab_size,
            ..p.model
        },
        batch: p.batch_size,
        seq_len: p.model.block_size,
        dtype: place.dtype,
        device: place.device,
    };
    memory::check_fits(&MemoryEstimate::training(&shape), "training", place.device)
}

/// Prompts the base model continues at the end: English and Chinese.
const PROMPTS: [&str; 2] = ["ROMEO: Good morrow, my lord.", "子曰："];

fn main() -> ExitCode {
    cli::run_with_code::<Args, _>("pipeline", |args| {
        let mut p = if args.quick || cli::quick() {
            Preset::quick()
        } else {
            Preset::default_preset()
        };
        if let Some(steps) = args.steps {
            p.steps = steps;
        }
        let raw = args
            .data
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/raw"));
        // The quick preset writes elsewhere, so tests never overwrite a real run.
        let out = args.out.unwrap_or_else(|| {
            PathBuf::from(if p.name == "quick" {
                "runs/pipeline-quick"
            } else {
                "runs/pipeline"
            })
        });
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        println!("pretrain pipeline ({} preset) → {}", p.name, out.display());
        let device = Placement::from_args(args.device, args.precision);
        check_memory(&p, &device)?;
        let t_all = Instant::now();

        // 1. clean
        let t = Instant::now();
        let clean_out = out.join("clean.jsonl");
        let report = clean(
            &CleanConfig::default(),
            std::slice::from_ref(&raw),
            &clean_out,
            Some(&out.join("clean_report.json")),
            Some(&out.join("rejects.jsonl")),
        )?;
        println!(
            "1 clean            {} → {} documents, {:.2} → {:.2} MB ({} removed), {:.1} s",
            report.docs_in,
            report.docs_out,
            report.bytes_in as f64 / 1e6,
            report.bytes_out as f64 / 1e6,
            report.docs_in - report.docs_out,
            t.elapsed().as_secs_f64()
        );

        // 2. train-tokenizer
        let t = Instant::now();
        let specials = vec![ENDOFTEXT.to_string()];
        let opts = TrainOptions {
            vocab_size: p.vocab_size,
            specials: specials.clone(),
            split: Split::Gpt4,
            progress: true,
        };
        let (counts, _) = count_files(
            std::slice::from_ref(&clean_out),
            opts.split,
            &specials,
            ENDOFTEXT,
            usize::MAX,
        )?;
        let mut tok = train_from_counts(&counts, &opts)?;
        let tok_dir = out.join("tokenizer");
        formats::save_dir(&tok_dir, &tok)?;
        println!(
            "2 train-tokenizer  vocab {} ({} merges, GPT-4 split) → {}, {:.1} s",
            tok.vocab_size(),
            tok.merges().len(),
            tok_dir.display(),
            t.elapsed().as_secs_f64()
        );

        // 2. tokenize
        let t = Instant::now();
        let shards = out.join("shards");
        let opts = TokenizeOptions {
            val_fraction: 0.1,
            seed: 1337,
            shard_tokens: 1 << 24,
            max_docs: None,
        };
        let s = tokenize_jsonl(&mut tok, std::slice::from_ref(&clean_out), &shards, &opts)?;
        println!(
            "2 tokenize         {} train + {} val tokens, {:.2} bytes/token → {}, {:.1} s",
            s.train_tokens,
            s.val_tokens,
            s.text_bytes as f64 / (s.train_tokens + s.val_tokens).max(1) as f64,
            shards.display(),
            t.elapsed().as_secs_f64()
        );

        // 3-4. train
        let t = Instant::now();
        let run = out.join("run");
        let cfg = TrainConfig {
            layout: Default::default(),
            data: shards,
            out: run.clone(),
            init_from: None,
            model: GptConfig {
                vocab_size: tok.vocab_size(),
                ..p.model
            },
            steps: p.steps,
            batch_size: p.batch_size,
            seq_len: p.model.block_size,
            grad_accum: 1,
            lr: p.lr,
            min_lr: p.lr / 10.0,
            warmup: p.warmup,
            schedule: ScheduleKind::Cosine,
            adamw: AdamWConfig::default(),
            grad_clip: 1.0,
            sequential: false,
            seed: 1337,
            eval_every: p.eval_every,
            eval_batches: p.eval_batches,
            sample_every: 0,
            checkpoint_every: 0,
        };
        signals::on_stop_signals(&trainer::STOP, "saving a checkpoint after this step")?;
        let ts = trainer::train_on(&cfg, false, &device)?;
        if ts.interrupted {
            return Ok(interrupted(ts.steps_done, &ts.checkpoint));
        }
        let val = ts.val_loss.context("the validation split is empty")?;
        let unigram = ts.unigram_val_loss.unwrap_or(f64::NAN);
        println!(
            "3 train            {} params, {} steps, {:.0} tokens/s, {:.1} s",
            trainer::group_digits(cfg.model.num_params()),
            ts.steps_done,
            ts.tokens_per_sec,
            t.elapsed().as_secs_f64()
        );
        println!(
            "                   val loss {val:.3} vs unigram baseline {unigram:.3}{}",
            ts.bits_per_byte
                .map(|b| format!(" ({b:.2} bits per byte)"))
                .unwrap_or_default()
        );

        // 5. sample
        let model = trainer::load_model(&ts.checkpoint)?;
        let cfg = SamplingConfig {
            temperature: 0.8,
            top_k: 40,
        };
        let eot = tok.special_id(ENDOFTEXT);
        for (i, prompt) in PROMPTS.iter().enumerate() {
            let ids = tok.encode_ordinary(prompt);
            let new = generate(&model, &ids, p.new_tokens, &cfg, 42 + i as u64, eot, |_| {});
            let text = tok.decode(&new).unwrap_or_default();
            let label = if i == 0 { "4 sample" } else { "" };
            println!("{label:<18} {:?}", format!("{prompt}{text}"));
        }
        println!(
            "done in {:.1} s; checkpoint {} (try: cargo run --release --bin sample -- --checkpoint {} --prompt \"...\")",
            t_all.elapsed().as_secs_f64(),
            ts.checkpoint.display(),
            ts.checkpoint.display()
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// Ctrl-C or SIGTERM stopped training: the checkpoint is saved, the later stages are skipped,
/// and the exit code says which signal came (130 or 143).
fn interrupted(steps_done: usize, checkpoint: &Path) -> ExitCode {
    let run = checkpoint.parent().unwrap_or(checkpoint);
    println!(
        "interrupted after step {steps_done}; continue with: cargo run --release --bin train -- --out {} --resume",
        run.display()
    );
    let sig = signals::stop_signal().unwrap_or(signal_hook::consts::SIGINT);
    ExitCode::from(signals::exit_code(sig))
}
