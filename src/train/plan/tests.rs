//! The planner against published figures: LLaMA 3 405B's FLOPs and GPU-hours.

use super::memory::{Layout, Recompute};
use super::model::Preset;
use super::time::Links;
use super::*;

/// Meta's report for LLaMA 3.1 405B: 30.84M H100-80GB GPU-hours (the model card's "Training
/// Factors"), 3.8·10^25 FLOPs on 15.6T tokens (Grattafiori et al. 2024, section 3.2), and
/// 38–43% MFU on 989 TFLOP/s of bf16 peak (section 3.3.2, Table 4: 43% on 8,192 GPUs, 41% on
/// 16,384, 38% at 131K-token context).
const META_GPU_HOURS: f64 = 30.84e6;

fn llama3_405b(mfu: f64) -> PlanInput {
    PlanInput {
        params: Preset::Llama3_405b.shape().params(),
        model: Some(Preset::Llama3_405b.shape()),
        // Table 4's 16,384-GPU layout: TP 8, PP 16, DP 128, 16 micro-batches of one sequence.
        layout: Layout::new(16384, 8, 16, 1).unwrap(),
        micro_batch: 1,
        seq_len: 8192,
        grad_accum: 16,
        tokens: 15.6e12,
        recompute: Recompute::None,
        sequence_parallel: true,
        hardware: Hardware {
            peak_tflops: 989.0,
            mfu,
            memory_gb: 80.0,
            price_per_gpu_hour: 2.0,
            links: Links {
                intra_node_gbps: 450.0,
                inter_node_gbps: 50.0,
                gpus_per_node: 8,
            },
        },
    }
}

/// 6·N·D = 6 · 405.85B · 15.6T = 3.799e25: the paper's 3.8e25 to its two digits (0.5%).
#[test]
fn llama3_405b_flops() {
    let r = plan(&llama3_405b(0.41));
    assert!(
        (r.time.total_flops - 3.8e25).abs() <= 0.005 * 3.8e25,
        "{}",
        r.time.total_flops
    );
}

/// GPU-hours at each end of Meta's MFU range: 28.1M at 38% and 24.8M at 43%, 9% and 20%
/// below the 30.84M Meta reports. The plan counts only 6·N·D at a steady MFU; Meta's hours
/// also hold the attention's FLOPs (8% more at 8K tokens, see the next test), the long-context
/// and annealing stages at lower MFU, and the time lost to the 466 job interruptions of the
/// 54-day snapshot (section 3.3.4). The margin: the plan is below Meta's figure and within 20%.
#[test]
fn llama3_405b_gpu_hours_against_meta() {
    for mfu in [0.38, 0.43] {
        let r = plan(&llama3_405b(mfu));
        let gap = (META_GPU_HOURS - r.time.gpu_hours) / META_GPU_HOURS;
        assert!(
            (0.0..=0.20).contains(&gap),
            "MFU {mfu}: {} ({gap})",
            r.time.gpu_hours
        );
    }
}

/// Counting the attention's FLOPs (6N + 12·L·h·s per token) at 41%, Meta's MFU for the
/// 16,384-GPU layout that trained most tokens: 28.2M GPU-hours, 9% below Meta's; within 10%.
#[test]
fn llama3_405b_with_attention_flops() {
    let r = plan(&llama3_405b(0.41));
    let per_token = r.time.flops_per_token + r.time.attention_flops_per_token.unwrap();
    let hours = per_token * r.tokens / (989e12 * 0.41) / 3600.0;
    let gap = (META_GPU_HOURS - hours) / META_GPU_HOURS;
    assert!((0.0..=0.10).contains(&gap), "{hours} ({gap})");
}

/// The layout fits only with recomputation: without it the first pipeline stage holds 126
/// layers' worth of activations for 16 micro-batches in flight.
#[test]
fn llama3_405b_fits_with_full_recomputation() {
    let mut input = llama3_405b(0.41);
    assert!(!plan(&input).memory.fits);
    input.recompute = Recompute::Full;
    let r = plan(&input);
    assert!(r.memory.fits, "{} GB", r.memory.total_gb_per_gpu);
    assert_eq!(r.tokens_per_step, 16.0 * 8192.0 * 128.0);
}

#[test]
fn layouts_the_model_refuses() {
    let mut input = llama3_405b(0.4);
    input.layout = Layout::new(16384, 16384, 1, 0).unwrap();
    assert!(validate(&input).unwrap_err().to_string().contains("heads"));
    input.layout = Layout::new(256, 1, 256, 0).unwrap();
    assert!(validate(&input).unwrap_err().to_string().contains("layers"));
    input.model = None;
    input.layout = Layout::new(64, 2, 1, 0).unwrap();
    assert!(validate(&input).unwrap_err().to_string().contains("shapes"));
}
