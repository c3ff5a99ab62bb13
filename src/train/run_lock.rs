//! One run at a time in a run folder, and a folder left whole by the last one.
//!
//! Two runs writing one folder would interleave their metrics and overwrite each other's
//! checkpoints. So a run first takes an exclusive advisory lock on `RUN/.lock` (`flock` on
//! Unix, `LockFileEx` on Windows, through std's `File::try_lock`) and writes its PID there, for
//! the error the second run prints. The lock belongs to the open file, so the operating system
//! drops it when the process ends in any way, `kill -9` included: a stale `.lock` file blocks
//! nothing, and no one has to delete it.
//!
//! Holding the lock, the run then repairs what a crash of an earlier run left: a checkpoint swap
//! cut between its two renames is finished (or rolled back), and the temp files of interrupted
//! writes are removed (see [`cli::atomic`](crate::cli::atomic)).

use crate::cli::atomic::{self, Recovered};
use crate::{detail, info};
use anyhow::{Context, Result, bail};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The outputs of a run folder that are written atomically, and so may leave temps.
pub const OUTPUTS: [&str; 4] = [
    "checkpoint",
    "train_config.json",
    "metrics.jsonl",
    "loss.svg",
];

/// The lock on a run folder, held while this value lives.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// Locks the run folder `out` (which must exist), or fails in one line naming the PID of the
    /// process that holds it.
    pub fn acquire(out: &Path) -> Result<RunLock> {
        let path = out.join(".lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = match pid.trim() {
                    "" => "unknown".to_string(),
                    p => p.to_string(),
                };
                bail!(
                    "{} is in use by another run (PID {pid}, holding {}); wait for it to end or \
                     choose another --out",
                    out.display(),
                    path.display()
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}", std::process::id()))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(RunLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Locks `out` and repairs what an earlier run's crash left there: finishes a checkpoint swap
/// cut half way, removes the temps of interrupted writes. Say so unless quiet.
pub fn open_run_folder(out: &Path) -> Result<RunLock> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let lock = RunLock::acquire(out)?;
    let ckpt = out.join("checkpoint");
    match atomic::recover_swap(&ckpt)? {
        Some(Recovered::Finished(from)) => info!(
            "{}: finished a checkpoint swap that a crash cut short (moved {} into place)",
            ckpt.display(),
            from.display()
        ),
        Some(Recovered::RolledBack(from)) => info!(
            "{}: rolled back a checkpoint swap that a crash cut short (restored {})",
            ckpt.display(),
            from.display()
        ),
        None => {}
    }
    let removed = atomic::remove_temps(out, &OUTPUTS)?;
    if !removed.is_empty() {
        info!(
            "{}: removed {} temp file(s) left by an interrupted run",
            out.display(),
            removed.len()
        );
    }
    for path in removed {
        detail!("removed {}", path.display());
    }
    Ok(lock)
}
