//! `plan`: size a pre-training run on paper: memory per GPU, step time, GPU-hours, days, cost.
//! The arithmetic and its sources are in `src/train/plan/`; this file parses flags and prints.

use clap::Parser;
use pretrain::cli::{self, Common};
use pretrain::train::plan::memory::{Layout, Recompute};
use pretrain::train::plan::model::{Arch, ModelShape, Preset};
use pretrain::train::plan::time::Links;
use pretrain::train::plan::{self, Hardware, PlanInput};

/// Plan a pre-training run: memory per GPU, step time, GPU-hours, days and cost.
#[derive(Parser, Debug)]
#[command(name = "plan", version, allow_negative_numbers = true)]
struct Args {
    /// A published model's shapes.
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    /// Parameters, when the shapes do not matter (e.g. 7.5e9): no activations, no TP or PP.
    #[arg(long, value_parser = positive)]
    params: Option<f64>,
    #[command(flatten)]
    shape: ShapeFlags,
    /// GPUs in all.
    #[arg(long, default_value_t = 1, value_parser = whole)]
    gpus: u64,
    /// Tensor-parallel degree.
    #[arg(long, default_value_t = 1, value_parser = whole)]
    tp: u64,
    /// Pipeline stages.
    #[arg(long, default_value_t = 1, value_parser = whole)]
    pp: u64,
    /// ZeRO stage: 0 (plain data parallel), 1 (optimizer), 2 (+ gradients), 3 (+ parameters).
    #[arg(long, default_value_t = 0)]
    zero: u8,
    /// Megatron's sequence parallelism beside TP.
    #[arg(long)]
    sequence_parallel: bool,
    /// Activations given back by recomputing in the backward pass.
    #[arg(long, value_enum, default_value_t = Recompute::None)]
    recompute: Recompute,
    /// Sequences per micro-batch per GPU.
    #[arg(long, default_value_t = 1, value_parser = whole)]
    micro_batch: u64,
    /// Micro-batches per step per data-parallel rank.
    #[arg(long, default_value_t = 1, value_parser = whole)]
    grad_accum: u64,
    /// Training tokens [default: 20 per parameter, Chinchilla's rule].
    #[arg(long, value_parser = positive)]
    tokens: Option<f64>,
    #[command(flatten)]
    hardware: HardwareFlags,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: Common,
}
pretrain::has_common!(Args);

/// Explicit sizes: alone (with --n-layer, --n-embd, --n-head) or over a preset's.
#[derive(clap::Args, Debug)]
struct ShapeFlags {
    /// Family of the explicit sizes [default: a preset's, else gpt2].
    #[arg(long, value_enum)]
    arch: Option<Arch>,
    #[arg(long, value_parser = whole)]
    n_layer: Option<u64>,
    #[arg(long, value_parser = whole)]
    n_embd: Option<u64>,
    #[arg(long, value_parser = whole)]
    n_head: Option<u64>,
    /// Key/value heads [default: the preset's with grouped-query attention, else --n-head].
    #[arg(long, value_parser = whole)]
    n_kv_head: Option<u64>,
    /// MLP hidden width [default: the preset's, else 4 × --n-embd].
    #[arg(long, value_parser = whole)]
    ffn: Option<u64>,
    /// Vocabulary [default: 50257].
    #[arg(long, value_parser = whole)]
    vocab: Option<u64>,
    /// Tokens per sequence [default: the preset's, else 2048].
    #[arg(long, value_parser = whole)]
    seq_len: Option<u64>,
}

/// The GPU, its links and its price (defaults: an H100 SXM in an 8-GPU node).
#[derive(clap::Args, Debug)]
struct HardwareFlags {
    /// Dense bf16 peak per GPU, TFLOP/s.
    #[arg(long, default_value_t = 989.0, value_parser = positive)]
    gpu_peak_tflops: f64,
    /// Model FLOPs utilization, above 0 and at most 1.
    #[arg(long, default_value_t = 0.4, value_parser = fraction)]
    mfu: f64,
    /// Memory per GPU, GB (10^9 bytes).
    #[arg(long, default_value_t = 80.0, value_parser = positive)]
    gpu_memory_gb: f64,
    /// GB/s one GPU sends within its node (NVLink 4: 450).
    #[arg(long, default_value_t = 450.0, value_parser = positive)]
    intra_node_gbps: f64,
    /// GB/s one GPU sends to other nodes (one 400 Gb/s NIC: 50).
    #[arg(long, default_value_t = 50.0, value_parser = positive)]
    inter_node_gbps: f64,
    #[arg(long, default_value_t = 8, value_parser = whole)]
    gpus_per_node: u64,
    /// Price of one GPU for one hour, US dollars.
    #[arg(long, default_value_t = 2.0, value_parser = non_negative)]
    price_per_gpu_hour: f64,
}

