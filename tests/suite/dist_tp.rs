//! Tensor parallel (`--tp`, Megatron-LM's split): the slicing and its inverse; the f and g ops'
//! gradients; a whole GPT split over two "ranks" (threads of this process) against the whole
//! model, with the all-reduce bytes Megatron's formula predicts; and, over MPI, `train --tp 2`
//! against one rank over 10 steps, through a checkpoint resumed the other way round, on the GPU
//! (or its CPU emulator), and as data parallel 2 × tensor parallel 2 on 4 ranks.
//!
//! TP-2 does not reproduce TP-1 bit for bit: the row-parallel matmul sums its `K` products in
//! two halves that the all-reduce adds, where one rank sums them in one pass, so the last bits
//! differ. The tests hold it to 1e-5 relative.

use crate::common::{assert_one_line_error, temp_dir};
use crate::dist_util::{TRAIN, args, run, shards};
use pretrain::model::checkpoint::gpt2_param_shapes;
use pretrain::model::config::GptConfig;
use pretrain::model::gpt::Gpt;
use pretrain::model::tp::{Split, slice, split_of, unslice};
use pretrain::tensor::gradcheck::{EPS, TOL, gradcheck};
use pretrain::tensor::parallel::{Group, GroupSum};
use pretrain::tensor::{Rng, Tensor};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Barrier, Mutex};

fn config() -> GptConfig {
    GptConfig {
        n_layer: 2,
        n_head: 4,
        n_embd: 16,
        block_size: 8,
        vocab_size: 20,
    }
}

/// `|a − b| ≤ tol · max(1, max|b|)` element by element.
fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * scale, "{what}[{i}]: {x} vs {y}");
    }
}

#[test]
fn slicing_then_gathering_is_the_identity() {
    let mut rng = Rng::new(3);
    for (name, shape) in gpt2_param_shapes(&config()) {
        let data = Tensor::randn(&shape, 0.0, 1.0, &mut rng).to_vec();
        for tp in [1, 2, 4] {
            let split = split_of(&name);
            let parts: Vec<f32> = (0..tp)
                .flat_map(|r| slice(split, &shape, &data, tp, r).1)
                .collect();
            assert_eq!(
                parts.len(),
                data.len() * if split == Split::Replicated { tp } else { 1 }
            );
            assert_eq!(unslice(split, &shape, &parts, tp), data, "{name} tp {tp}");
        }
    }
    // The q | k | v columns of [1, 12] on rank 1 of 2: columns 2..4 of each block of 4.
    let row: Vec<f32> = (0..12).map(|i| i as f32).collect();
    let split = split_of("h.0.attn.c_attn.weight");
    let (shape, mine) = slice(split, &[1, 12], &row, 2, 1);
    assert_eq!(
        (shape, mine),
        (vec![1, 6], vec![2.0, 3.0, 6.0, 7.0, 10.0, 11.0])
    );
    assert_eq!(split_of("h.0.attn.c_proj.weight"), Split::Rows);
    assert_eq!(split_of("h.0.attn.c_proj.bias"), Split::Replicated);
    assert_eq!(split_of("h.1.mlp.c_fc.bias"), Split::Columns { blocks: 1 });
}

/// The sum over "ranks" that are threads of this process, meeting at a barrier.
struct ThreadSum {
    rank: usize,
    size: usize,
    shared: Arc<(Mutex<Vec<f32>>, Barrier)>,
}

impl GroupSum for ThreadSum {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn sum_f32(&self, buf: &mut [f32]) {
        let (acc, barrier) = &*self.shared;
        if self.rank == 0 {
            *acc.lock().unwrap() = vec![0.0; buf.len()];
        }
        barrier.wait();
        let mut a = acc.lock().unwrap();
        a.iter_mut().zip(buf.iter()).for_each(|(s, x)| *s += x);
        drop(a);
        barrier.wait();
        buf.copy_from_slice(&acc.lock().unwrap());
        barrier.wait();
    }
}

#[test]
fn f_and_g_pass_the_gradient_check_on_one_rank() {
    let one = Group::register(Box::new(ThreadSum {
        rank: 0,
        size: 1,
        shared: Arc::new((Mutex::new(vec![]), Barrier::new(1))),
    }));
    let mut rng = Rng::new(9);
    let x = Tensor::randn(&[3, 4], 0.0, 1.0, &mut rng);
    let w = Tensor::randn(&[4, 5], 0.0, 1.0, &mut rng);
    let f = |xs: &[Tensor]| {
        let h = xs[0].tp_copy(&one).linear(&xs[1], None).tanh();
        h.tp_reduce(&one).mul(&h)
    };
    gradcheck(&f, &[x, w], EPS, TOL).unwrap();
    let (fwd, bwd) = one.bytes_reduced();
    assert!(fwd > 0 && bwd > 0, "the ops count what they sum");
}

