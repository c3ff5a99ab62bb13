//! Checkpoints in the format Hugging Face uses for GPT-2: a directory with `config.json` and
//! `model.safetensors`, tensors named as in GPT-2 (`h.0.attn.c_attn.weight`, …) with GPT-2's
//! layouts (its `Conv1D` stores linear weights as `[in, out]`). A real GPT-2 checkpoint loads the
//! same way, with or without the `transformer.` prefix that `GPT2LMHeadModel` adds.
//!
//! Writes are atomic ([`write_dir_atomic`], from `cli::atomic`): the directory is built under a
//! temporary name, fsynced and renamed into place, so a checkpoint directory that exists is
//! complete.

use super::config::GptConfig;
use anyhow::{Context, Result, bail};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::HashMap;
use std::path::Path;

pub use crate::cli::atomic::write_dir_atomic;

/// A tensor on its way to or from disk: a name, a shape and row-major f32 data.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// GPT-2's parameter names and shapes, in the order of the model, for a config.
/// Linear weights are `[in, out]` as in GPT-2's `Conv1D`.
pub fn gpt2_param_shapes(config: &GptConfig) -> Vec<(String, Vec<usize>)> {
    let c = config.n_embd;
    let mut out = vec![
        ("wte.weight".to_string(), vec![config.vocab_size, c]),
        ("wpe.weight".to_string(), vec![config.block_size, c]),
    ];
    for l in 0..config.n_layer {
        let p = |s: &str| format!("h.{l}.{s}");
        out.extend([
            (p("ln_1.weight"), vec![c]),
            (p("ln_1.bias"), vec![c]),
            (p("attn.c_attn.weight"), vec![c, 3 * c]),
            (p("attn.c_attn.bias"), vec![3 * c]),
            (p("attn.c_proj.weight"), vec![c, c]),
            (p("attn.c_proj.bias"), vec![c]),
            (p("ln_2.weight"), vec![c]),
            (p("ln_2.bias"), vec![c]),
            (p("mlp.c_fc.weight"), vec![c, 4 * c]),
            (p("mlp.c_fc.bias"), vec![4 * c]),
            (p("mlp.c_proj.weight"), vec![4 * c, c]),
            (p("mlp.c_proj.bias"), vec![c]),
        ]);
    }
    out.push(("ln_f.weight".to_string(), vec![c]));
    out.push(("ln_f.bias".to_string(), vec![c]));
    out
}

/// Serialise f32 tensors (and string metadata) as a safetensors file, atomically.
pub fn write_safetensors(
    path: &Path,
    tensors: &[NamedTensor],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let bytes = safetensors_bytes(tensors, metadata)
        .with_context(|| format!("serialising {}", path.display()))?;
    crate::cli::write_atomic(path, &bytes)
}

/// The bytes of a safetensors file holding f32 `tensors`.
pub fn safetensors_bytes(
    tensors: &[NamedTensor],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|t| {
            let bytes: &[u8] = bytemuck::cast_slice(&t.data);
            TensorView::new(Dtype::F32, t.shape.clone(), bytes)
                .map(|v| (t.name.clone(), v))
                .with_context(|| {
                    format!(
                        "tensor {}: shape {:?} does not fit its data",
                        t.name, t.shape
                    )
                })
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, metadata).map_err(|e| anyhow::anyhow!("safetensors: {e}"))
}

/// Read every tensor of a safetensors file as f32 (f32, f16 and bf16 files are accepted).
/// Returns the tensors in file order and the file's metadata.
pub fn read_safetensors(path: &Path) -> Result<(Vec<NamedTensor>, HashMap<String, String>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a valid safetensors file: {e}", path.display()))?;
    let (_, meta) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: bad safetensors header: {e}", path.display()))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let mut out = Vec::new();
    for (name, view) in file.iter() {
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => bail!(
                "{}: tensor {name} has dtype {other:?}; expected F32, F16 or BF16",
                path.display()
            ),
        };
        out.push(NamedTensor {
            name: name.to_string(),
            shape: view.shape().to_vec(),
            data,
        });
    }
    // safetensors stores tensors sorted by offset; keep that (file) order.
    Ok((out, metadata))
}

