//! Data parallel training over MPI (`train::dist`): 2 ranks of `train` give, bit for bit, the
//! losses, gradient norms and weights of one process with `--grad-accum 2`, before and after a
//! resume (at the same world size; another is refused); `train --nproc 2`
//! starts itself under `mpirun`; and the launch fails in one line without MPI.
//!
//! The MPI tests need a binary built with `--features mpi` and Open MPI's `mpirun`
//! (`cargo test --release --features mpi --test suite dist_`, as `.ci/run` does); without the
//! feature only the one-line errors are checked.

use crate::common::{assert_one_line_error, temp_dir};
use crate::dist_util::{TRAIN, args, run, shards};
use std::path::Path;
use std::process::Command;

/// `train` flags of a 12-step toy run into `out`, `grad_accum` micro-batches per rank.
fn train_args(data: &Path, out: &Path, grad_accum: usize) -> Vec<String> {
    let flags = [
        "--steps 12 --batch-size 4 --seq-len 16 --n-layer 2 --n-head 2 --n-embd 32",
        "--lr 1e-2 --warmup 2 --eval-every 0 --eval-batches 2 --checkpoint-every 0 --seed 5 -q",
    ];
    let accum = format!("--grad-accum {grad_accum} --device cpu");
    args(&[flags[0], flags[1], &accum], data, out)
}

#[test]
#[cfg(not(feature = "mpi"))]
fn without_the_feature_the_launch_fails_in_one_line() {
    let dir = temp_dir("dist-no-mpi");
    shards(&dir);
    let mut c = Command::new(TRAIN);
    c.args(train_args(&dir, &dir.join("run"), 1))
        .args(["--nproc", "2"]);
    let (code, err) = run(c);
    assert_one_line_error(code, &err, "--features mpi");
    // Started by mpirun (as its environment says) but unable to talk MPI: refuse, not train alone.
    let mut c = Command::new(TRAIN);
    c.args(train_args(&dir, &dir.join("run"), 1))
        .env("OMPI_COMM_WORLD_SIZE", "2");
    let (code, err) = run(c);
    assert_one_line_error(code, &err, "built without MPI");
}

#[cfg(feature = "mpi")]
mod with_mpi {
    use super::*;
    use crate::dist_util::{metrics as steps, mpirun};

    fn weights(out: &Path) -> Vec<u8> {
        std::fs::read(out.join("checkpoint/model.safetensors")).unwrap()
    }

    #[test]
    fn two_ranks_equal_grad_accum_two_bit_for_bit() {
        let dir = temp_dir("dist-dp");
        shards(&dir);
        let (one, two) = (dir.join("one"), dir.join("two"));
        let mut c = Command::new(TRAIN);
        c.args(train_args(&dir, &one, 2));
        let (code, err) = run(c);
        assert_eq!(code, 0, "{err}");
        let (code, err) = run(mpirun(&train_args(&dir, &two, 1)));
        assert_eq!(code, 0, "{err}");
        let (a, b) = (steps(&one), steps(&two));
        assert_eq!(a.len(), 12);
        assert_eq!(a, b, "2 ranks differ from --grad-accum 2");
        assert!(weights(&one) == weights(&two), "the saved weights differ");
        // Both resume to step 16, still in step; a 2-rank checkpoint refuses 1 rank.
        let more = |out: &Path| {
            let o = out.display().to_string();
            [
                "--resume", "--out", &o, "--steps", "16", "--device", "cpu", "-q",
            ]
            .map(String::from)
        };
        let mut c = Command::new(TRAIN);
        c.args(more(&two));
        let (code, err) = run(c);
        assert_one_line_error(code, &err, "saved by a run on 2 rank(s)");
        let mut c = Command::new(TRAIN);
        c.args(more(&one));
        assert_eq!(run(c).0, 0);
        let (code, err) = run(mpirun(&more(&two)));
        assert_eq!(code, 0, "{err}");
        assert_eq!(steps(&one).len(), 16);
        assert_eq!(steps(&one), steps(&two), "the resumed runs differ");
    }

    #[test]
    fn nproc_starts_itself_under_mpirun() {
        let dir = temp_dir("dist-nproc");
        shards(&dir);
        let out = dir.join("run");
        let mut c = Command::new(TRAIN);
        c.args(train_args(&dir, &out, 1)).args(["--nproc", "2"]);
        let (code, err) = run(c);
        assert_eq!(code, 0, "{err}");
        assert_eq!(steps(&out).len(), 12);
        assert!(out.join("checkpoint/model.safetensors").is_file());
    }

