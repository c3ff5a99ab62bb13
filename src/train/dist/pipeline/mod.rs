//! Pipeline parallel (流水线并行): the blocks are cut into `p` contiguous *stages*, one per rank,
//! and every micro-batch flows through them in turn: stage 0 embeds the tokens and runs the first
//! blocks, sends the activations (`[B·T, C]`) to stage 1, and so on; the last stage runs the
//! final LayerNorm, the LM head and the loss. Backward goes the other way: each stage receives
//! the gradient of its output, runs `backward_with` it, and sends the gradient of its input
//! (a leaf that requires grad) to the stage before. [`schedule`] decides the order.
//!
//! GPT-2 ties the LM head to the token embedding `wte`, which lives at both ends. As Megatron-LM
//! does, the last stage keeps a copy and the two copies get the same gradient and the same
//! update, so they stay identical. The gradient is combined exactly as one process combines
//! it: per micro-batch, the head's part first, then the embedding's rows added in, then the
//! micro-batches added in order. The last stage keeps each micro-batch's head part, stage 0
//! sends it the embedding's row gradients after the step's backwards, and the sum goes back.
//! With every other gradient summed in the same order as in one process too, a pipeline run
//! gives the losses, gradient norms and weights of `--grad-accum m` in one process, bit for bit.
//!
//! Simplifications, stated: every rank builds the whole model (only its stage's weights are
//! trained and current there; a large model would build only its stage), and rank 0 gathers
//! the other stages' weights and AdamW moments whenever it evaluates, samples or saves. The
//! last stage holds each micro-batch's `[V, C]` head gradient until the step's end.

pub mod schedule;

use super::{Comm, Layout, PipeSchedule, all_reduce_grads};
use crate::model::gpt::Gpt;
use crate::tensor::{Tensor, backend, no_grad};
use crate::train::optim::{AdamW, clip_factor, fold_norm};
use anyhow::{Result, bail};
use schedule::Op;
use std::ops::Range;
use std::time::Instant;

/// Parameters per transformer block (see `Gpt::params`).
const PER_BLOCK: usize = 12;

/// A micro-batch: token ids and targets, `B·T` each.
pub type Batch = (Vec<u32>, Vec<u32>);

/// This rank's place in the pipeline, its groups, and the bubble it measured.
pub struct Pipeline {
    kind: PipeSchedule,
    /// Stages, and this rank's.
    p: usize,
    stage: usize,
    /// World ranks of the stage before and after (meaningless at the ends).
    prev: usize,
    next: usize,
    /// World ranks of this pipeline's first and last stage.
    first_rank: usize,
    last_rank: usize,
    /// This pipeline's number among the data parallel copies.
    dp_rank: usize,
    n_layer: usize,
    n_params: usize,
    /// The ranks that hold this stage in the other pipelines (gradients are summed there).
    dp_group: Box<dyn Comm>,
    /// The stages of this pipeline (the gradient norm is summed there).
    pp_group: Box<dyn Comm>,
    pub stats: Bubble,
}

/// Time a stage spent waiting in sends and receives during the forward-backward part of the
/// steps, against that part's whole time, and the peak number of micro-batches held.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bubble {
    pub wait_s: f64,
    pub total_s: f64,
    pub peak_held: usize,
    /// Steps run (the first is not timed).
    pub steps: usize,
}

impl Pipeline {
    /// The pipeline of rank `comm.rank()` under `layout` (`layout.pp > 1`), for a model of
    /// `n_layer` blocks. Every rank must call it (it splits `comm` into groups).
    pub fn new(comm: &dyn Comm, layout: &Layout, n_layer: usize) -> Result<Pipeline> {
        check(layout, n_layer)?;
        let (dp_rank, stage, _) = layout.coords(comm.rank());
        let p = layout.pp;
        let first_rank = dp_rank * p;
        let dp_group = comm.split(stage);
        let pp_group = comm.split(dp_rank);
        Ok(Pipeline {
            kind: layout.schedule,
            p,
            stage,
            prev: (first_rank + stage).wrapping_sub(1),
            next: first_rank + stage + 1,
            first_rank,
            last_rank: first_rank + p - 1,
            dp_rank,
            n_layer,
            n_params: 4 + PER_BLOCK * n_layer,
            dp_group,
            pp_group,
            stats: Bubble::default(),
        })
    }

