//! What a run reads, checked before step 1: settings that make sense, a validation split that
//! matches the training split, shards that fit the model. A run that would fail later (a NaN
//! learning rate, a validation shard from another tokenizer that crashes the final evaluation)
//! fails here instead, in one line naming the flag or the file and both values, before any
//! work can be lost.

use super::run_dir::TrainerState;
use super::trainer::{TrainConfig, global_batch};
use crate::dataset::loader::{Loader, shard_paths};
use crate::dataset::shard::read_header;
use crate::info;
use crate::model::config::GptConfig;
use anyhow::{Result, bail};
use std::path::Path;

/// Checks that `layout` splits `world` ranks, and that its strategies exist in this build.
pub fn check_layout(layout: &crate::train::dist::Layout, world: usize) -> Result<()> {
    layout.dp(world)?;
    let missing = [(
        layout.zero > 0 && layout.tp * layout.pp > 1,
        "ZeRO together with --tp or --pp",
    )];
    if let Some((_, what)) = missing.iter().find(|(on, _)| *on) {
        bail!("{what} is not implemented yet");
    }
    Ok(())
}

/// A run resumes on any number of ranks (and at any ZeRO stage) that keeps its global batch,
/// `--batch-size × --grad-accum × data parallel ranks`: the same sequences per optimizer step,
/// so the same math. A checkpoint from before the global batch was recorded needs the world
/// size that saved it.
pub fn check_global_batch(
    cfg: &TrainConfig,
    state: &TrainerState,
    world: usize,
    ckpt: &Path,
) -> Result<()> {
    let now = global_batch(cfg, world);
    let saved = match state.global_batch {
        Some(saved) if saved == now => return Ok(()),
        Some(saved) => saved,
        None if state.world_size == world => return Ok(()),
        None => bail!(
            "{} was saved by a run on {saved} rank(s); resume it on {saved} (`--nproc {saved}`), \
             not {world}",
            ckpt.display(),
            saved = state.world_size,
        ),
    };
    let per_accum = now / cfg.grad_accum;
    let hint = if saved.is_multiple_of(per_accum) {
        format!("resume with --grad-accum {} to keep it", saved / per_accum)
    } else {
        "no --grad-accum keeps it on this number of ranks".to_string()
    };
    bail!(
        "{} was saved by a run on {} rank(s) with {saved} sequences per step, but --batch-size {} \
         × --grad-accum {} × {world} rank(s) makes {now}: {hint}",
        ckpt.display(),
        state.world_size,
        cfg.batch_size,
        cfg.grad_accum,
    )
}

/// Every number of `cfg` within its range (finite, positive where it must be) and every path
/// valid UTF-8 (`train_config.json` records them as text).
pub fn check_config(cfg: &TrainConfig) -> Result<()> {
    let a = &cfg.adamw;
    let checks = [
        ("the learning rate (--lr)", cfg.lr, cfg.lr > 0.0, "above 0"),
        ("--min-lr", cfg.min_lr, cfg.min_lr >= 0.0, "0 or more"),
        (
            "--grad-clip",
            cfg.grad_clip,
            cfg.grad_clip >= 0.0,
            "0 or more",
        ),
        (
            "--weight-decay",
            a.weight_decay,
            a.weight_decay >= 0.0,
            "0 or more",
        ),
        (
            "AdamW's beta1",
            a.beta1,
            (0.0..1.0).contains(&a.beta1),
            "in [0, 1)",
        ),
        (
            "AdamW's beta2",
            a.beta2,
            (0.0..1.0).contains(&a.beta2),
            "in [0, 1)",
        ),
        ("AdamW's eps", a.eps, a.eps > 0.0, "above 0"),
    ];
    for (name, value, ok, range) in checks {
        if !value.is_finite() || !ok {
            bail!("{name} is {value}; it must be a finite number {range}");
        }
    }
    if cfg.batch_size == 0 || cfg.seq_len == 0 || cfg.grad_accum == 0 {
        bail!(
            "--batch-size, --seq-len and --grad-accum must be positive (got {}, {}, {})",
            cfg.batch_size,
            cfg.seq_len,
            cfg.grad_accum
        );
    }
    let paths = [("--data", Some(&cfg.data)), ("--out", Some(&cfg.out))];
    for (flag, path) in paths
        .into_iter()
        .chain([("--init-from", cfg.init_from.as_ref())])
    {
        if let Some(p) = path
            && p.to_str().is_none()
        {
            bail!(
                "{flag} {}: the path is not valid UTF-8, and train_config.json records paths as \
                 text; rename it",
                p.display()
            );
        }
    }
    Ok(())
}

/// The training loader and, when the data has `val_*.bin` shards, the validation loader, both
/// checked: every shard of both splits has the training shards' vocabulary and token size.
pub fn open_data(cfg: &TrainConfig) -> Result<(Loader, Option<Loader>)> {
    let (b, t) = (cfg.batch_size, cfg.seq_len);
    let train = Loader::new(&cfg.data, "train", b, t, cfg.seed, cfg.sequential)?;
    if shard_paths(&cfg.data, "val").is_err() {
        info!(
            "{}: no val_*.bin shards; training without a validation loss",
            cfg.data.display()
        );
        return Ok((train, None));
    }
    let val = Loader::new(&cfg.data, "val", b, t, 0, true)?;
    check_splits_agree(&train, &val)?;
    Ok((train, Some(val)))
}

/// Every shard of both splits has the first training shard's vocabulary and token size.
fn check_splits_agree(train: &Loader, val: &Loader) -> Result<()> {
    let first = &train.shards()[0];
    let want = read_header(first)?;
    for path in train.shards().iter().chain(val.shards()) {
        let h = read_header(path)?;
        if h.vocab_size != want.vocab_size {
            bail!(
                "{}: vocabulary {} but {} has {}: the splits must come from one tokenizer",
                path.display(),
                h.vocab_size,
                first.display(),
                want.vocab_size
            );
        }
        if h.token_bytes != want.token_bytes {
            bail!(
                "{}: {}-byte tokens but {} has {}-byte tokens",
                path.display(),
                h.token_bytes,
                first.display(),
                want.token_bytes
            );
        }
    }
    Ok(())
}

/// The shards must fit the model: every token id below its vocabulary (for a resumed run, the
/// very vocabulary it was trained on), windows within its context.
pub fn check_fits(model: &GptConfig, data: &Loader, cfg: &TrainConfig, resume: bool) -> Result<()> {
    let vocab = data.vocab_size() as usize;
    if vocab > model.vocab_size || (resume && vocab != model.vocab_size) {
        bail!(
            "{}: the shards use a vocabulary of {vocab} but the model has {}",
            cfg.data.display(),
            model.vocab_size
        );
    }
    if cfg.seq_len > model.block_size {
        bail!(
            "--seq-len {} is longer than the model's context (block_size {})",
            cfg.seq_len,
            model.block_size
        );
    }
    Ok(())
}

/// "2 layers, 4 heads, width 128, context 128, vocab 4096".
pub fn describe(c: &GptConfig) -> String {
    format!(
        "{} layers, {} heads, width {}, context {}, vocab {}",
        c.n_layer, c.n_head, c.n_embd, c.block_size, c.vocab_size
    )
}
