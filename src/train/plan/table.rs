//! The human form of a [`Report`]: a few aligned sections, model and layout first, then memory,
//! time and the bill, and a plain sentence when the layout does not fit.

use super::Report;
use super::memory::Recompute;
use super::model::Arch;
use std::fmt::Write;

/// `405.9B`, `16.8M`, `124.4M`, `980`: three or four significant digits and a short scale.
pub fn count(x: f64) -> String {
    const SCALES: [(f64, &str); 4] = [(1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")];
    for (scale, name) in SCALES {
        if x.abs() >= scale {
            return format!("{:.1}{name}", x / scale);
        }
    }
    format!("{x:.0}")
}

/// Seconds as `0.84 s`, `3.2 ms`, `12 µs`.
fn seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// The whole table, ending in a newline.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    model_and_layout(&mut out, r);
    memory(&mut out, r);
    time(&mut out, r);
    bill(&mut out, r);
    out
}

fn row(out: &mut String, label: &str, value: String) {
    let _ = writeln!(out, "  {label:<24}{value}");
}

fn model_and_layout(out: &mut String, r: &Report) {
    let _ = writeln!(out, "model and layout");
    let shape = match &r.model {
        None => "given by --params".to_string(),
        Some(m) => {
            let family = match m.arch {
                Arch::Gpt2 => "GPT-2",
                Arch::Llama => "LLaMA",
            };
            format!(
                "{family}, {} layers × width {}, {} heads ({} KV), FFN {}, vocab {}",
                m.n_layer, m.n_embd, m.n_head, m.n_kv_head, m.ffn, m.vocab
            )
        }
    };
    row(out, "parameters", format!("{} ({shape})", count(r.params)));
    let l = &r.layout;
    let sp = if r.memory.sequence_parallel {
        " + SP"
    } else {
        ""
    };
    let layout = format!(
        "{} GPUs = TP {}{sp} × PP {} × DP {}, ZeRO-{}",
        l.gpus, l.tp, l.pp, l.dp, l.zero
    );
    row(out, "layout", layout);
    let batch = format!(
        "micro-batch {} × {} tokens × grad-accum {} × DP {} = {} tokens",
        r.micro_batch,
        r.seq_len,
        r.grad_accum,
        l.dp,
        count(r.tokens_per_step)
    );
    row(out, "tokens per step", batch);
    row(
        out,
        "run",
        format!("{} tokens = {} steps", count(r.tokens), count(r.steps)),
    );
}

fn memory(out: &mut String, r: &Report) {
    let _ = writeln!(out, "memory per GPU (GB = 10^9 bytes)");
    row(
        out,
        "parameters (bf16)",
        format!("{:.2}", r.memory.params_gb_per_gpu),
    );
    row(
        out,
        "gradients (bf16)",
        format!("{:.2}", r.memory.grads_gb_per_gpu),
    );
    row(
        out,
        "optimizer (fp32 ×3)",
        format!("{:.2}", r.memory.optimizer_gb_per_gpu),
    );
    row(
        out,
        "model states",
        format!("{:.2}", r.memory.model_states_gb_per_gpu),
    );
    let modes = [
        (Recompute::None, "none", r.memory.activations_gb_per_gpu),
        (
            Recompute::Selective,
            "selective",
            r.memory.activations_selective_gb_per_gpu,
        ),
        (
            Recompute::Full,
            "full",
            r.memory.activations_full_recompute_gb_per_gpu,
        ),
    ];
    for (mode, name, gb) in modes {
        let Some(gb) = gb else {
            row(
                out,
                "activations",
                "unknown (--params gives no shapes)".into(),
            );
            break;
        };
        let mark = if mode == r.memory.recompute {
            "  <- --recompute"
        } else {
            ""
        };
        row(
            out,
            &format!("activations ({name})"),
            format!("{gb:.2}{mark}"),
        );
    }
    let verdict = if r.memory.fits {
        format!("fits in {} GB", r.memory.gpu_memory_gb)
    } else {
        format!("DOES NOT FIT in {} GB", r.memory.gpu_memory_gb)
    };
    row(
        out,
        "total",
        format!("{:.2}: {verdict}", r.memory.total_gb_per_gpu),
    );
}

fn time(out: &mut String, r: &Report) {
    let _ = writeln!(out, "time");
    let attention = r
        .time
        .attention_flops_per_token
        .map_or(String::new(), |a| format!(" (+ {a:.3e} attention)"));
    row(
        out,
        "FLOPs per token",
        format!("{:.3e} = 6N{attention}", r.time.flops_per_token),
    );
    row(out, "FLOPs, 6·N·D", format!("{:.3e}", r.time.total_flops));
    let at = format!(
        "at {:.0}% MFU of {} TFLOP/s",
        r.time.mfu * 100.0,
        r.time.gpu_peak_tflops
    );
    row(
        out,
        "step, compute",
        format!("{} {at}", seconds(r.time.step_compute_s)),
    );
    for m in &r.time.messages {
        let what = format!(
            "{} ({}, {}): {:.3} GB",
            m.parallelism,
            m.what,
            m.link,
            m.bytes_per_gpu / 1e9
        );
        row(
            out,
            "step, messages",
            format!("{} {what}", seconds(m.seconds)),
        );
    }
    if r.layout.pp > 1 {
        row(
            out,
            "pipeline bubble",
            format!("{:.1}%", r.time.pipeline_bubble * 100.0),
        );
    }
}

fn bill(out: &mut String, r: &Report) {
    let _ = writeln!(out, "the run");
    row(out, "GPU-hours", count(r.time.gpu_hours));
    row(
        out,
        "days",
        format!("{:.1} on {} GPUs", r.time.days, r.layout.gpus),
    );
    let cost = format!(
        "${} at ${}/GPU-hour",
        count(r.time.cost),
        r.time.price_per_gpu_hour
    );
    row(out, "cost", cost);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(count(405_853_388_800.0), "405.9B");
        assert_eq!(count(16.8e6), "16.8M");
        assert_eq!(count(15.6e12), "15.6T");
        assert_eq!(count(980.0), "980");
        assert_eq!(seconds(6.154), "6.15 s");
        assert_eq!(seconds(0.02147), "21.47 ms");
    }
}
