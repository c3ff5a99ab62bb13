//! The planner: a pre-training run at internet scale, on paper.
//!
//! Our runs fit on a laptop. The runs the lessons talk about (LLaMA 3 405B on 15.6T tokens,
//! 16,384 H100s for about two months) do not, but the arithmetic that sizes them does, and it is
//! short. Given a model, a number of GPUs and how they split the work, the planner answers the
//! three questions that come first:
//!
//! 1. **Does it fit?** Each GPU holds its share of the model states (weights, gradients, Adam's
//!    moments and master weights: 16 bytes per parameter in mixed precision) and the
//!    activations of the micro-batches it has in flight. Data parallelism (DP) copies the
//!    states on every GPU; ZeRO (DeepSpeed's stages 1–3, FSDP's SHARD_GRAD_OP and FULL_SHARD)
//!    shards them over the DP group; tensor parallelism (TP) splits every matrix, pipeline
//!    parallelism (PP) the layers. Recomputation trades activations for a second forward pass.
//!    See [`memory`] for the formulas and their sources.
//! 2. **How long is a step, and where does it wait?** Compute is 6 FLOPs per parameter per
//!    token at the GPU's peak times the MFU; communication is the bytes each parallelism sends
//!    over the link its group uses. See [`time`].
//! 3. **What does the run cost?** 6·N·D FLOPs over (peak · MFU) give the GPU-hours; divided by
//!    the GPUs, the days; times a price, the bill.
//!
//! The tests hold it to published figures: the ZeRO paper's 120 / 31.4 / 16.6 / 1.9 GB for
//! Ψ = 7.5B on 64 GPUs, LLaMA 3 405B's 3.8·10^25 FLOPs and the 30.84M H100 GPU-hours Meta
//! reports for it.
//!
//! Everything here is a pure function of [`PlanInput`]; the `plan` binary parses flags into it
//! and prints the [`Report`] as a table ([`table`]) or JSON.

pub mod memory;
pub mod model;
pub mod table;
pub mod time;

use memory::{Activations, GB, Layout, ModelStates, Recompute};
use model::ModelShape;
use serde::Serialize;
use time::{Links, Message, Step};

/// The GPU and its price.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Hardware {
    /// Dense bf16 peak, TFLOP/s (an H100 SXM: 989).
    pub peak_tflops: f64,
    /// Model FLOPs utilization, in (0, 1].
    pub mfu: f64,
    /// Memory per GPU, GB (10^9 bytes).
    pub memory_gb: f64,
    /// Price of one GPU for one hour.
    pub price_per_gpu_hour: f64,
    pub links: Links,
}

/// Everything a plan depends on.
#[derive(Clone, Copy, Debug)]
pub struct PlanInput {
    /// Parameters (N, Ψ).
    pub params: f64,
    /// The shapes, when known (a preset or explicit sizes); `--params` alone gives none, and
    /// then neither activations nor TP and PP messages can be counted.
    pub model: Option<ModelShape>,
    pub layout: Layout,
    /// Sequences per micro-batch per GPU (b).
    pub micro_batch: u64,
    /// Tokens per sequence (s).
    pub seq_len: u64,
    /// Micro-batches per step per data-parallel rank (m).
    pub grad_accum: u64,
    /// Training tokens (D).
    pub tokens: f64,
    pub recompute: Recompute,
    /// Megatron's sequence parallelism beside TP: the LayerNorms and dropouts split too.
    pub sequence_parallel: bool,
    pub hardware: Hardware,
}

/// A plan's answers. `--json` prints them as one flat object, so that scripts read every
/// figure by name (`model_states_gb_per_gpu`, `gpu_hours`).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub params: f64,
    pub model: Option<ModelShape>,
    pub layout: Layout,
    pub micro_batch: u64,
    pub seq_len: u64,
    pub grad_accum: u64,
    pub tokens: f64,
    pub tokens_per_step: f64,
    pub steps: f64,
    #[serde(flatten)]
    pub memory: MemoryFigures,
    #[serde(flatten)]
    pub time: TimeFigures,
}

/// Memory per GPU, GB (10^9 bytes).
#[derive(Clone, Debug, Serialize)]
pub struct MemoryFigures {
    pub params_gb_per_gpu: f64,
    pub grads_gb_per_gpu: f64,
    pub optimizer_gb_per_gpu: f64,
    pub model_states_gb_per_gpu: f64,
    /// Activations without recomputation, selective and full (none when the shapes are unknown).
    pub activations_gb_per_gpu: Option<f64>,
    pub activations_selective_gb_per_gpu: Option<f64>,
    pub activations_full_recompute_gb_per_gpu: Option<f64>,
    pub recompute: Recompute,
    pub sequence_parallel: bool,
    /// Model states plus the activations under `recompute`.
    pub total_gb_per_gpu: f64,
    pub gpu_memory_gb: f64,
    pub fits: bool,
}