fn whole(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(x) if x > 0 => Ok(x),
        _ => Err("expected a whole number above 0".into()),
    }
}

fn real(s: &str, ok: impl Fn(f64) -> bool, want: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && ok(x) => Ok(x),
        _ => Err(format!("expected {want}")),
    }
}

fn positive(s: &str) -> Result<f64, String> {
    real(s, |x| x > 0.0, "a finite number above 0")
}

fn non_negative(s: &str) -> Result<f64, String> {
    real(s, |x| x >= 0.0, "a finite number, 0 or more")
}

fn fraction(s: &str) -> Result<f64, String> {
    real(s, |x| x > 0.0 && x <= 1.0, "a number above 0 and at most 1")
}

/// The shapes from a preset and the explicit sizes over it, or none for `--params` alone.
fn model_shape(a: &Args) -> anyhow::Result<Option<ModelShape>> {
    let f = &a.shape;
    let base = match (a.preset, f.n_layer, f.n_embd, f.n_head) {
        (Some(p), ..) => p.shape(),
        (None, Some(n_layer), Some(n_embd), Some(n_head)) => ModelShape {
            seq_len: 2048,
            ..ModelShape::gpt2(n_layer, n_embd, n_head)
        },
        (None, None, None, None) if a.params.is_some() => return Ok(None),
        _ => anyhow::bail!("give --preset, --params, or --n-layer, --n-embd and --n-head"),
    };
    Ok(Some(ModelShape {
        arch: f.arch.unwrap_or(base.arch),
        n_layer: f.n_layer.unwrap_or(base.n_layer),
        n_embd: f.n_embd.unwrap_or(base.n_embd),
        n_head: f.n_head.unwrap_or(base.n_head),
        // Without grouped-query attention the key/value heads follow --n-head.
        n_kv_head: f.n_kv_head.unwrap_or(if base.n_kv_head == base.n_head {
            f.n_head.unwrap_or(base.n_head)
        } else {
            base.n_kv_head
        }),
        ffn: f.ffn.unwrap_or(base.ffn),
        vocab: f.vocab.unwrap_or(base.vocab),
        seq_len: f.seq_len.unwrap_or(base.seq_len),
    }))
}

fn input(a: &Args) -> anyhow::Result<PlanInput> {
    let model = model_shape(a)?;
    let params = a
        .params
        .or(model.map(|m| m.params()))
        .ok_or_else(|| anyhow::anyhow!("give --preset, --params or the model's sizes"))?;
    let h = &a.hardware;
    Ok(PlanInput {
        params,
        model,
        layout: Layout::new(a.gpus, a.tp, a.pp, a.zero)?,
        micro_batch: a.micro_batch,
        seq_len: model.map_or(a.shape.seq_len.unwrap_or(2048), |m| m.seq_len),
        grad_accum: a.grad_accum,
        tokens: a.tokens.unwrap_or(20.0 * params),
        recompute: a.recompute,
        sequence_parallel: a.sequence_parallel,
        hardware: Hardware {
            peak_tflops: h.gpu_peak_tflops,
            mfu: h.mfu,
            memory_gb: h.gpu_memory_gb,
            price_per_gpu_hour: h.price_per_gpu_hour,
            links: Links {
                intra_node_gbps: h.intra_node_gbps,
                inter_node_gbps: h.inter_node_gbps,
                gpus_per_node: h.gpus_per_node,
            },
        },
    })
}

fn main() -> std::process::ExitCode {
    cli::run::<Args, _>("plan", |a| {
        let input = input(&a)?;
        plan::validate(&input)?;
        let report = plan::plan(&input);
        if a.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", plan::table::render(&report));
        }
        if !report.memory.fits {
            pretrain::info!(
                "plan: this layout needs {:.1} GB per GPU, more than the {} GB of --gpu-memory-gb: \
                 try --recompute, a higher --zero, more --tp or --pp, or a smaller --micro-batch",
                report.memory.total_gb_per_gpu,
                report.memory.gpu_memory_gb
            );
        }
        Ok(())
    })
}