/// Load GPT-2 parameters from a safetensors file, in [`gpt2_param_shapes`] order, checking every
/// name and shape. Accepts the `transformer.` prefix; ignores GPT-2's stored attention masks and
/// a separate `lm_head.weight` (the head is tied to `wte`).
pub fn load_gpt2_params(path: &Path, config: &GptConfig) -> Result<Vec<NamedTensor>> {
    let (tensors, _) = read_safetensors(path)?;
    let mut by_name: HashMap<String, NamedTensor> = HashMap::new();
    for t in tensors {
        let name = t
            .name
            .strip_prefix("transformer.")
            .unwrap_or(&t.name)
            .to_string();
        by_name.insert(name, t);
    }
    // The list of expected tensors grows with n_layer: bound it by what the file holds first.
    if config.n_layer > by_name.len() / 12 {
        bail!(
            "{}: config.json says {} layers, but the file holds only {} tensors",
            path.display(),
            config.n_layer,
            by_name.len()
        );
    }
    let mut out = Vec::new();
    for (name, shape) in gpt2_param_shapes(config) {
        let t = by_name
            .remove(&name)
            .with_context(|| format!("{}: missing tensor {name}", path.display()))?;
        if t.shape != shape {
            bail!(
                "{}: tensor {name} has shape {:?}, config.json implies {shape:?}",
                path.display(),
                t.shape
            );
        }
        out.push(NamedTensor {
            name,
            shape,
            data: t.data,
        });
    }
    let extra: Vec<&String> = by_name
        .keys()
        .filter(|k| {
            !(k.ends_with(".attn.bias")
                || k.ends_with(".attn.masked_bias")
                || *k == "lm_head.weight")
        })
        .collect();
    if let Some(name) = extra.first() {
        bail!(
            "{}: unexpected tensor {name} for a GPT-2 model",
            path.display()
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("pretrain-ckpt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn tiny() -> GptConfig {
        GptConfig {
            n_layer: 1,
            n_head: 2,
            n_embd: 4,
            block_size: 3,
            vocab_size: 5,
        }
    }

    fn params(config: &GptConfig) -> Vec<NamedTensor> {
        gpt2_param_shapes(config)
            .into_iter()
            .enumerate()
            .map(|(i, (name, shape))| {
                let n = shape.iter().product::<usize>();
                let data = (0..n).map(|j| (i * 1000 + j) as f32 * 0.25).collect();
                NamedTensor { name, shape, data }
            })
            .collect()
    }

    #[test]
    fn params_round_trip_with_and_without_prefix() {
        let d = tmpdir("rt");
        let config = tiny();
        let ps = params(&config);
        assert_eq!(
            ps.iter().map(|p| p.data.len()).sum::<usize>(),
            config.num_params()
        );
        let path = d.join("model.safetensors");
        write_safetensors(&path, &ps, None).unwrap();
        assert_eq!(load_gpt2_params(&path, &config).unwrap(), ps);
        let prefixed: Vec<NamedTensor> = ps
            .iter()
            .map(|p| NamedTensor {
                name: format!("transformer.{}", p.name),
                ..p.clone()
            })
            .collect();
        write_safetensors(&path, &prefixed, None).unwrap();
        assert_eq!(load_gpt2_params(&path, &config).unwrap(), ps);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn bad_checkpoints_name_the_problem() {
        let d = tmpdir("bad");
        let config = tiny();
        let mut ps = params(&config);
        let path = d.join("model.safetensors");
        ps[3].shape = vec![3, 4];
        ps[3].data = vec![0.5; 12];
        write_safetensors(&path, &ps, None).unwrap();
        let err = format!("{:#}", load_gpt2_params(&path, &config).unwrap_err());
        assert!(
            err.contains("h.0.ln_1.bias") && err.contains("[3, 4]"),
            "{err}"
        );
        ps.remove(3);
        write_safetensors(&path, &ps, None).unwrap();
        let err = format!("{:#}", load_gpt2_params(&path, &config).unwrap_err());
        assert!(err.contains("missing tensor h.0.ln_1.bias"), "{err}");
        // A truncated file is an error, not a panic.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = format!("{:#}", load_gpt2_params(&path, &config).unwrap_err());
        assert!(err.contains("not a valid safetensors file"), "{err}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
