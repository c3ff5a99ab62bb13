//! The GPT-2 configuration, stored as Hugging Face's `config.json` so that
//! `GPT2LMHeadModel.from_pretrained(DIR)` loads our checkpoints as they are.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The shape of a GPT-2 model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GptConfig {
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Attention heads per block; `n_embd` must be a multiple.
    pub n_head: usize,
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Longest context the position embedding covers (HF: `n_positions`).
    pub block_size: usize,
    /// Number of token ids.
    pub vocab_size: usize,
}

/// LayerNorm epsilon used by GPT-2.
pub const LAYER_NORM_EPS: f32 = 1e-5;
/// Standard deviation of GPT-2's normal initialisation.
pub const INIT_STD: f32 = 0.02;

impl GptConfig {
    /// GPT-2 small (124M parameters).
    pub const GPT2_124M: GptConfig = GptConfig {
        n_layer: 12,
        n_head: 12,
        n_embd: 768,
        block_size: 1024,
        vocab_size: 50257,
    };

    /// Check the relations between the sizes, naming the one that is wrong.
    pub fn validate(&self) -> Result<()> {
        let GptConfig {
            n_layer,
            n_head,
            n_embd,
            block_size,
            vocab_size,
        } = *self;
        if n_layer == 0 || n_head == 0 || n_embd == 0 || block_size == 0 || vocab_size == 0 {
            bail!("model config: every size must be positive, got {self:?}");
        }
        if n_embd % n_head != 0 {
            bail!("model config: n_embd {n_embd} is not a multiple of n_head {n_head}");
        }
        if self.checked_num_params().is_none() {
            bail!("model config: {self:?} has more parameters than a usize can count");
        }
        Ok(())
    }

    /// Parameters, counted by hand: embeddings `(V + block_size)·C`, then per block two
    /// LayerNorms (`4C`), the attention (qkv `3C² + 3C`, output projection `C² + C`) and the MLP
    /// (4× up `4C² + 4C`, down `4C² + C`): `12C² + 13C`; then the final LayerNorm (`2C`).
    /// The LM head shares the token embedding, so it adds nothing. (A config that
    /// [`validate`](Self::validate) accepts never overflows; others saturate.)
    pub fn num_params(&self) -> usize {
        self.checked_num_params().unwrap_or(usize::MAX)
    }

    /// [`num_params`](Self::num_params), or `None` when the count overflows a `usize`
    /// (sizes from a file or a flag can be anything).
    pub fn checked_num_params(&self) -> Option<usize> {
        let c = self.n_embd;
        let embeddings = self
            .vocab_size
            .checked_add(self.block_size)?
            .checked_mul(c)?;
        let ln = 2 * c;
        let block = c.checked_mul(c)?.checked_mul(12)?.checked_add(13 * c)?;
        let blocks = self.n_layer.checked_mul(block)?;
        embeddings.checked_add(blocks)?.checked_add(ln)
    }

    /// Hugging Face's `config.json` for this model.
    pub fn to_hf_json(&self, eos_token_id: Option<u32>) -> serde_json::Value {
        let eos = eos_token_id.map_or(serde_json::Value::Null, |e| e.into());
        serde_json::json!({
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "vocab_size": self.vocab_size,
            "n_positions": self.block_size,
            "n_ctx": self.block_size,
            "n_embd": self.n_embd,
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "n_inner": null,
            "activation_function": "gelu_new",
            "resid_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "attn_pdrop": 0.0,
            "layer_norm_epsilon": LAYER_NORM_EPS,
            "initializer_range": INIT_STD,
            "bos_token_id": eos,
            "eos_token_id": eos,
            "tie_word_embeddings": true,
            "torch_dtype": "float32"
        })
    }

    /// Read the sizes from a Hugging Face GPT-2 `config.json`.
    pub fn from_hf_json(path: &Path) -> Result<GptConfig> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not valid JSON", path.display()))?;
        let get = |key: &str| -> Result<usize> {
            v.get(key)
                .and_then(|x| x.as_u64())
                .map(|x| x as usize)
                .with_context(|| {
                    format!("{}: missing or non-integer key \"{key}\"", path.display())
                })
        };
        if let Some(t) = v.get("model_type").and_then(|t| t.as_str())
            && t != "gpt2"
        {
            bail!(
                "{}: model_type is \"{t}\", expected \"gpt2\"",
                path.display()
            );
        }
        let config = GptConfig {
            n_layer: get("n_layer")?,
            n_head: get("n_head")?,
            n_embd: get("n_embd")?,
            block_size: get("n_positions").or_else(|_| get("n_ctx"))?,
            vocab_size: get("vocab_size")?,
        };
        config
            .validate()
            .with_context(|| path.display().to_string())?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_small_has_124m_parameters() {
        // The published count for GPT-2 small with a tied head: 124,439,808.
        assert_eq!(GptConfig::GPT2_124M.num_params(), 124_439_808);
    }

    #[test]
    fn hf_json_round_trips() {
        let c = GptConfig {
            n_layer: 2,
            n_head: 4,
            n_embd: 64,
            block_size: 32,
            vocab_size: 300,
        };
        let dir = std::env::temp_dir().join(format!("pretrain-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.json");
        std::fs::write(&path, c.to_hf_json(Some(256)).to_string()).unwrap();
        assert_eq!(GptConfig::from_hf_json(&path).unwrap(), c);
        std::fs::write(&path, r#"{"model_type":"gpt2","n_layer":2}"#).unwrap();
        let err = format!("{:#}", GptConfig::from_hf_json(&path).unwrap_err());
        assert!(err.contains("\"n_head\""), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn validate_names_the_bad_size() {
        let c = GptConfig {
            n_layer: 1,
            n_head: 3,
            n_embd: 64,
            block_size: 8,
            vocab_size: 10,
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("n_head 3"), "{err}");
    }
}