/// One "rank" of a 2-way split of the model of [`config`]: its loss, its gradients gathered
/// back to whole-parameter shapes by the caller, and the bytes its group all-reduced.
fn tp_rank(
    rank: usize,
    shared: Arc<(Mutex<Vec<f32>>, Barrier)>,
) -> (f32, Vec<Vec<f32>>, (usize, usize)) {
    let group = Group::register(Box::new(ThreadSum {
        rank,
        size: 2,
        shared,
    }));
    let model = Gpt::new(config(), 11).shard(group.clone());
    let (ids, targets) = batch();
    let loss = model.loss(&ids, &targets, 2, 8);
    loss.backward();
    let grads = model
        .params()
        .into_iter()
        .map(|(_, p)| p.grad().unwrap().to_vec())
        .collect();
    (loss.item(), grads, group.bytes_reduced())
}

fn batch() -> (Vec<u32>, Vec<u32>) {
    let ids: Vec<u32> = (0..16).map(|i| (i * 7 % 20) as u32).collect();
    let targets: Vec<u32> = (0..16).map(|i| (i * 3 % 20) as u32).collect();
    (ids, targets)
}

#[test]
fn two_ranks_compute_the_whole_models_loss_and_gradients() {
    let full = Gpt::new(config(), 11);
    let (ids, targets) = batch();
    let loss = full.loss(&ids, &targets, 2, 8);
    loss.backward();
    let shared = Arc::new((Mutex::new(vec![]), Barrier::new(2)));
    let ranks: Vec<_> = (0..2)
        .map(|r| {
            let s = Arc::clone(&shared);
            std::thread::spawn(move || tp_rank(r, s))
        })
        .collect();
    let ranks: Vec<_> = ranks.into_iter().map(|h| h.join().unwrap()).collect();
    assert_close(&[ranks[0].0, ranks[1].0], &[loss.item(); 2], 1e-5, "loss");
    let shapes = gpt2_param_shapes(&config());
    for (i, ((name, p), (_, shape))) in full.params().into_iter().zip(shapes).enumerate() {
        let split = split_of(&name);
        let parts = [ranks[0].1[i].clone(), ranks[1].1[i].clone()].concat();
        let got = unslice(split, &shape, &parts, 2);
        assert_close(&got, &p.grad().unwrap().to_vec(), 1e-5, &name);
    }
    // Per block: 2 all-reduces of B·T·C floats forward (g), 2 backward (f).
    let c = config();
    let per_pass = 2 * c.n_layer * 2 * 8 * c.n_embd * 4;
    assert_eq!(ranks[0].2, (per_pass, per_pass));
}

/// `train` flags of a 10-step toy run into `out`, with `extra` appended.
fn train_args(data: &Path, out: &Path, extra: &str) -> Vec<String> {
    let flags = [
        "--steps 10 --batch-size 4 --seq-len 16 --n-layer 2 --n-head 2 --n-embd 32",
        "--lr 1e-2 --warmup 2 --eval-every 5 --eval-batches 2 --checkpoint-every 0 --seed 5",
        "--sample-every 5 --grad-clip 1 --device cpu -q",
        extra,
    ];
    args(&flags, data, out)
}

#[test]
fn refuses_a_model_it_cannot_split_in_one_line() {
    let dir = temp_dir("dist-tp-refuse");
    shards(&dir);
    let mut c = Command::new(TRAIN);
    let args = train_args(&dir, &dir.join("run"), "--tp 2").join(" ");
    let args = args.replace("--n-head 2 --n-embd 32", "--n-head 3 --n-embd 48");
    c.args(args.split(' '));
    let (code, err) = run(c);
    assert_one_line_error(code, &err, "--tp 2 must divide the 3 attention heads");
    let mut c = Command::new(TRAIN);
    c.args(train_args(&dir, &dir.join("run"), "--tp 2"));
    let (code, err) = run(c);
    assert_one_line_error(
        code,
        &err,
        "--tp 2 × --pp 1 = 2 does not divide the 1 rank(s)",
    );
}

#[cfg(feature = "mpi")]
mod with_mpi {
    use super::*;
    use crate::dist_util::{mpirun, mpirun_np};
    use pretrain::model::checkpoint::read_safetensors;

