//! `train --nproc N`: the binary starts itself again under `mpirun -np N`, with the flags that
//! a one-machine run needs, so nobody has to remember them:
//!
//! - `--bind-to none`: at 2 ranks or fewer Open MPI pins each rank to one core, which would leave
//!   each rank's rayon threads fighting over that core;
//! - `--oversubscribe` when N exceeds the cores (Open MPI refuses that otherwise);
//! - `--allow-run-as-root` when we are root (containers, CI);
//! - `RAYON_NUM_THREADS` = cores / N (at least 1), so the ranks share the cores instead of each
//!   starting one thread per core;
//! - `-q`: without Open MPI's banner when a rank aborts, the error line of `train` stands alone.
//!
//! Several machines need a hostfile instead: run `mpirun` by hand (README, "Distributed
//! training").

use super::relay::ErrorRelay;
use anyhow::{Result, bail};
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// What decides the `mpirun` command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    /// Ranks to start.
    pub nproc: usize,
    /// Cores on this machine.
    pub cores: usize,
    /// Whether we run as root.
    pub root: bool,
}

impl Launch {
    /// rayon threads per rank: the cores shared out, at least one.
    pub fn threads_per_rank(&self) -> usize {
        (self.cores / self.nproc.max(1)).max(1)
    }

    /// The arguments to `mpirun` that start `exe args...` on `nproc` ranks.
    pub fn mpirun_args(&self, exe: &Path, args: &[OsString]) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec!["-q".into(), "-np".into(), self.nproc.to_string().into()];
        v.extend(["--bind-to".into(), "none".into()]);
        if self.nproc > self.cores {
            v.push("--oversubscribe".into());
        }
        if self.root {
            v.push("--allow-run-as-root".into());
        }
        let threads = format!("RAYON_NUM_THREADS={}", self.threads_per_rank());
        v.extend(["-x".into(), threads.into(), exe.into()]);
        v.extend(args.iter().cloned());
        v
    }
}

/// The command-line arguments of this process without `--nproc N` (or `--nproc=N`).
pub fn args_without_nproc(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut skip_next = false;
    for a in args {
        if std::mem::take(&mut skip_next) {
            continue;
        }
        match a.to_str() {
            Some("--nproc") => skip_next = true,
            Some(s) if s.starts_with("--nproc=") => {}
            _ => out.push(a),
        }
    }
    out
}

/// `mpirun` on `PATH`, if any.
pub fn find_mpirun() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("mpirun"))
        .find(|p| p.is_file())
}

/// True when this process runs as root (`/proc/self` belongs to the effective user).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Runs this binary again under `mpirun` on `nproc` ranks, with this process's arguments less
/// `--nproc`, and returns its exit code. Fails in one line when the binary has no MPI or
/// `mpirun` is missing.
pub fn relaunch(nproc: usize) -> Result<i32> {
    if !super::HAS_MPI {
        bail!(
            "--nproc {nproc} needs a binary built with MPI: `cargo build --release --features mpi` \
             (README, \"Distributed training\")"
        );
    }
    let Some(mpirun) = find_mpirun() else {
        bail!(
            "--nproc {nproc} needs `mpirun` (Open MPI), which is not on PATH: install it, e.g. \
             `apt-get install openmpi-bin`"
        );
    };
    let launch = Launch {
        nproc,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        root: running_as_root(),
    };
    let exe = std::env::current_exe()?;
    let args = args_without_nproc(std::env::args_os().skip(1));
    // In a process group of its own, the terminal's Ctrl-C reaches this process only, which
    // passes it on as SIGUSR1 (see `cli::signals`): every rank then saves and stops cleanly.
    let mut child = std::process::Command::new(&mpirun)
        .args(launch.mpirun_args(&exe, &args))
        .process_group(0)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("starting {}: {e}", mpirun.display()))?;
    crate::cli::signals::forward_to(child.id());
    let mut relay = ErrorRelay::default();
    if let Some(mut err) = child.stderr.take() {
        let mut buf = [0u8; 4096];
        let mut stderr = std::io::stderr();
        while let Ok(n @ 1..) = err.read(&mut buf) {
            relay.feed(&buf[..n], &mut stderr)?;
        }
        relay.finish(&mut stderr)?;
    }
    let status = child.wait()?;
    if let Some(sig) = crate::cli::signals::stop_signal() {
        return Ok(128 + sig);
    }
    let code = status.code().unwrap_or(2);
    if code != 0 && !relay.saw_errors() {
        // No rank could say why: one was killed (out of memory, `kill -9`, a crash).
        bail!(
            "a rank of the run ended without an error message (mpirun's exit code {code}{}); \
             the last checkpoint saved is intact: continue with --resume",
            match code {
                129.. => format!(", killed by signal {}", code - 128),
                _ => String::new(),
            }
        );
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[OsString]) -> Vec<&str> {
        v.iter().map(|s| s.to_str().unwrap()).collect()
    }

    #[test]
    fn flags_follow_cores_and_user() {
        let l = Launch {
            nproc: 4,
            cores: 2,
            root: true,
        };
        let a = l.mpirun_args(Path::new("/bin/train"), &["--steps".into(), "3".into()]);
        assert_eq!(
            strs(&a),
            [
                "-q",
                "-np",
                "4",
                "--bind-to",
                "none",
                "--oversubscribe",
                "--allow-run-as-root",
                "-x",
                "RAYON_NUM_THREADS=1",
                "/bin/train",
                "--steps",
                "3"
            ]
        );
        let l = Launch {
            nproc: 2,
            cores: 16,
            root: false,
        };
        let a = l.mpirun_args(Path::new("t"), &[]);
        assert_eq!(
            strs(&a),
            [
                "-q",
                "-np",
                "2",
                "--bind-to",
                "none",
                "-x",
                "RAYON_NUM_THREADS=8",
                "t"
            ]
        );
    }

    #[test]
    fn nproc_is_removed_in_both_spellings() {
        let args = ["--out", "r", "--nproc", "2", "--nproc=3", "--steps", "5"].map(OsString::from);
        assert_eq!(
            strs(&args_without_nproc(args)),
            ["--out", "r", "--steps", "5"]
        );
    }
}
