//! How much memory a run needs, estimated from the model's shapes before anything large is
//! allocated, and the check that refuses a run that cannot fit: one line with both numbers
//! instead of an allocation failure halfway through setting up.
//!
//! Training, for P parameters, s bytes per value of the dtype (4 for f32, 2 for bf16),
//! N = B·T tokens per micro-batch, width C, H heads, L blocks and a vocabulary of V:
//!
//! | part | bytes |
//! |---|---|
//! | parameters | s·P |
//! | gradients | s·P |
//! | optimizer | 8·P (AdamW's two f32 moments) + 4·P (the f32 master copies, bf16 only) |
//! | activations | (L + 1)·(16·N·C·s + 4·N·(4 + H)) + 3·N·C·s + logits |
//!
//! A block saves 16 values per token and channel for its backward pass: ln_1's output (1), the
//! queries, keys and values (3), the attention's output (1), the residual after it (1), ln_2's
//! output (1), the MLP's hidden layer before and after GELU (4 + 4) and the block's output (1);
//! and per token f32 statistics: the mean and 1/std of both LayerNorms (4) and the attention's
//! log-sum-exp per head (H). The backward pass holds about one more block's worth at a time
//! (the + 1). Outside the blocks: the embeddings, ln_f's output and the head's input gradient
//! (3·N·C). The logits: a GPU keeps all N·V of them in the dtype; the CPU makes them a chunk of
//! at most 2^24 f32 at a time. The token shards the loader holds are not counted: they are the
//! size of the files on disk.
//!
//! Sampling (f32, on the CPU) with a KV cache of up to T tokens and a largest forward pass of
//! T' tokens (the prompt): the parameters 4·P, the KV cache 2·L·T·C·4, the attention weights of
//! that pass 2·H·T'·T·4 (scores and softmax), one block's activations for it 16·T'·C·4 and the
//! logits of one position V·4; and the tokens themselves, which the sampler keeps as it goes
//! (the sequence and the output, u32 each): 8·(prompt + new tokens).

use super::config::GptConfig;
use crate::tensor::devices::{self, CPU_CLASSIFIER_CHUNK_FLOATS};
use crate::tensor::{DType, Device};
use anyhow::{Result, bail};

/// A training run's shapes: what its memory depends on.
#[derive(Clone, Copy, Debug)]
pub struct TrainingShape {
    pub config: GptConfig,
    /// Sequences per micro-batch (B).
    pub batch: usize,
    /// Tokens per sequence (T).
    pub seq_len: usize,
    /// Storage type of the parameters and activations.
    pub dtype: DType,
    /// Where the run keeps them.
    pub device: Device,
}

/// A sampling run's shapes.
#[derive(Clone, Copy, Debug)]
pub struct SamplingShape {
    pub config: GptConfig,
    /// The most tokens one forward pass takes at once (the prompt, or half the context when a
    /// full cache is rebuilt).
    pub prompt_pass: usize,
    /// The most tokens the KV cache holds (at most the model's context).
    pub context: usize,
    /// The prompt and the new tokens: every token the sampler keeps.
    pub tokens: usize,
}

impl SamplingShape {
    /// Continuing `prompt_len` tokens by up to `max_new`: the cache grows to the context at
    /// most; the first pass reads the prompt (cut to the context), and once the cache is full
    /// each rebuild reads the most recent half of it (see `crate::sample::generate`).
    pub fn new(config: GptConfig, prompt_len: usize, max_new: usize) -> SamplingShape {
        let block = config.block_size;
        let total = prompt_len.saturating_add(max_new);
        let rebuilds = if total > block { block / 2 } else { 0 };
        SamplingShape {
            config,
            prompt_pass: prompt_len.min(block).max(rebuilds),
            context: total.min(block),
            tokens: total,
        }
    }
}