    /// Each step's loss and gradient norm.
    fn steps(out: &Path) -> Vec<[f32; 2]> {
        let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let f = |k: &str| v[k].as_f64().unwrap() as f32;
                [f("loss"), f("grad_norm")]
            })
            .collect()
    }

    /// Every tensor of a checkpoint file, in name order.
    fn tensors(out: &Path, file: &str) -> Vec<(String, Vec<f32>)> {
        let (mut t, _) = read_safetensors(&out.join("checkpoint").join(file)).unwrap();
        t.sort_by(|a, b| a.name.cmp(&b.name));
        t.into_iter().map(|t| (t.name, t.data)).collect()
    }

    /// The same losses and gradient norms within 1e-5, weights and moments within `tol`, except the key
    /// biases' weights: attention's softmax ignores a constant added to every key's score, so
    /// their gradient is 0 in exact arithmetic, and AdamW, dividing by its own scale, turns
    /// the rounding noise left there into steps that differ from one summation order to the
    /// next. Those are only checked to stay small.
    fn assert_runs_agree(a: &Path, b: &Path, tol: f32) {
        let (sa, sb) = (steps(a), steps(b));
        assert_eq!(sa.len(), sb.len());
        for (i, (x, y)) in sa.iter().zip(&sb).enumerate() {
            assert_close(x, y, 1e-5, &format!("step {} loss, grad norm", i + 1));
        }
        for file in ["model.safetensors", "optimizer.safetensors"] {
            for ((name, x), (_, y)) in tensors(a, file).iter().zip(tensors(b, file)) {
                let (mut x, mut y) = (x.clone(), y);
                if file == "model.safetensors" && name.ends_with("c_attn.bias") {
                    let keys = |v: &mut Vec<f32>| v.drain(32..64).collect::<Vec<f32>>();
                    let (kx, ky) = (keys(&mut x), keys(&mut y));
                    assert!(kx.iter().chain(&ky).all(|k| k.abs() < 1e-3), "{name}");
                }
                assert_close(&x, &y, tol, &format!("{file} {name}"));
            }
        }
    }

    #[test]
    fn two_ranks_match_one_and_resume_either_way() {
        let dir = temp_dir("dist-tp");
        shards(&dir);
        let (one, two) = (dir.join("one"), dir.join("two"));
        let mut c = Command::new(TRAIN);
        c.args(train_args(&dir, &one, ""));
        let (code, err) = run(c);
        assert_eq!(code, 0, "{err}");
        let (code, err) = run(mpirun(&train_args(&dir, &two, "--tp 2")));
        assert_eq!(code, 0, "{err}");
        assert_eq!(steps(&two).len(), 10);
        assert_runs_agree(&one, &two, 1e-5);
        // The gathered checkpoint is an ordinary one: each run resumes under the other's layout.
        let more = |out: &Path, tp: &str| {
            let o = out.display().to_string();
            let v = [
                "--resume", "--out", &o, "--steps", "14", "--tp", tp, "--device", "cpu", "-q",
            ];
            v.map(String::from).to_vec()
        };
        let mut c = Command::new(TRAIN);
        c.args(more(&two, "1"));
        let (code, err) = run(c);
        assert_eq!(code, 0, "{err}");
        let (code, err) = run(mpirun(&more(&one, "2")));
        assert_eq!(code, 0, "{err}");
        assert_eq!(steps(&one).len(), 14);
        assert_runs_agree(&one, &two, 1e-5);
    }

    /// On a GPU (here the CPU emulator of one when there is none; each rank opens its own), in
    /// f32: the activations cross ranks through host buffers, and TP-2 follows TP-1.
    #[test]
    fn two_ranks_on_the_gpu_match_one() {
        let test = "dist_tp::two_ranks_on_the_gpu_match_one";
        if pretrain::tensor::cuda::device::for_tests(test).is_none() {
            return;
        }
        let dir = temp_dir("dist-tp-gpu");
        shards(&dir);
        let (one, two) = (dir.join("one"), dir.join("two"));
        let gpu = |out: &Path, tp: &str| {
            let extra = format!("--tp {tp} --steps 3 --n-layer 1 --seq-len 8 --batch-size 2");
            let args = train_args(&dir, out, &extra).join(" ");
            let args = args.replace("--device cpu", "--device cuda --precision fp32");
            let args = args.replace("--steps 10 ", "").replace("--n-layer 2 ", "");
            let args = args.replace("--batch-size 4 --seq-len 16 ", "");
            args.split(' ').map(String::from).collect::<Vec<_>>()
        };
        let mut c = Command::new(TRAIN);
        c.args(gpu(&one, "1")).env("PRETRAIN_GPU_EMU", "1");
        let (code, err) = run(c);
        assert_eq!(code, 0, "{err}");
        // The ranks inherit mpirun's environment on this machine.
        let mut c = mpirun(&gpu(&two, "2"));
        c.env("PRETRAIN_GPU_EMU", "1");
        let (code, err) = run(c);
        assert_eq!(code, 0, "{err}");
        assert_eq!(steps(&two).len(), 3);
        for (x, y) in steps(&one).iter().zip(&steps(&two)) {
            assert_close(x, y, 1e-5, "loss, grad norm on the GPU");
        }
    }

    /// 4 ranks as data parallel 2 × tensor parallel 2 (more ranks than this machine's cores:
    /// slow, but a toy model): the same as one process with `--grad-accum 2`. The weights are
    /// held to 1e-4: with twice the micro-batches the sums are grouped differently in twice
    /// the places, and AdamW turns the difference in the smallest gradients into steps that
    /// differ by about 1e-5 in a few weights.
    #[test]
    fn data_parallel_over_tensor_parallel_groups_matches_grad_accum() {
        let dir = temp_dir("dist-dp-tp");
        shards(&dir);
        let (one, four) = (dir.join("one"), dir.join("four"));
        let mut c = Command::new(TRAIN);
        c.args(train_args(&dir, &one, "--grad-accum 2"));
        let (code, err) = run(c);
        assert_eq!(code, 0, "{err}");
        let (code, err) = run(mpirun_np(4, &train_args(&dir, &four, "--tp 2")));
        assert_eq!(code, 0, "{err}");
        assert_runs_agree(&one, &four, 1e-4);
    }
}