/// FLOPs, a step's seconds and the whole run's.
#[derive(Clone, Debug, Serialize)]
pub struct TimeFigures {
    pub flops_per_token: f64,
    pub attention_flops_per_token: Option<f64>,
    pub total_flops: f64,
    pub gpu_peak_tflops: f64,
    pub mfu: f64,
    pub step_compute_s: f64,
    pub messages: Vec<Message>,
    pub step_communication_s: f64,
    pub pipeline_bubble: f64,
    pub gpu_hours: f64,
    pub days: f64,
    pub price_per_gpu_hour: f64,
    pub cost: f64,
}

/// Checks what the layout asks of the model: TP and PP need the shapes, TP must divide the
/// heads, and a pipeline cannot have more stages than layers.
pub fn validate(input: &PlanInput) -> anyhow::Result<()> {
    let l = &input.layout;
    let Some(model) = &input.model else {
        if l.tp > 1 || l.pp > 1 {
            anyhow::bail!("--tp and --pp need the model's shapes (--preset or --n-layer ...)");
        }
        return Ok(());
    };
    model.validate()?;
    let kv_split = model.n_kv_head.is_multiple_of(l.tp) || l.tp.is_multiple_of(model.n_kv_head);
    if !model.n_head.is_multiple_of(l.tp) || !kv_split {
        anyhow::bail!("--tp {} does not split the {} heads", l.tp, model.n_head);
    }
    if l.pp > model.n_layer {
        anyhow::bail!(
            "--pp {} is more stages than the {} layers",
            l.pp,
            model.n_layer
        );
    }
    Ok(())
}

/// The plan for `input` (call [`validate`] first).
pub fn plan(input: &PlanInput) -> Report {
    let tokens_per_step =
        (input.micro_batch * input.seq_len) as f64 * (input.grad_accum * input.layout.dp) as f64;
    Report {
        params: input.params,
        model: input.model,
        layout: input.layout,
        micro_batch: input.micro_batch,
        seq_len: input.seq_len,
        grad_accum: input.grad_accum,
        tokens: input.tokens,
        tokens_per_step,
        steps: (input.tokens / tokens_per_step).ceil(),
        memory: memory_figures(input),
        time: time_figures(input, tokens_per_step),
    }
}

fn memory_figures(input: &PlanInput) -> MemoryFigures {
    let states = ModelStates::new(input.params, &input.layout);
    let activations = input.model.as_ref().map(|model| Activations {
        model,
        layout: &input.layout,
        micro_batch: input.micro_batch,
        seq_len: input.seq_len,
        micro_batches: input.grad_accum,
        sequence_parallel: input.sequence_parallel,
    });
    let act = |mode| activations.map(|a| a.bytes(mode) / GB);
    let total_gb = states.total() / GB + act(input.recompute).unwrap_or(0.0);
    MemoryFigures {
        params_gb_per_gpu: states.params / GB,
        grads_gb_per_gpu: states.grads / GB,
        optimizer_gb_per_gpu: states.optimizer / GB,
        model_states_gb_per_gpu: states.total() / GB,
        activations_gb_per_gpu: act(Recompute::None),
        activations_selective_gb_per_gpu: act(Recompute::Selective),
        activations_full_recompute_gb_per_gpu: act(Recompute::Full),
        recompute: input.recompute,
        sequence_parallel: input.sequence_parallel,
        total_gb_per_gpu: total_gb,
        gpu_memory_gb: input.hardware.memory_gb,
        fits: total_gb <= input.hardware.memory_gb,
    }
}

fn time_figures(input: &PlanInput, tokens_per_step: f64) -> TimeFigures {
    let (hw, layout) = (&input.hardware, &input.layout);
    let flops_per_token = time::flops_per_token(input.params);
    let total_flops = flops_per_token * input.tokens;
    let gpu_flops = hw.peak_tflops * 1e12 * hw.mfu;
    let gpu_seconds = total_flops / gpu_flops;
    let step = Step {
        params: input.params,
        model: input.model.as_ref(),
        layout,
        micro_batch: input.micro_batch,
        seq_len: input.seq_len,
        micro_batches: input.grad_accum,
    };
    let messages = step.messages(&hw.links);
    TimeFigures {
        flops_per_token,
        attention_flops_per_token: input
            .model
            .map(|m| time::attention_flops_per_token(&m, input.seq_len)),
        total_flops,
        gpu_peak_tflops: hw.peak_tflops,
        mfu: hw.mfu,
        step_compute_s: flops_per_token * tokens_per_step / (layout.gpus as f64 * gpu_flops),
        step_communication_s: messages.iter().map(|m| m.seconds).sum(),
        messages,
        pipeline_bubble: time::pipeline_bubble(layout.pp, input.grad_accum),
        gpu_hours: gpu_seconds / 3600.0,
        days: gpu_seconds / layout.gpus as f64 / 86400.0,
        price_per_gpu_hour: hw.price_per_gpu_hour,
        cost: gpu_seconds / 3600.0 * hw.price_per_gpu_hour,
    }
}

#[cfg(test)]
mod tests;