    fn is_first(&self) -> bool {
        self.stage == 0
    }

    fn is_last(&self) -> bool {
        self.stage + 1 == self.p
    }

    /// True when stage `s` holds parameter `i` (in `Gpt::params` order): `wte` at both ends,
    /// `wpe` on stage 0, each block on the stage of its range, `ln_f` on the last stage.
    fn holds(&self, s: usize, i: usize) -> bool {
        match i {
            0 => s == 0 || s + 1 == self.p,
            1 => s == 0,
            i if i + 2 >= self.n_params => s + 1 == self.p,
            i => blocks(self.p, s, self.n_layer).contains(&((i - 2) / PER_BLOCK)),
        }
    }

    /// One step's forwards and backwards of `batches` (`--grad-accum` micro-batches), each
    /// loss scaled by `1/scale`, leaving this stage's gradients (the tied `wte`'s combined)
    /// in its parameters. Returns the sum of the losses on the last stage, 0 elsewhere.
    pub fn forward_backward(
        &mut self,
        comm: &dyn Comm,
        model: &Gpt,
        batches: &[Batch],
        scale: usize,
        (b, t): (usize, usize),
    ) -> f64 {
        let ops = schedule::ops(self.kind, self.p, self.stage, batches.len());
        let mut run = StepRun::new(self, model, batches, scale, (b, t));
        let start = Instant::now();
        for op in ops.iter().copied() {
            run.op(comm, op);
        }
        let (loss_sum, wait_s) = (run.loss_sum, run.wait_s);
        // Exchanging wte's gradient and the barrier make every stage wait for the slowest
        // one's drain: that idle time counts too.
        let tied = Instant::now();
        self.tie_wte(comm, model, batches, run.embed_grads, run.head_grads);
        self.pp_group.barrier();
        // The first step (buffers allocated, connections made) is not counted.
        let s = &mut self.stats;
        if s.steps > 0 {
            s.total_s += start.elapsed().as_secs_f64();
            s.wait_s += wait_s + tied.elapsed().as_secs_f64();
        }
        s.steps += 1;
        s.peak_held = s.peak_held.max(schedule::peak_held(&ops));
        loss_sum
    }

    /// Makes both copies of `wte` hold the gradient one process would compute: stage 0 sends
    /// the embedding's row gradients of every micro-batch, the last stage adds them to its
    /// head's (per micro-batch: the head's first, then the rows; then the micro-batches in
    /// order, as autograd does) and sends the sum back.
    fn tie_wte(
        &self,
        comm: &dyn Comm,
        model: &Gpt,
        batches: &[Batch],
        embed: Vec<f32>,
        head: Vec<Tensor>,
    ) {
        let wte = &model.wte;
        if self.is_first() {
            comm.send_f32(&embed, self.last_rank);
            let mut sum = vec![0.0; wte.numel()];
            comm.recv_f32(&mut sum, self.last_rank);
            wte.set_grad(Some(on_device(sum, wte.shape(), wte)));
        } else if self.is_last() {
            let rows = batches[0].0.len();
            let c = wte.shape()[1];
            let mut embed = vec![0.0; batches.len() * rows * c];
            comm.recv_f32(&mut embed, self.first_rank);
            let mut acc: Option<Tensor> = None;
            for ((g, chunk), (ids, _)) in head.iter().zip(embed.chunks(rows * c)).zip(batches) {
                let g = backend::copy(g);
                let e = on_device(chunk.to_vec(), &[rows, c], wte);
                backend::add_rows(&g, &e, ids);
                acc = Some(match acc {
                    Some(a) => {
                        backend::add_into(&a, &g, None);
                        a
                    }
                    None => g,
                });
            }
            let acc = acc.expect("at least one micro-batch");
            comm.send_f32(&acc.to_vec(), self.first_rank);
            wte.set_grad(Some(acc));
        }
    }

