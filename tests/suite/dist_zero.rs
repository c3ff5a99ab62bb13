//! ZeRO (`train --zero 1|2|3`, `train::dist::zero`): on 2 MPI ranks every stage gives, bit for
//! bit, the losses, gradient norms, saved weights and optimizer state of one process with
//! `--grad-accum 2` (which plain data parallel equals, `dist_dp`), with gradient clipping active
//! and without; a run resumes on another number of ranks or stage when `--grad-accum` keeps the
//! global batch, and in one line names the `--grad-accum` that would when it does not; each
//! rank's held bytes are what the stage's formula says. On one process ZeRO is plain training
//! (the partition has one rank, which owns everything).
//!
//! The partition itself is unit-tested in `src/train/dist/zero.rs`.

use crate::common::{assert_one_line_error, temp_dir};
use crate::dist_util::{TRAIN, args, metrics as steps, run, shards};
use std::path::Path;
use std::process::Command;

/// `train` flags of a toy run of `steps` steps into `out` with `extra` flags (split on spaces).
fn train_args(data: &Path, out: &Path, steps: usize, extra: &str) -> Vec<String> {
    let flags = [
        "--batch-size 4 --seq-len 16 --n-layer 2 --n-head 2 --n-embd 32 --lr 1e-2 --warmup 2",
        "--eval-every 4 --eval-batches 2 --checkpoint-every 5 --seed 5 --device cpu",
        extra,
    ];
    let steps = format!("--steps {steps}");
    args(&[flags[0], flags[1], flags[2], &steps], data, out)
}

/// `--resume` of the run in `out` to `steps` steps, with `extra` flags.
fn resume_args(out: &Path, steps: usize, extra: &str) -> Vec<String> {
    let mut v: Vec<String> = format!("--resume --steps {steps} --device cpu -q {extra}")
        .split_whitespace()
        .map(String::from)
        .collect();
    v.extend(["--out".into(), out.display().to_string()]);
    v
}

/// One process running `train` with `args`; panics with its stderr if it fails.
fn train_alone(args: &[String]) -> String {
    let mut c = Command::new(TRAIN);
    c.args(args);
    let (code, err) = run(c);
    assert_eq!(code, 0, "{err}");
    err
}

/// The saved weights and optimizer state, byte for byte.
fn saved(out: &Path) -> (Vec<u8>, Vec<u8>) {
    let read = |f: &str| std::fs::read(out.join("checkpoint").join(f)).unwrap();
    (read("model.safetensors"), read("optimizer.safetensors"))
}

/// `a` and `b` trained the same: every step's numbers, the weights, the optimizer state.
fn assert_same_run(a: &Path, b: &Path, what: &str) {
    assert_eq!(steps(a), steps(b), "{what}: the steps differ");
    assert!(saved(a) == saved(b), "{what}: the checkpoints differ");
}

#[test]
fn zero_on_one_process_is_plain_training() {
    let dir = temp_dir("zero-one-process");
    shards(&dir);
    let (plain, zero) = (dir.join("plain"), dir.join("zero"));
    train_alone(&train_args(
        &dir,
        &plain,
        6,
        "--grad-accum 2 --grad-clip 0.05 -q",
    ));
    train_alone(&train_args(
        &dir,
        &zero,
        6,
        "--grad-accum 2 --grad-clip 0.05 -q --zero 3",
    ));
    assert_same_run(&plain, &zero, "--zero 3 on one process");
}

#[test]
fn a_resume_keeps_the_global_batch_and_may_change_the_stage() {
    let dir = temp_dir("zero-resume-one");
    shards(&dir);
    let constant = "--schedule constant -q --grad-accum 2";
    let (reference, run_dir) = (dir.join("reference"), dir.join("run"));
    // Stopped where it evaluates (every 4 steps), as the reference does there.
    train_alone(&train_args(&dir, &reference, 8, constant));
    train_alone(&train_args(&dir, &run_dir, 4, constant));
    let mut c = Command::new(TRAIN);
    c.args(resume_args(&run_dir, 8, "--grad-accum 1"));
    let (code, err) = run(c);
    assert_one_line_error(code, &err, "8 sequences per step");
    assert!(
        err.contains("resume with --grad-accum 2 to keep it"),
        "{err}"
    );
    train_alone(&resume_args(&run_dir, 8, "--zero 1"));
    assert_same_run(&reference, &run_dir, "resumed under --zero 1");
}

#[cfg(feature = "mpi")]
mod with_mpi {
    use super::*;
    use crate::dist_util::mpirun;

    fn train_on_two(args: &[String]) -> String {
        let (code, err) = run(mpirun(args));
        assert_eq!(code, 0, "{err}");
        err
    }

