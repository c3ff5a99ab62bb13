//! Pipeline parallel training (`train::dist::pipeline`): 2 stages with 4 micro-batches give, bit
//! for bit, the losses, gradient norms and saved weights of one process with `--grad-accum 4`,
//! under GPipe and 1F1B (clipping off in one, active in the other); two pipelines side by side
//! (4 ranks) equal `--grad-accum 2`; a 2-stage checkpoint resumes in one process and back, still
//! in step; impossible layouts fail in one line.
//!
//! The MPI tests need `--features mpi` and Open MPI's `mpirun`, as in `dist_dp`.

use crate::common::{assert_one_line_error, temp_dir};
use crate::dist_util::{TRAIN, args, run, shards};
use std::path::Path;
use std::process::Command;

/// `train` flags of a 12-step toy run of 3 blocks (split 1 + 2 over two stages) into `out`.
fn train_args(data: &Path, out: &Path, extra: &str) -> Vec<String> {
    let flags = [
        "--steps 12 --batch-size 2 --seq-len 16 --n-head 2 --n-embd 32",
        "--lr 1e-2 --warmup 2 --eval-every 6 --eval-batches 2 --checkpoint-every 0 --seed 3",
        "--grad-accum 4 --device cpu -q",
        extra,
    ];
    let layers = if extra.contains("--n-layer") {
        ""
    } else {
        "--n-layer 3"
    };
    args(&[&flags.join(" "), layers], data, out)
}

#[test]
fn a_pipeline_needs_as_many_ranks_as_stages() {
    let dir = temp_dir("dist-pp-ranks");
    shards(&dir);
    let mut c = Command::new(TRAIN);
    c.args(train_args(&dir, &dir.join("run"), "--pp 2"));
    let (code, err) = run(c);
    assert_one_line_error(code, &err, "--pp 2 = 2 does not divide the 1 rank(s)");
}

#[cfg(feature = "mpi")]
mod with_mpi {
    use super::*;
    use crate::dist_util::{metrics as steps, mpirun};

    fn grad_norms(out: &Path) -> Vec<f64> {
        let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        let norm =
            |l: &str| serde_json::from_str::<serde_json::Value>(l).unwrap()["grad_norm"].as_f64();
        text.lines().map(|l| norm(l).unwrap()).collect()
    }

    fn weights(out: &Path) -> Vec<u8> {
        std::fs::read(out.join("checkpoint/model.safetensors")).unwrap()
    }

    fn ok((code, err): (i32, String)) {
        assert_eq!(code, 0, "{err}");
    }

    /// One process with `--grad-accum 4` and 2 stages of `schedule` with `clip`, compared.
    fn same_as_one_process(name: &str, schedule: &str, clip: &str) -> std::path::PathBuf {
        let dir = temp_dir(name);
        shards(&dir);
        let (one, two) = (dir.join("one"), dir.join("two"));
        let mut c = Command::new(TRAIN);
        c.args(train_args(&dir, &one, clip));
        ok(run(c));
        let pp = format!("{clip} --pp 2 --pp-schedule {schedule}");
        ok(run(mpirun(&train_args(&dir, &two, &pp))));
        let (a, b) = (steps(&one), steps(&two));
        assert_eq!(a.len(), 12);
        assert_eq!(a, b, "2 stages ({schedule}) differ from --grad-accum 4");
        assert!(weights(&one) == weights(&two), "the saved weights differ");
        dir
    }

    #[test]
    fn gpipe_equals_grad_accum_bit_for_bit() {
        same_as_one_process("dist-pp-gpipe", "gpipe", "--grad-clip 0");
    }

    #[test]
    fn one_f_one_b_with_clipping_equals_grad_accum_bit_for_bit() {
        let dir = same_as_one_process("dist-pp-1f1b", "1f1b", "--grad-clip 0.3");
        let clipped = grad_norms(&dir.join("one"))
            .iter()
            .filter(|&&n| n > 0.3)
            .count();
        assert!(clipped >= 6, "clipping should be active in most steps");
    }

    /// One process 12 → 16 → 20 steps, against 2 stages → one process → 2 stages.
    #[test]
    fn a_pipeline_checkpoint_resumes_in_one_process_and_back() {
        let dir = temp_dir("dist-pp-resume");
        shards(&dir);
        let (one, two) = (dir.join("one"), dir.join("two"));
        let mut c = Command::new(TRAIN);
        c.args(train_args(&dir, &one, ""));
        ok(run(c));
        ok(run(mpirun(&train_args(&dir, &two, "--pp 2"))));
        let more = |out: &Path, steps: usize, pp: usize| {
            let o = out.display().to_string();
            let flags = format!("--resume --out {o} --steps {steps} --pp {pp} --device cpu -q");
            flags.split(' ').map(String::from).collect::<Vec<_>>()
        };
        for (steps, pp) in [(16, 1), (20, 2)] {
            let mut c = Command::new(TRAIN);
            c.args(more(&one, steps, 1));
            ok(run(c));
            match pp {
                1 => {
                    let mut c = Command::new(TRAIN);
                    c.args(more(&two, steps, 1));
                    ok(run(c));
                }
                _ => ok(run(mpirun(&more(&two, steps, 2)))),
            }
            assert_eq!(self::steps(&one).len(), steps);
            assert_eq!(self::steps(&one), self::steps(&two), "after {steps} steps");
            assert!(
                weights(&one) == weights(&two),
                "weights after {steps} steps"
            );
        }
    }

    /// 4 ranks = 2 pipelines × 2 stages, one micro-batch each: the stages' gradients are summed
    /// over the two pipelines, as one process sums 2 micro-batches (a sum of two is exact).
    #[test]
    fn two_pipelines_side_by_side_equal_grad_accum_two() {
        let dir = temp_dir("dist-pp-dp");
        shards(&dir);
        let (one, four) = (dir.join("one"), dir.join("four"));
        let flags = |out: &Path, extra: &str| {
            let mut v = train_args(&dir, out, extra);
            let at = v.iter().position(|a| a == "--grad-accum").unwrap();
            v.drain(at..at + 2);
            v
        };
        let mut c = Command::new(TRAIN);
        c.args(flags(&one, "--grad-accum 2 --grad-clip 0.3"));
        ok(run(c));
        let mut c = Command::new(TRAIN);
        c.args(flags(
            &four,
            "--grad-accum 1 --grad-clip 0.3 --pp 2 --nproc 4",
        ));
        ok(run(c));
        assert_eq!(
            steps(&one),
            steps(&four),
            "dp 2 × pp 2 differs from --grad-accum 2"
        );
        assert!(weights(&one) == weights(&four), "the saved weights differ");
    }

    #[test]
    fn more_stages_than_blocks_fail_on_every_rank() {
        let dir = temp_dir("dist-pp-blocks");
        shards(&dir);
        let args = train_args(&dir, &dir.join("run"), "--pp 2 --n-layer 1 --nproc 2");
        let mut c = Command::new(TRAIN);
        c.args(args);
        let (code, err) = run(c);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("needs at least 2 blocks"), "{err}");
        assert!(err.contains("train: error: rank"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
