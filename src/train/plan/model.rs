//! The model a plan is for: its shapes, five published presets, and its parameter count.
//!
//! Two families cover the presets. GPT-2 (Radford et al. 2019): learned positions, LayerNorm
//! with biases, a GELU MLP of width 4h, biases everywhere, the output head tied to the token
//! embedding. LLaMA 3 (Grattafiori et al. 2024, "The Llama 3 Herd of Models", Table 3, and the
//! `config.json` of each released model): rotary positions (no weights), RMSNorm (a gain, no
//! bias), grouped-query attention (fewer key/value heads than query heads), a SwiGLU MLP of
//! three matrices, no biases, and an output head of its own.
//!
//! Parameters, for L layers of width h, vocabulary V, FFN width f, head size d = h / heads and
//! k key/value heads:
//!
//! | part | GPT-2 | LLaMA 3 |
//! |---|---|---|
//! | token embedding | V·h | V·h |
//! | positions | T·h | 0 |
//! | attention, per layer | 4h² + 4h (q, k, v, out, with biases) | 2h² + 2·h·k·d (q, out; k, v) |
//! | MLP, per layer | 2·h·f + f + h | 3·h·f (gate, up, down) |
//! | norms, per layer | 4h (two LayerNorms) | 2h (two RMSNorms) |
//! | final norm | 2h | h |
//! | output head | 0 (tied) | V·h |

use serde::Serialize;

/// Which family's formulas a model follows (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Gpt2,
    Llama,
}

/// A transformer's shapes: everything its memory, FLOPs and messages depend on.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ModelShape {
    pub arch: Arch,
    /// Transformer blocks (L).
    pub n_layer: u64,
    /// Width of the residual stream (h).
    pub n_embd: u64,
    /// Query heads (a).
    pub n_head: u64,
    /// Key/value heads (k): equal to `n_head` without grouped-query attention.
    pub n_kv_head: u64,
    /// Width of the MLP's hidden layer (f).
    pub ffn: u64,
    /// Vocabulary (V).
    pub vocab: u64,
    /// The context the model was trained at (T): GPT-2's learned positions depend on it.
    pub seq_len: u64,
}

/// The models `--preset` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    Gpt2,
    Gpt2Xl,
    Llama3_8b,
    Llama3_70b,
    Llama3_405b,
}

impl ModelShape {
    /// A GPT-2 of the given depth, width and heads: MLP 4× wide, GPT-2's vocabulary of 50,257
    /// and context of 1,024 tokens.
    pub fn gpt2(n_layer: u64, n_embd: u64, n_head: u64) -> ModelShape {
        ModelShape {
            arch: Arch::Gpt2,
            n_layer,
            n_embd,
            n_head,
            n_kv_head: n_head,
            ffn: 4 * n_embd,
            vocab: 50257,
            seq_len: 1024,
        }
    }
}

impl Preset {
    /// The published shapes (GPT-2: the Hugging Face `gpt2` and `gpt2-xl` configs; LLaMA 3: the
    /// paper's Table 3 and the released `config.json`, vocabulary 128,256, 8,192 tokens).
    pub fn shape(self) -> ModelShape {
        let gpt2 = ModelShape::gpt2;
        let llama = |n_layer, n_embd, n_head, ffn| ModelShape {
            arch: Arch::Llama,
            n_layer,
            n_embd,
            n_head,
            n_kv_head: 8,
            ffn,
            vocab: 128256,
            seq_len: 8192,
        };
        match self {
            Preset::Gpt2 => gpt2(12, 768, 12),
            Preset::Gpt2Xl => gpt2(48, 1600, 25),
            Preset::Llama3_8b => llama(32, 4096, 32, 14336),
            Preset::Llama3_70b => llama(80, 8192, 64, 28672),
            Preset::Llama3_405b => llama(126, 16384, 128, 53248),
        }
    }
}

impl ModelShape {
    /// Parameters, by the table in the module docs (f64: absurd sizes must not overflow).
    pub fn params(&self) -> f64 {
        let (h, f, v) = (self.n_embd as f64, self.ffn as f64, self.vocab as f64);
        let layers = self.n_layer as f64;
        match self.arch {
            Arch::Gpt2 => {
                let block = 4.0 * h * h + 4.0 * h + 2.0 * h * f + f + h + 4.0 * h;
                v * h + self.seq_len as f64 * h + layers * block + 2.0 * h
            }
            Arch::Llama => {
                let kv = (self.n_kv_head * (self.n_embd / self.n_head)) as f64;
                let block = 2.0 * h * h + 2.0 * h * kv + 3.0 * h * f + 2.0 * h;
                2.0 * v * h + layers * block + h
            }
        }
    }