/// An estimate in bytes, part by part (f64: a product of absurd flags must not overflow).
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryEstimate {
    pub parts: Vec<(&'static str, f64)>,
}

impl MemoryEstimate {
    /// The sum of the parts.
    pub fn total(&self) -> f64 {
        self.parts.iter().map(|p| p.1).sum()
    }

    /// Training `shape` (see the module docs for the formula).
    pub fn training(shape: &TrainingShape) -> MemoryEstimate {
        let c = &shape.config;
        let p = param_count(c);
        let s = shape.dtype.size_in_bytes() as f64;
        let master = if shape.dtype == DType::BF16 { 4.0 } else { 0.0 };
        let n = shape.batch as f64 * shape.seq_len as f64;
        let (width, heads, layers) = (c.n_embd as f64, c.n_head as f64, c.n_layer as f64);
        let per_block = 16.0 * n * width * s + 4.0 * n * (4.0 + heads);
        let activations = (layers + 1.0) * per_block + 3.0 * n * width * s + logits(shape, n);
        MemoryEstimate {
            parts: vec![
                ("parameters", s * p),
                ("gradients", s * p),
                ("optimizer", (8.0 + master) * p),
                ("activations", activations),
            ],
        }
    }

    /// Sampling (see the module docs and [`SamplingShape`]).
    pub fn sampling(shape: &SamplingShape) -> MemoryEstimate {
        let config = &shape.config;
        let (t, p) = (shape.context as f64, shape.prompt_pass as f64);
        let (width, heads, layers) = (
            config.n_embd as f64,
            config.n_head as f64,
            config.n_layer as f64,
        );
        MemoryEstimate {
            parts: vec![
                ("parameters", 4.0 * param_count(config)),
                ("KV cache", 2.0 * layers * t * width * 4.0),
                ("attention", 2.0 * heads * p * t * 4.0),
                (
                    "activations",
                    16.0 * p * width * 4.0 + config.vocab_size as f64 * 4.0,
                ),
                ("tokens", 8.0 * shape.tokens as f64),
            ],
        }
    }

    /// Refuses `what` (e.g. "training") in one line when the estimate is above `available`
    /// bytes on `place` (e.g. "the CPU"); `None` (unknown) passes.
    pub fn check(&self, what: &str, place: &str, available: Option<u64>) -> Result<()> {
        let Some(available) = available else {
            return Ok(());
        };
        if self.total() <= available as f64 {
            return Ok(());
        }
        let parts: Vec<String> = self
            .parts
            .iter()
            .map(|(name, bytes)| format!("{name} {}", human_bytes(*bytes)))
            .collect();
        bail!(
            "{what} needs about {} ({}), {} available on {place}",
            human_bytes(self.total()),
            parts.join(", "),
            human_bytes(available as f64)
        )
    }
}

/// [`MemoryEstimate::check`] against what `device` has: the CPU's `MemAvailable`, a GPU's total
/// memory (skipped where that is unknown).
pub fn check_fits(need: &MemoryEstimate, what: &str, device: Device) -> Result<()> {
    need.check(
        what,
        &devices::describe(device),
        devices::available_memory(device),
    )
}

/// P, as f64 (infinite for a config whose count overflows).
fn param_count(c: &GptConfig) -> f64 {
    c.checked_num_params().map_or(f64::INFINITY, |p| p as f64)
}

/// The logits the head holds at once: all of them on a GPU, a chunk of rows on the CPU.
fn logits(shape: &TrainingShape, n: f64) -> f64 {
    let v = shape.config.vocab_size as f64;
    match shape.device {
        Device::Cuda(_) => n * v * shape.dtype.size_in_bytes() as f64,
        Device::Cpu => {
            let rows = (CPU_CLASSIFIER_CHUNK_FLOATS / shape.config.vocab_size.max(1)).max(1);
            n.min(rows as f64) * v * 4.0
        }
    }
}

/// `1.2 TB`, `23.1 GB`, `512 MB`: decimal units, three significant digits at most.
pub fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    if !bytes.is_finite() {
        return "more than can be counted".to_string();
    }
    let mut x = bytes;
    let mut unit = 0;
    while x >= 999.5 && unit + 1 < UNITS.len() {
        x /= 1000.0;
        unit += 1;
    }
    if unit == 0 || x >= 99.95 {
        format!("{x:.0} {}", UNITS[unit])
    } else {
        format!("{x:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpt2(batch: usize, dtype: DType, device: Device) -> TrainingShape {
        TrainingShape {
            config: GptConfig::GPT2_124M,
            batch,
            seq_len: 1024,
            dtype,
            device,
        }
    }

    #[test]
    fn gpt2_124m_on_the_cpu_matches_a_hand_count() {
        let e = MemoryEstimate::training(&gpt2(1, DType::F32, Device::Cpu));
        // P = 124,439,808; 4 bytes each for the weights and the gradients, 8 for the moments.
        // A block: 16·1024·768·4 + 4·1024·(4 + 12) = 50,397,184 bytes, 13 of them; outside:
        // 3·1024·768·4 = 9,437,184; logits: 2^24 / 50,257 = 333 rows of 50,257 f32.
        let want = [
            ("parameters", 497_759_232.0),
            ("gradients", 497_759_232.0),
            ("optimizer", 995_518_464.0),
            ("activations", 655_163_392.0 + 9_437_184.0 + 66_942_324.0),
        ];
        assert_eq!(e.parts, want.to_vec());
        assert_eq!(human_bytes(e.total()), "2.7 GB");
    }

    #[test]
    fn gpt2_124m_in_bf16_on_a_gpu_keeps_master_copies_and_all_logits() {
        let e = MemoryEstimate::training(&gpt2(8, DType::BF16, Device::Cuda(0)));
        let p = 124_439_808.0;
        let n = 8.0 * 1024.0;
        let block = 16.0 * n * 768.0 * 2.0 + 4.0 * n * 16.0;
        let activations = 13.0 * block + 3.0 * n * 768.0 * 2.0 + n * 50_257.0 * 2.0;
        let want = [
            ("parameters", 2.0 * p),
            ("gradients", 2.0 * p),
            ("optimizer", 12.0 * p),
            ("activations", activations),
        ];
        assert_eq!(e.parts, want.to_vec());
    }

    #[test]
    fn sampling_counts_the_cache_the_prompt_pass_and_the_tokens() {
        // 100 prompt tokens and 2000 new ones: the cache fills the 1024-token context, and
        // each rebuild reads 512 tokens, more than the prompt.
        let shape = SamplingShape::new(GptConfig::GPT2_124M, 100, 2000);
        assert_eq!((shape.prompt_pass, shape.context), (512, 1024));
        let e = MemoryEstimate::sampling(&shape);
        let want = [
            ("parameters", 497_759_232.0),
            ("KV cache", 2.0 * 12.0 * 1024.0 * 768.0 * 4.0),
            ("attention", 2.0 * 12.0 * 512.0 * 1024.0 * 4.0),
            ("activations", 16.0 * 512.0 * 768.0 * 4.0 + 50_257.0 * 4.0),
            ("tokens", 8.0 * 2100.0),
        ];
        assert_eq!(e.parts, want.to_vec());
        let short = SamplingShape::new(GptConfig::GPT2_124M, 100, 20);
        assert_eq!((short.prompt_pass, short.context), (100, 120));
        let overflow = SamplingShape::new(GptConfig::GPT2_124M, 5, usize::MAX);
        assert_eq!((overflow.prompt_pass, overflow.context), (512, 1024));
        // A long stream is refused for the tokens it keeps: its cache stops at the context.
        let long = SamplingShape::new(GptConfig::GPT2_124M, 5, 1 << 40);
        let err = MemoryEstimate::sampling(&long)
            .check("sampling", "the CPU", Some(23_100_000_000))
            .unwrap_err();
        assert!(err.to_string().contains(", tokens 8.8 TB)"), "{err}");
    }

    #[test]
    fn a_run_that_does_not_fit_is_refused_with_both_numbers() {
        let huge = GptConfig {
            n_embd: 1_000_000,
            n_head: 4,
            ..GptConfig::GPT2_124M
        };
        let shape = TrainingShape {
            config: huge,
            ..gpt2(1, DType::F32, Device::Cpu)
        };
        let e = MemoryEstimate::training(&shape);
        let err = e
            .check("training", "the CPU", Some(23_100_000_000))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("training needs about 2"), "{err}");
        assert!(err.contains("(parameters "), "{err}");
        assert!(err.ends_with(", 23.1 GB available on the CPU"), "{err}");
        assert!(!err.contains('\n'));
        assert!(e.check("training", "the CPU", None).is_ok());
        let small = MemoryEstimate::training(&gpt2(1, DType::F32, Device::Cpu));
        assert!(
            small
                .check("training", "the CPU", Some(3_000_000_000))
                .is_ok()
        );
    }

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(human_bytes(0.0), "0 B");
        assert_eq!(human_bytes(999.0), "999 B");
        assert_eq!(human_bytes(1_234.0), "1.2 kB");
        assert_eq!(human_bytes(470e9), "470 GB");
        assert_eq!(human_bytes(1.2e12), "1.2 TB");
        assert_eq!(human_bytes(f64::INFINITY), "more than can be counted");
    }
}