    /// The gradient norms of a run: clipping at `clip` is active when some exceed it.
    fn norms(out: &Path) -> Vec<f64> {
        let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["grad_norm"].as_f64())
            .map(Option::unwrap)
            .collect()
    }

    #[test]
    fn every_stage_on_two_ranks_equals_grad_accum_two_with_clipping() {
        let dir = temp_dir("zero-stages-clip");
        shards(&dir);
        let reference = dir.join("reference");
        train_alone(&train_args(
            &dir,
            &reference,
            12,
            "--grad-accum 2 --grad-clip 0.05 -q",
        ));
        assert!(
            norms(&reference).iter().all(|&n| n > 0.05),
            "clipping is not active"
        );
        for stage in 1..=3 {
            let out = dir.join(format!("zero{stage}"));
            let extra = format!("--grad-clip 0.05 -q --zero {stage}");
            train_on_two(&train_args(&dir, &out, 12, &extra));
            assert_eq!(steps(&out).len(), 12);
            assert_same_run(&reference, &out, &format!("--zero {stage}"));
        }
    }

    #[test]
    fn stages_two_and_three_equal_grad_accum_two_without_clipping() {
        let dir = temp_dir("zero-stages-noclip");
        shards(&dir);
        let reference = dir.join("reference");
        train_alone(&train_args(
            &dir,
            &reference,
            10,
            "--grad-accum 2 --grad-clip 0 -q",
        ));
        for stage in [2, 3] {
            let out = dir.join(format!("zero{stage}"));
            let extra = format!("--grad-clip 0 -q --zero {stage}");
            train_on_two(&train_args(&dir, &out, 10, &extra));
            assert_same_run(
                &reference,
                &out,
                &format!("--zero {stage} without clipping"),
            );
        }
    }

    #[test]
    fn a_run_resumes_on_another_number_of_ranks_keeping_the_global_batch() {
        let dir = temp_dir("zero-resume-world");
        shards(&dir);
        // A constant learning rate: the cosine's length would change with --steps.
        let reference = dir.join("reference");
        let constant = "--schedule constant -q";
        train_alone(&train_args(
            &dir,
            &reference,
            12,
            &format!("{constant} --grad-accum 2"),
        ));
        // 2 ranks with ZeRO-1 for 8 steps, then 1 process with --grad-accum 2 to step 12.
        let down = dir.join("two-then-one");
        train_on_two(&train_args(&dir, &down, 8, &format!("{constant} --zero 1")));
        let mut c = Command::new(TRAIN);
        c.args(resume_args(&down, 12, ""));
        let (code, err) = run(c);
        assert_one_line_error(code, &err, "resume with --grad-accum 2 to keep it");
        train_alone(&resume_args(&down, 12, "--grad-accum 2"));
        assert_same_run(&reference, &down, "2 ranks (ZeRO-1) then 1");
        // 1 process with --grad-accum 2 for 8 steps, then 2 ranks with ZeRO-2 to step 12.
        let up = dir.join("one-then-two");
        train_alone(&train_args(
            &dir,
            &up,
            8,
            &format!("{constant} --grad-accum 2"),
        ));
        train_on_two(&resume_args(&up, 12, "--grad-accum 1 --zero 2"));
        assert_same_run(&reference, &up, "1 process then 2 ranks (ZeRO-2)");
    }

    /// "memory of rank R: parameters P B, gradients G B, optimizer state O B, ..." → [P, G, O].
    fn held(err: &str, rank: usize) -> [u64; 3] {
        let start = format!("memory of rank {rank}: ");
        let line = err.lines().find(|l| l.starts_with(&start)).expect(err);
        let numbers: Vec<u64> = line.split(' ').filter_map(|w| w.parse().ok()).collect();
        [numbers[0], numbers[1], numbers[2]]
    }

    #[test]
    fn each_rank_holds_what_its_stage_says() {
        let dir = temp_dir("zero-memory");
        shards(&dir);
        // Ψ, the parameter count: plain data parallel holds 4 bytes of it on each rank.
        let mut psi = 0u64;
        for stage in 0..=3 {
            let out = dir.join(format!("zero{stage}"));
            let extra = format!("--zero {stage}");
            let mut args = train_args(&dir, &out, 2, &extra);
            args.retain(|a| a != "-q");
            let err = train_on_two(&args);
            let (a, b) = (held(&err, 0), held(&err, 1));
            let sum: Vec<u64> = (0..3).map(|k| a[k] + b[k]).collect();
            if stage == 0 {
                psi = a[0] / 4;
                let full = [4 * psi, 4 * psi, 8 * psi];
                assert_eq!((a, b), (full, full), "{err}");
            }
            // Sharded: the two ranks' shares add up to one copy.
            let want = match stage {
                0 => vec![8 * psi, 8 * psi, 16 * psi],
                1 => vec![8 * psi, 8 * psi, 8 * psi],
                2 => vec![8 * psi, 4 * psi, 8 * psi],
                _ => vec![4 * psi, 4 * psi, 8 * psi],
            };
            assert_eq!(sum, want, "--zero {stage}: {err}");
        }
    }

    #[test]
    fn zero_with_tensor_or_pipeline_parallel_is_refused() {
        let dir = temp_dir("zero-tp");
        shards(&dir);
        let out = dir.join("run");
        let (code, err) = run(mpirun(&train_args(&dir, &out, 2, "-q --zero 1 --tp 2")));
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("ZeRO together with --tp or --pp"), "{err}");
    }
}
