//! What a run keeps on disk for `--resume`: the checkpoint folder, a Hugging Face GPT-2
//! directory (`config.json`, `model.safetensors`, the tokenizer files) plus the trainer's own
//! state (`optimizer.safetensors` with both moments of every parameter, `trainer_state.json`
//! with the step and the data position). Written by atomic rename, so a crash leaves the
//! previous checkpoint whole.

use super::optim::{AdamW, AdamWConfig};
use crate::dataset::loader::Position;
use crate::model::checkpoint::{
    NamedTensor, load_gpt2_params, read_safetensors, safetensors_bytes, write_dir_atomic,
};
use crate::model::config::GptConfig;
use crate::model::gpt::Gpt;
use crate::tensor::Tensor;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Data and optimizer progress saved beside the weights.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps completed.
    pub step: usize,
    pub train_position: Position,
    /// Ranks of the data parallel run that saved it (1 when alone; absent in older files).
    #[serde(default = "one_rank")]
    pub world_size: usize,
    /// Sequences per optimizer step over all data parallel ranks, which a resumed run keeps
    /// (absent in older files).
    #[serde(default)]
    pub global_batch: Option<usize>,
}

fn one_rank() -> usize {
    1
}

/// The checkpoint folder of a run.
pub fn checkpoint_dir(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

/// Load a model from a checkpoint directory (ours, or a Hugging Face GPT-2 download), on the CPU
/// in f32.
pub fn load_model(dir: &Path) -> Result<Gpt> {
    let config = GptConfig::from_hf_json(&dir.join("config.json"))?;
    let params = load_gpt2_params(&dir.join("model.safetensors"), &config)?;
    Ok(Gpt::from_named(config, params))
}

/// Parses the text of `trainer_state.json`; `path` names the file in the error.
pub fn parse_state(text: &str, path: &Path) -> Result<TrainerState> {
    serde_json::from_str(text).with_context(|| format!("{}: bad trainer state", path.display()))
}

/// The moments saved in `optimizer.safetensors`, by parameter, as host vectors.
pub struct SavedMoments {
    pub m: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
}

/// Reads a checkpoint for `--resume`: the model (CPU, f32), its optimizer moments and the state.
pub fn load_run(dir: &Path) -> Result<(Gpt, SavedMoments, TrainerState)> {
    let model = load_model(dir)?;
    let path = dir.join("trainer_state.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (needed by --resume)", path.display()))?;
    let state = parse_state(&text, &path)?;
    let moments = read_moments(&dir.join("optimizer.safetensors"), &model)?;
    Ok((model, moments, state))
}

/// Both AdamW moments of every parameter of `model`, each present with the parameter's number
/// of values: a missing one is an error, never a silent zero (the resumed run would differ).
fn read_moments(path: &Path, model: &Gpt) -> Result<SavedMoments> {
    let (tensors, _) = read_safetensors(path)?;
    let mut by_name: HashMap<String, NamedTensor> =
        tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
    let mut moments = SavedMoments {
        m: Vec::new(),
        v: Vec::new(),
    };
    for (name, p) in model.params() {
        let n = p.numel();
        moments
            .m
            .push(take_moment(&mut by_name, path, &format!("m.{name}"), n)?);
        moments
            .v
            .push(take_moment(&mut by_name, path, &format!("v.{name}"), n)?);
    }
    if let Some(extra) = by_name.keys().min() {
        bail!("{}: unexpected tensor {extra}", path.display());
    }
    Ok(moments)
}

/// The tensor `key` of `tensors`, which must be there with shape `[n]`.
fn take_moment(
    tensors: &mut HashMap<String, NamedTensor>,
    path: &Path,
    key: &str,
    n: usize,
) -> Result<Vec<f32>> {
    let t = tensors.remove(key).with_context(|| {
        format!(
            "{}: missing tensor {key} (--resume needs both AdamW moments of every parameter)",
            path.display()
        )
    })?;
    if t.shape != [n] {
        bail!(
            "{}: tensor {key} has shape {:?}, expected [{n}]",
            path.display(),
            t.shape
        );
    }
    Ok(t.data)
}

