//! `train_config.json`: every setting of a run, kept in the run folder for `--resume`.
//!
//! Its paths are relative to the run folder (`"data": "../shards"`, `"out": "."`), and a resume
//! reads them against the folder it was given, not the one the file was written in. So a run
//! folder that is copied or moved (with its data beside it) resumes where it now is, and never
//! writes into the folder it was copied from. `--data` on resume replaces the stored data path.

use super::trainer::TrainConfig;
use crate::model::config::GptConfig;
use anyhow::{Context, Result, bail};
use std::path::{Component, Path, PathBuf};

/// The name of the settings file in a run folder.
pub const FILE: &str = "train_config.json";

/// Writes `OUT/train_config.json`: `cfg` with the model actually trained (from a checkpoint it
/// may differ from the flags) and its paths relative to the run folder.
pub fn write_config(cfg: &TrainConfig, model: &GptConfig) -> Result<()> {
    let saved = TrainConfig {
        model: *model,
        data: relative_to(&cfg.out, &cfg.data),
        out: PathBuf::from("."),
        init_from: cfg.init_from.as_ref().map(|p| relative_to(&cfg.out, p)),
        ..cfg.clone()
    };
    let path = cfg.out.join(FILE);
    let json = serde_json::to_string_pretty(&saved)
        .with_context(|| format!("writing {}", path.display()))?;
    crate::cli::write_atomic(&path, json.as_bytes())
}

/// The settings of the run in `out`, for `--resume`: its stored paths read against `out`, the
/// data folder replaced by `data` when given (which must exist).
pub fn resume_config(out: &Path, data: Option<&Path>) -> Result<TrainConfig> {
    let path = out.join(FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (needed by --resume)", path.display()))?;
    let mut cfg: TrainConfig = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a train config", path.display()))?;
    cfg.data = match data {
        Some(d) if !d.is_dir() => bail!("--data {}: no such folder", d.display()),
        Some(d) => d.to_path_buf(),
        None => {
            let resolved = out.join(&cfg.data);
            if !resolved.is_dir() {
                bail!(
                    "{}: the run's data folder {} (\"{}\" from the run folder) is not there; \
                     give --data",
                    path.display(),
                    resolved.display(),
                    cfg.data.display()
                );
            }
            resolved
        }
    };
    cfg.init_from = cfg.init_from.map(|p| out.join(p));
    cfg.out = out.to_path_buf();
    Ok(cfg)
}

/// `target` relative to the folder `base` (`../shards`) when the two share a folder below the
/// root; otherwise `target` made absolute (a data set under `/data` and runs under `/home`).
fn relative_to(base: &Path, target: &Path) -> PathBuf {
    let (Ok(b), Ok(t)) = (std::fs::canonicalize(base), std::fs::canonicalize(target)) else {
        return std::path::absolute(target).unwrap_or_else(|_| target.to_path_buf());
    };
    let common = b
        .components()
        .zip(t.components())
        .take_while(|(x, y)| x == y)
        .count();
    let only_root = b
        .components()
        .take(common)
        .all(|c| matches!(c, Component::RootDir | Component::Prefix(_)));
    if only_root {
        return t;
    }
    let mut rel: PathBuf = b
        .components()
        .skip(common)
        .map(|_| Component::ParentDir)
        .collect();
    rel.extend(t.components().skip(common));
    if rel.as_os_str().is_empty() {
        rel.push(".");
    }
    rel
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_stored_relative_to_the_run_folder() {
        let d = std::env::temp_dir().join(format!("pretrain-relpath-{}", std::process::id()));
        for sub in ["runs/a", "shards", "runs/a/inner"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let rel = |t: &str| relative_to(&d.join("runs/a"), &d.join(t));
        assert_eq!(rel("shards"), Path::new("../../shards"));
        assert_eq!(rel("runs/a/inner"), Path::new("inner"));
        assert_eq!(rel("runs/a"), Path::new("."));
        // Nothing in common but the root: absolute.
        let root = relative_to(&d.join("runs/a"), Path::new("/"));
        assert_eq!(root, Path::new("/"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