    /// Checks that the shapes make a model: every size above 0, heads dividing the width,
    /// key/value heads dividing the heads.
    pub fn validate(&self) -> anyhow::Result<()> {
        let sizes = [
            ("--n-layer", self.n_layer),
            ("--n-embd", self.n_embd),
            ("--n-head", self.n_head),
            ("--n-kv-head", self.n_kv_head),
            ("--ffn", self.ffn),
            ("--vocab", self.vocab),
            ("--seq-len", self.seq_len),
        ];
        if let Some((flag, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            anyhow::bail!("{flag} must be above 0");
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            anyhow::bail!(
                "--n-head {} does not divide --n-embd {}",
                self.n_head,
                self.n_embd
            );
        }
        if !self.n_head.is_multiple_of(self.n_kv_head) {
            anyhow::bail!(
                "--n-kv-head {} does not divide --n-head {}",
                self.n_kv_head,
                self.n_head
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exact counts from the formulas, beside the published ones: GPT-2 "124M" and "1.5B"
    /// (Hugging Face lists 124,439,808 and 1,557,611,200); LLaMA 3 8.03B, 70.6B and 405B
    /// (the model cards; the Hugging Face pages show 8.03B, 70.6B and 406B).
    #[test]
    fn presets_match_published_counts() {
        let exact = [
            (Preset::Gpt2, 124_439_808.0),
            (Preset::Gpt2Xl, 1_557_611_200.0),
            (Preset::Llama3_8b, 8_030_261_248.0),
            (Preset::Llama3_70b, 70_553_706_496.0),
            (Preset::Llama3_405b, 405_853_388_800.0),
        ];
        for (preset, want) in exact {
            assert_eq!(preset.shape().params(), want, "{preset:?}");
        }
        // The figures the papers and cards print, with the tolerance each rounding allows:
        // "124M" to its last digit; "1.5B" is a name (the GPT-2 paper's Table 2 says 1542M,
        // Hugging Face counts 1.56B), so 4%; 8.03B, 70.6B to their last digit; "405B" is also
        // a name (406B on Hugging Face), so 0.5%.
        let published = [
            (Preset::Gpt2, 124e6, 0.5e6 / 124e6),
            (Preset::Gpt2Xl, 1.5e9, 0.04),
            (Preset::Llama3_8b, 8.03e9, 0.005e9 / 8.03e9),
            (Preset::Llama3_70b, 70.6e9, 0.05e9 / 70.6e9),
            (Preset::Llama3_405b, 405e9, 0.005),
        ];
        for (preset, want, rel) in published {
            let got = preset.shape().params();
            assert!((got - want).abs() <= rel * want, "{preset:?}: {got}");
        }
    }

    /// The GPT-2 formula counts what our own GPT (`src/model/gpt.rs`) allocates, for GPT-2 124M
    /// and for an odd small shape.
    #[test]
    fn gpt2_formula_matches_our_model() {
        use crate::model::config::GptConfig;
        let ours = |c: GptConfig| ModelShape {
            arch: Arch::Gpt2,
            n_layer: c.n_layer as u64,
            n_embd: c.n_embd as u64,
            n_head: c.n_head as u64,
            n_kv_head: c.n_head as u64,
            ffn: 4 * c.n_embd as u64,
            vocab: c.vocab_size as u64,
            seq_len: c.block_size as u64,
        };
        let small = GptConfig {
            n_layer: 3,
            n_head: 2,
            n_embd: 40,
            block_size: 17,
            vocab_size: 301,
        };
        for c in [GptConfig::GPT2_124M, small] {
            assert_eq!(ours(c).params(), c.num_params() as f64, "{c:?}");
        }
        assert_eq!(ours(GptConfig::GPT2_124M), Preset::Gpt2.shape());
    }

    #[test]
    fn bad_shapes_are_errors() {
        let mut s = Preset::Gpt2.shape();
        s.n_head = 5;
        assert!(s.validate().unwrap_err().to_string().contains("--n-head"));
        let mut s = Preset::Llama3_8b.shape();
        s.n_kv_head = 5;
        assert!(s.validate().is_err());
        s.n_kv_head = 8;
        s.n_layer = 0;
        assert!(s.validate().unwrap_err().to_string().contains("--n-layer"));
    }
}