    /// After [`Pipeline::forward_backward`]: sums this stage's gradients over the data parallel
    /// copies, computes the global gradient norm exactly as one process folds it, and applies
    /// AdamW (clipped) to this stage's parameters. Returns the norm.
    pub fn update(&self, params: &[Tensor], opt: &mut AdamW, lr: f32, grad_clip: f32) -> f32 {
        let mine: Vec<Tensor> = (0..params.len())
            .filter(|&i| self.holds(self.stage, i))
            .map(|i| params[i].clone())
            .collect();
        all_reduce_grads(self.dp_group.as_ref(), &mine);
        // Each tensor's sum of squares from the one stage that counts it (wte: stage 0), exact
        // zeros from the others, so the all-reduce adds nothing but zeros.
        let mut squares = vec![0.0f32; params.len()];
        for (i, p) in params.iter().enumerate() {
            let counts = self.holds(self.stage, i) && (i != 0 || self.is_first());
            if let Some(g) = p.grad().filter(|_| counts) {
                squares[i] = backend::sum_squares(&g).item();
            }
        }
        self.pp_group.all_reduce_sum_f32(&mut squares);
        let norm = fold_norm(squares.iter().map(|&s| Tensor::from_vec(vec![s], &[])));
        let refs: Vec<&Tensor> = params.iter().collect();
        opt.apply_selected(&refs, lr, clip_factor(norm, grad_clip), &|i| {
            self.holds(self.stage, i)
        });
        norm
    }

    /// Brings every stage's current weights and AdamW moments to rank 0 (from the first
    /// pipeline), so that rank 0 can evaluate, sample and save the whole model. Every rank must
    /// call it.
    pub fn gather_to_root(&self, comm: &dyn Comm, params: &[Tensor], opt: &mut AdamW) {
        if self.dp_rank != 0 {
            return;
        }
        let theirs =
            |s: usize| (0..params.len()).filter(move |&i| !self.holds(0, i) && self.holds(s, i));
        if self.is_first() {
            for s in 1..self.p {
                let idx: Vec<usize> = theirs(s).collect();
                let len: usize = idx.iter().map(|&i| 3 * params[i].numel()).sum();
                let mut buf = vec![0.0; len];
                comm.recv_f32(&mut buf, self.first_rank + s);
                unpack(&buf, &idx, params, opt);
            }
        } else {
            let mut buf = vec![];
            for i in theirs(self.stage) {
                buf.extend(opt.full_precision(i, &params[i]));
                buf.extend(opt.state[i].m.to_vec());
                buf.extend(opt.state[i].v.to_vec());
            }
            comm.send_f32(&buf, self.first_rank);
        }
    }

    /// One line on the bubble each stage measured, from rank 0 (every rank must call it).
    pub fn report(&self, comm: &dyn Comm, m: usize) -> Option<String> {
        let n = comm.world_size();
        let mut v = vec![0.0f64; 3 * n];
        let r = comm.rank();
        let s = self.stats;
        v[3 * r..3 * r + 3].copy_from_slice(&[s.wait_s, s.total_s, s.peak_held as f64]);
        comm.all_reduce_sum_f64(&mut v);
        if !comm.is_root() || s.total_s == 0.0 {
            return None;
        }
        let p = self.p;
        let stages: Vec<String> = (0..p)
            .map(|k| {
                let w = &v[3 * k..3 * k + 3];
                format!(
                    "stage {k} {:.1}% ({} held)",
                    100.0 * w[0] / w[1].max(1e-12),
                    w[2]
                )
            })
            .collect();
        let ideal = 100.0 * (p - 1) as f64 / (m + p - 1) as f64;
        let kind = match self.kind {
            PipeSchedule::Gpipe => "GPipe",
            PipeSchedule::OneFOneB => "1F1B",
        };
        Some(format!(
            "pipeline {kind}, {p} stages × {m} micro-batches: time waiting for messages {}; \
             the bubble (p-1)/(m+p-1) = {ideal:.1}%",
            stages.join(", "),
        ))
    }
}

/// Refuses a layout the pipeline cannot run, in one line.
pub fn check(layout: &Layout, n_layer: usize) -> Result<()> {
    if layout.pp > n_layer {
        bail!(
            "--pp {} needs at least {} blocks to split, and the model has {n_layer} (--n-layer)",
            layout.pp,
            layout.pp
        );
    }
    if layout.tp > 1 {
        bail!("tensor parallel inside pipeline parallel (--tp with --pp) is not implemented yet");
    }
    if layout.zero > 0 {
        bail!("ZeRO with pipeline parallel (--zero with --pp) is not implemented yet");
    }
    Ok(())
}