/// An optimizer for `params` (on their device) with the saved moments and step count; state
/// only for the parameters `owned` (all of them, unless ZeRO shards the optimizer).
pub fn restore_optimizer(
    cfg: AdamWConfig,
    params: &[&Tensor],
    values: &[&Tensor],
    saved: SavedMoments,
    step: usize,
    owned: std::ops::Range<usize>,
) -> AdamW {
    let mut opt = AdamW::new_sharded(cfg, params, values, owned.clone());
    opt.step = step as u64;
    let mine = |all: Vec<Vec<f32>>| all.into_iter().skip(owned.start).take(owned.len());
    for ((s, m), v) in opt.state.iter_mut().zip(mine(saved.m)).zip(mine(saved.v)) {
        let device = s.m.device();
        let shape = s.m.shape().to_vec();
        s.m = Tensor::from_vec(m, &shape).to(device);
        s.v = Tensor::from_vec(v, &shape).to(device);
    }
    opt
}

/// Everything a checkpoint folder holds, ready to be written.
pub struct Checkpoint<'a> {
    pub config: GptConfig,
    /// Every parameter in f32 (the master copies when training in bf16), in checkpoint order.
    pub weights: Vec<NamedTensor>,
    pub opt: &'a AdamW,
    pub state: TrainerState,
    /// The `<|endoftext|>` id, for `config.json`.
    pub eos: Option<u32>,
    /// The data folder, whose tokenizer files are copied beside the weights.
    pub data: &'a Path,
}

/// The parameters of `model` in f32 on the host, with their names: the optimizer's master
/// copies where it keeps them.
pub fn full_precision_weights(model: &Gpt, opt: &AdamW) -> Vec<NamedTensor> {
    model
        .params()
        .into_iter()
        .enumerate()
        .map(|(i, (name, p))| NamedTensor {
            name,
            shape: p.shape().to_vec(),
            data: opt.full_precision(i, p),
        })
        .collect()
}

/// Writes the checkpoint folder `dir` (atomically: all of it or nothing).
pub fn save_run(dir: &Path, ck: &Checkpoint) -> Result<()> {
    let mut files: Vec<(&str, Vec<u8>)> = vec![
        (
            "config.json",
            serde_json::to_vec_pretty(&ck.config.to_hf_json(ck.eos))?,
        ),
        // Hugging Face's loader insists on the metadata entry {"format": "pt"}.
        (
            "model.safetensors",
            safetensors_bytes(&ck.weights, Some(pt_format()))?,
        ),
    ];
    let mut moments = Vec::new();
    for (w, s) in ck.weights.iter().zip(&ck.opt.state) {
        for (kind, t) in [("m", &s.m), ("v", &s.v)] {
            moments.push(NamedTensor {
                name: format!("{kind}.{}", w.name),
                shape: vec![t.numel()],
                data: t.to_vec(),
            });
        }
    }
    files.push(("optimizer.safetensors", safetensors_bytes(&moments, None)?));
    files.push(("trainer_state.json", serde_json::to_vec_pretty(&ck.state)?));
    for name in ["tokenizer.json", "vocab.json", "merges.txt"] {
        if let Ok(bytes) = std::fs::read(ck.data.join(name)) {
            files.push((name, bytes));
        }
    }
    write_dir_atomic(dir, &files)
}

/// A copy of a GPU model on the CPU, for samples: the parameters in f32 (the master copies when
/// training in bf16).
pub fn cpu_model(model: &Gpt, opt: &AdamW) -> Gpt {
    Gpt::from_named(model.config, full_precision_weights(model, opt))
}

/// The safetensors metadata `{"format": "pt"}` that `from_pretrained` checks for.
fn pt_format() -> std::collections::HashMap<String, String> {
    [("format".to_string(), "pt".to_string())]
        .into_iter()
        .collect()
}
