//! What the distributed tests share: the toy shards, running `train` with one thread per
//! process, and `mpirun` with the flags any test machine and user needs.

use pretrain::dataset::shard::write_shard;
use std::path::Path;
use std::process::Command;

pub const TRAIN: &str = env!("CARGO_BIN_EXE_train");

/// Shards of a learnable sequence with a little noise (vocabulary 50).
pub fn shards(dir: &Path) {
    let vocab = 50;
    let mut rng = pretrain::tensor::Rng::new(7);
    let tokens: Vec<u32> = (0..6000u64)
        .map(|i| {
            if rng.uniform() < 1.0 / 16.0 {
                rng.below(vocab) as u32
            } else {
                (i % 13) as u32 * 3 % vocab as u32
            }
        })
        .collect();
    let n = vocab as usize;
    write_shard(&dir.join("train_000000.bin"), &tokens[..5000], n).unwrap();
    write_shard(&dir.join("val_000000.bin"), &tokens[5000..], n).unwrap();
}

/// Runs `cmd` with one rayon thread per process (the same arithmetic on any machine) and
/// returns its exit code and stderr.
pub fn run(mut cmd: Command) -> (i32, String) {
    let out = cmd.env("RAYON_NUM_THREADS", "1").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), err)
}

/// `mpirun -np NP train ARGS`, one rayon thread per rank.
#[cfg(feature = "mpi")]
pub fn mpirun_np(np: usize, args: &[String]) -> Command {
    let mut c = Command::new("mpirun");
    c.args([
        "-np",
        &np.to_string(),
        "--bind-to",
        "none",
        "--oversubscribe",
    ]);
    if std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0) {
        c.arg("--allow-run-as-root");
    }
    c.args(["-x", "RAYON_NUM_THREADS=1", TRAIN]).args(args);
    c
}

/// `mpirun -np 2 train ARGS`.
#[cfg(feature = "mpi")]
pub fn mpirun(args: &[String]) -> Command {
    mpirun_np(2, args)
}

/// `train` arguments: the space-separated `flags`, then `--data` and `--out`.
pub fn args(flags: &[&str], data: &Path, out: &Path) -> Vec<String> {
    let mut v: Vec<String> = flags
        .join(" ")
        .split_whitespace()
        .map(String::from)
        .collect();
    v.extend(["--data".into(), data.display().to_string()]);
    v.extend(["--out".into(), out.display().to_string()]);
    v
}

/// Each step's loss, gradient norm and validation loss as `metrics.jsonl` prints them (the
/// same text = the same f32 bits).
pub fn metrics(out: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let f = |k: &str| v[k].to_string();
            [f("step"), f("loss"), f("grad_norm"), f("val_loss")].join(" ")
        })
        .collect()
}