/// Stage `s`'s blocks of `n_layer` on `p` stages: contiguous, sizes differing by at most one.
pub fn blocks(p: usize, s: usize, n_layer: usize) -> Range<usize> {
    s * n_layer / p..(s + 1) * n_layer / p
}

/// `v` as a tensor of `shape` on `like`'s device, in its dtype.
fn on_device(v: Vec<f32>, shape: &[usize], like: &Tensor) -> Tensor {
    Tensor::from_vec(v, shape)
        .to(like.device())
        .to_dtype(like.dtype())
}

/// Copies the weights and moments packed by [`Pipeline::gather_to_root`] into `params`.
fn unpack(buf: &[f32], idx: &[usize], params: &[Tensor], opt: &mut AdamW) {
    let mut rest = buf;
    for &i in idx {
        let n = params[i].numel();
        let mut take = || {
            let (a, b) = rest.split_at(n);
            rest = b;
            Tensor::from_vec(a.to_vec(), params[i].shape())
        };
        let (w, m, v) = (take(), take(), take());
        let s = &opt.state[i];
        if let Some(master) = &s.master {
            master.copy_from(&w);
        }
        params[i].copy_from(&w);
        s.m.copy_from(&m);
        s.v.copy_from(&v);
    }
}

/// What one step of one stage keeps while its ops run.
struct StepRun<'a> {
    model: &'a Gpt,
    batches: &'a [Batch],
    scale: usize,
    b: usize,
    t: usize,
    first: bool,
    last: bool,
    prev: usize,
    next: usize,
    blocks: Range<usize>,
    /// Activations received for each micro-batch, until its forward.
    received: Vec<Option<Vec<f32>>>,
    /// Each micro-batch in flight: its input leaf and its output (the scaled loss on the last
    /// stage), until its backward.
    live: Vec<Option<(Tensor, Tensor)>>,
    /// Gradients of each output, received, until its backward.
    out_grads: Vec<Option<Vec<f32>>>,
    /// Gradients of each input, until sent.
    in_grads: Vec<Option<Vec<f32>>>,
    /// Stage 0: the gradients of the token embeddings' rows, micro-batch after micro-batch.
    embed_grads: Vec<f32>,
    /// Last stage: each micro-batch's gradient of `wte` through the LM head.
    head_grads: Vec<Tensor>,
    loss_sum: f64,
    wait_s: f64,
}