    #[test]
    fn a_failing_run_ends_every_rank_with_its_error_and_code_2() {
        let dir = temp_dir("dist-fail");
        let mut c = Command::new(TRAIN);
        c.args(train_args(&dir.join("missing"), &dir.join("run"), 1))
            .args(["--nproc", "2"]);
        let (code, err) = run(c);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("train: error: rank"), "{err}");
        assert!(err.contains("missing"), "{err}");
        // Both ranks hit it; the launcher shows it once.
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            !err.contains("MPI_ABORT") && !err.contains("panicked"),
            "{err}"
        );
    }

    /// Ctrl-C in a terminal signals the whole foreground process group. `train --nproc 2`
    /// passes it on to both ranks, which finish the step, save, and stop: exit code 130, one
    /// message, a checkpoint at the last logged step, and the run resumes from it.
    #[test]
    fn ctrl_c_on_nproc_saves_a_checkpoint_and_exits_130() {
        use std::os::unix::process::CommandExt;
        let dir = temp_dir("dist-ctrl-c");
        shards(&dir);
        let out = dir.join("run");
        let mut args = train_args(&dir, &out, 1);
        let at = args.iter().position(|a| a == "--steps").unwrap();
        args[at + 1] = "1000000".into();
        let mut c = Command::new(TRAIN);
        c.args(&args)
            .args(["--nproc", "2"])
            .env("RAYON_NUM_THREADS", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .process_group(0);
        let mut child = c.spawn().unwrap();
        let metrics = out.join("metrics.jsonl");
        let logged = || std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count());
        while logged() < 3 {
            assert!(
                child.try_wait().unwrap().is_none(),
                "train ended before the signal"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // bash's own `kill`, which signals a process group given as a negative number.
        let kill = format!("kill -INT -- -{}", child.id());
        let sent = Command::new("bash").args(["-c", &kill]).status();
        assert!(sent.unwrap().success());
        let done = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&done.stderr);
        assert_eq!(done.status.code(), Some(130), "{err}");
        assert_eq!(err.matches("interrupted (SIGINT)").count(), 1, "{err}");
        let state = std::fs::read_to_string(out.join("checkpoint/trainer_state.json")).unwrap();
        let state: serde_json::Value = serde_json::from_str(&state).unwrap();
        assert_eq!(state["step"].as_u64().unwrap() as usize, logged(), "{err}");
    }

    /// The processes whose parent is `pid` (from `/proc/*/stat`, field 4).
    fn children(pid: u32) -> Vec<u32> {
        let parent_of = |stat: &str| {
            let after = &stat[stat.rfind(')')? + 2..];
            after.split(' ').nth(1)?.parse::<u32>().ok()
        };
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .is_ok_and(|s| parent_of(&s) == Some(pid))
            })
            .collect()
    }

    /// A rank killed outright (`kill -9`, the out-of-memory killer) cannot say why: mpirun ends
    /// the other rank, the launcher says so in one line, and the last checkpoint resumes.
    #[test]
    fn a_killed_rank_ends_the_run_in_one_line_and_the_checkpoint_resumes() {
        let dir = temp_dir("dist-kill");
        shards(&dir);
        let out = dir.join("run");
        let mut args = train_args(&dir, &out, 1);
        let at = args.iter().position(|a| a == "--steps").unwrap();
        args[at + 1] = "1000000".into();
        let every = args.iter().position(|a| a == "--checkpoint-every").unwrap();
        args[every + 1] = "2".into();
        let mut c = Command::new(TRAIN);
        c.args(&args)
            .args(["--nproc", "2"])
            .env("RAYON_NUM_THREADS", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        let state = out.join("checkpoint/trainer_state.json");
        while !state.is_file() {
            assert!(child.try_wait().unwrap().is_none(), "train ended early");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let launched = children(child.id());
        let ranks = children(launched[0]);
        assert_eq!(ranks.len(), 2, "{ranks:?}");
        let kill = format!("kill -KILL {}", ranks.iter().max().unwrap());
        assert!(
            Command::new("bash")
                .args(["-c", &kill])
                .status()
                .unwrap()
                .success()
        );
        let done = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&done.stderr);
        assert_eq!(done.status.code(), Some(2), "{err}");
        // One line of ours. (Open MPI may add its own diagnostics when the surviving rank sees
        // the broken connection before mpirun ends it; which comes first depends on timing.)
        assert_eq!(err.matches("train: error:").count(), 1, "{err}");
        assert!(err.contains("ended without an error message"), "{err}");
        let step: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
        let steps = (step["step"].as_u64().unwrap() + 2).to_string();
        let o = out.display().to_string();
        let resume = ["--resume", "--out", &o, "--steps", &steps, "-q"].map(String::from);
        let (code, err) = run(mpirun(&resume));
        assert_eq!(code, 0, "{err}");
    }

    #[test]
    fn nproc_without_mpirun_fails_in_one_line() {
        let dir = temp_dir("dist-no-mpirun");
        let mut c = Command::new(TRAIN);
        c.args(train_args(&dir, &dir.join("run"), 1))
            .args(["--nproc", "2"])
            .env("PATH", &dir);
        let (code, err) = run(c);
        assert_one_line_error(code, &err, "needs `mpirun`");
    }
}