impl<'a> StepRun<'a> {
    fn new(
        pipe: &Pipeline,
        model: &'a Gpt,
        batches: &'a [Batch],
        scale: usize,
        (b, t): (usize, usize),
    ) -> StepRun<'a> {
        let m = batches.len();
        StepRun {
            model,
            batches,
            scale,
            b,
            t,
            first: pipe.is_first(),
            last: pipe.is_last(),
            prev: pipe.prev,
            next: pipe.next,
            blocks: blocks(pipe.p, pipe.stage, pipe.n_layer),
            received: vec![None; m],
            live: (0..m).map(|_| None).collect(),
            out_grads: vec![None; m],
            in_grads: vec![None; m],
            embed_grads: vec![],
            head_grads: vec![],
            loss_sum: 0.0,
            wait_s: 0.0,
        }
    }

    fn width(&self) -> usize {
        self.b * self.t * self.model.config.n_embd
    }

    /// Runs one op; the time spent in communication counts as waiting.
    fn op(&mut self, comm: &dyn Comm, op: Op) {
        let start = Instant::now();
        let n = self.width();
        match op {
            Op::Forward(i) => return self.forward(i),
            Op::Backward(j) => return self.backward(j),
            Op::RecvFwd(i) => {
                let mut buf = vec![0.0; n];
                comm.recv_f32(&mut buf, self.prev);
                self.received[i] = Some(buf);
            }
            Op::SendFwd(i) => comm.send_f32(&self.output(i), self.next),
            Op::SendFwdRecvBwd(i, j) => {
                let mut buf = vec![0.0; n];
                comm.send_recv_f32(&self.output(i), self.next, &mut buf, self.next);
                self.out_grads[j] = Some(buf);
            }
            Op::RecvBwd(j) => {
                let mut buf = vec![0.0; n];
                comm.recv_f32(&mut buf, self.next);
                self.out_grads[j] = Some(buf);
            }
            Op::SendBwd(j) => {
                let g = self.in_grads[j].take().expect("backward before its send");
                comm.send_f32(&g, self.prev);
            }
            Op::SendBwdRecvFwd(j, i) => {
                let g = self.in_grads[j].take().expect("backward before its send");
                let mut buf = vec![0.0; n];
                comm.send_recv_f32(&g, self.prev, &mut buf, self.prev);
                self.received[i] = Some(buf);
            }
        }
        self.wait_s += start.elapsed().as_secs_f64();
    }

    /// Micro-batch `i`'s output activations, to send.
    fn output(&self, i: usize) -> Vec<f32> {
        let (_, out) = self.live[i].as_ref().expect("forward before its send");
        out.to_vec()
    }

    /// The stage's layers on micro-batch `i`: from the token ids on stage 0 (the looked-up
    /// embeddings as a leaf, so that their gradient can be read), else from the received
    /// activations; on the last stage down to the loss, scaled as in gradient accumulation.
    fn forward(&mut self, i: usize) {
        let model = self.model;
        let (b, t, c) = (self.b, self.t, model.config.n_embd);
        let (ids, targets) = &self.batches[i];
        let (input, x) = if self.first {
            let tok = no_grad(|| model.wte.embedding(ids, &[b, t])).requires_grad_();
            let x = (&tok + &model.wpe.narrow(0, 0, t)).reshape(&[b * t, c]);
            (tok, x)
        } else {
            let got = self.received[i]
                .take()
                .expect("activations before the forward");
            let x = Tensor::from_vec(got, &[b * t, c]).to(model.wte.device());
            let x = x.to_dtype(model.wte.dtype()).requires_grad_();
            (x.clone(), x)
        };
        let mut out = model.run_blocks(x, self.blocks.clone(), b, t);
        if self.last {
            let loss = model.final_norm(&out).classifier_loss(&model.wte, targets);
            self.loss_sum += loss.item() as f64;
            out = match self.scale {
                1 => loss,
                s => loss.mul_scalar(1.0 / s as f64),
            };
        }
        self.live[i] = Some((input, out));
    }

    /// Backward of micro-batch `j` from its output's gradient (the loss on the last stage).
    fn backward(&mut self, j: usize) {
        let (input, out) = self.live[j].take().expect("forward before backward");
        if self.last {
            out.backward();
            let wte = &self.model.wte;
            self.head_grads
                .push(wte.grad().expect("the head reaches wte"));
            wte.zero_grad();
        } else {
            let g = self.out_grads[j]
                .take()
                .expect("output gradient before backward");
            out.backward_with(&on_device(g, out.shape(), &out));
        }
        let g = input.grad().expect("the input reaches the output").to_vec();
        match self.first {
            true => self.embed_grads.extend(g),
            false => self.in_grads[j] = Some(g),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_split_evenly_and_in_order() {
        let split = |p, l| (0..p).map(|s| blocks(p, s, l)).collect::<Vec<_>>();
        assert_eq!(split(2, 3), [0..1, 1..3]);
        assert_eq!(split(3, 12), [0..4, 4..8, 8..12]);
        assert_eq!(split(4, 6), [0..1, 1..3, 3..4, 4..6]);
    }

    #[test]
    fn impossible_layouts_are_refused_in_one_line() {
        let l = |pp, tp, zero| Layout {
            pp,
            tp,
            zero,
            ..Layout::default()
        };
        let err = |l: Layout, n| check(&l, n).unwrap_err().to_string();
        assert!(err(l(3, 1, 0), 2).contains("--pp 3 needs at least 3 blocks"));
        assert!(err(l(2, 2, 0), 4).contains("not implemented yet"));
        assert!(err(l(2, 1, 1), 4).contains("not implemented yet"));
        assert!(check(&l(4, 1, 0), 4).is_ok());
    }
}
