//! Tensor parallel training (`--tp N`, Megatron-LM): the `N` ranks of a group each hold a slice
//! of every block's weights ([`crate::model::tp`]) and run every micro-batch together, meeting
//! in two all-reduces per block forward and two backward ([`crate::tensor::parallel`]).
//!
//! Here are the parts that need the communicator, which the model does not see:
//! - the groups: the `tp` neighbours that share a layer, and the data parallel group of the
//!   ranks that hold the same slices (their gradients are summed there, as in data parallel);
//! - the start: every rank builds (or loads) the whole model and keeps its slices, so a run on
//!   `N` ranks starts from exactly the weights of one rank, and resumes from any checkpoint;
//! - the gradient norm for clipping: the squares of the sliced gradients summed over the group,
//!   the replicated ones (the same on every rank) counted once;
//! - checkpoints and samples: the slices, and their AdamW moments, gathered into the whole
//!   model, saved as the same Hugging Face directory one rank writes.

use super::{Comm, Layout};
use crate::model::checkpoint::{NamedTensor, gpt2_param_shapes};
use crate::model::config::GptConfig;
use crate::model::gpt::Gpt;
use crate::model::tp::{Split, slice, split_of, unslice};
use crate::tensor::parallel::{Group, GroupSum};
use crate::tensor::{Tensor, backend};
use crate::train::optim::{AdamW, ParamState};
use crate::train::run_dir::SavedMoments;
use anyhow::{Result, bail};
use std::cell::Cell;
use std::rc::Rc;

/// Refuses a model that `tp` ranks cannot split: each rank takes whole attention heads and an
/// equal share of the MLP's `4C` hidden units.
pub fn check_model(c: &GptConfig, tp: usize) -> Result<()> {
    if tp > 1 && !c.n_head.is_multiple_of(tp) {
        bail!(
            "--tp {tp} must divide the {} attention heads (--n-head): each rank takes whole heads",
            c.n_head
        );
    }
    if tp > 1 && !(4 * c.n_embd).is_multiple_of(tp) {
        bail!(
            "--tp {tp} must divide the MLP's 4 × {} hidden units (--n-embd)",
            c.n_embd
        );
    }
    Ok(())
}

/// A communicator as the "sum over the group" that the f and g ops call.
struct CommSum(Rc<dyn Comm>);

impl GroupSum for CommSum {
    fn rank(&self) -> usize {
        self.0.rank()
    }
    fn size(&self) -> usize {
        self.0.world_size()
    }
    fn sum_f32(&self, buf: &mut [f32]) {
        self.0.all_reduce_sum_f32(buf)
    }
}

/// This rank's tensor parallel group and data parallel group.
pub struct TensorParallel {
    /// The f and g ops' handle on the tensor parallel group.
    pub group: Group,
    tp: Rc<dyn Comm>,
    dp: Box<dyn Comm>,
    /// Bytes all-reduced (forward, backward) when the current step began, and by the last step.
    mark: Cell<(usize, usize)>,
    last_step: Cell<(usize, usize)>,
}

impl TensorParallel {
    /// Splits `comm` into the groups of `layout` (a collective: every rank calls it). Ranks
    /// `k·tp .. (k+1)·tp` form a tensor parallel group; ranks with the same pipeline stage and
    /// tensor parallel coordinate form a data parallel group.
    pub fn new(comm: &dyn Comm, layout: &Layout) -> TensorParallel {
        let rank = comm.rank();
        let tp: Rc<dyn Comm> = Rc::from(comm.split(rank / layout.tp));
        let dp = comm.split(rank % (layout.tp * layout.pp));
        TensorParallel {
            group: Group::register(Box::new(CommSum(Rc::clone(&tp)))),
            tp,
            dp,
            mark: Cell::default(),
            last_step: Cell::default(),
        }
    }

    /// The ranks that hold the same slices: gradients are summed over them.
    pub fn dp(&self) -> &dyn Comm {
        self.dp.as_ref()
    }

    /// This rank's slices of the whole model `model` (CPU, f32) and of its saved AdamW moments.
    pub fn shard(
        &self,
        model: Gpt,
        saved: Option<(SavedMoments, usize)>,
    ) -> (Gpt, Option<(SavedMoments, usize)>) {
        let (tp, rank) = (self.group.size(), self.group.rank());
        let splits: Vec<(Split, Vec<usize>)> = model
            .params()
            .into_iter()
            .map(|(name, p)| (split_of(&name), p.shape().to_vec()))
            .collect();
        let cut = |all: Vec<Vec<f32>>| -> Vec<Vec<f32>> {
            all.into_iter()
                .zip(&splits)
                .map(|(v, (split, shape))| slice(*split, shape, &v, tp, rank).1)
                .collect()
        };
        let saved = saved.map(|(m, step)| {
            let (m, v) = (cut(m.m), cut(m.v));
            (SavedMoments { m, v }, step)
        });
        (model.shard(self.group.clone()), saved)
    }

    /// The global gradient norm: `√(Σ_group Σ sliced g² + Σ replicated g²)`.
    pub fn grad_norm(&self, model: &Gpt) -> f32 {
        // [sliced, replicated]
        let mut sums = [0.0f64; 2];
        for (name, p) in model.params() {
            if let Some(g) = p.grad() {
                let i = (split_of(&name) == Split::Replicated) as usize;
                sums[i] += backend::sum_squares(&g).item_f64();
            }
        }
        self.tp.all_reduce_sum_f64(&mut sums[..1]);
        (sums[0] + sums[1]).sqrt() as f32
    }

    /// The whole parameter of shape `shape` from every rank's `local` slice (a collective).
    fn gather(&self, split: Split, shape: &[usize], local: Vec<f32>) -> Vec<f32> {
        if split == Split::Replicated {
            return local;
        }
        let mut all = vec![0.0; local.len() * self.group.size()];
        self.tp.all_gather_f32(&local, &mut all);
        unslice(split, shape, &all, self.group.size())
    }

    /// The whole model's weights in f32 (the optimizer's master copies where it keeps them),
    /// gathered on every rank of the group (a collective).
    pub fn gather_weights(&self, model: &Gpt, opt: &AdamW) -> Vec<NamedTensor> {
        let shapes = gpt2_param_shapes(&model.config);
        let params = model.params().into_iter().zip(shapes).enumerate();
        params
            .map(|(i, ((name, p), (_, shape)))| NamedTensor {
                data: self.gather(split_of(&name), &shape, opt.full_precision(i, p)),
                name,
                shape,
            })
            .collect()
    }

    /// The optimizer of the whole model (its moments gathered, on the CPU), for a checkpoint.
    pub fn gather_optimizer(&self, model: &Gpt, opt: &AdamW) -> AdamW {
        let shapes = gpt2_param_shapes(&model.config);
        let params = model.params().into_iter().zip(shapes).zip(&opt.state);
        let state: Vec<ParamState> = params
            .map(|(((name, _), (_, shape)), s)| {
                let whole = |t: &Tensor| {
                    let data = self.gather(split_of(&name), &shape, t.to_vec());
                    Tensor::from_vec(data, &shape)
                };
                ParamState {
                    m: whole(&s.m),
                    v: whole(&s.v),
                    master: None,
                }
            })
            .collect();
        AdamW {
            cfg: opt.cfg,
            step: opt.step,
            owned: 0..state.len(),
            state,
        }
    }

    /// Call as a step begins; [`TensorParallel::step_done`] as its backward passes end.
    pub fn step_begins(&self) {
        self.mark.set(self.group.bytes_reduced());
    }

    pub fn step_done(&self) {
        let ((f0, b0), (f1, b1)) = (self.mark.get(), self.group.bytes_reduced());
        self.last_step.set((f1 - f0, b1 - b0));
    }

    /// What the last step all-reduced, against Megatron's count: per block and micro-batch, two
    /// all-reduces of `B·T·C` floats forward (after each row-parallel layer) and two backward
    /// (before each column-parallel one).
    pub fn traffic(&self, c: &GptConfig, micro_batches: usize, b: usize, t: usize) -> String {
        let (fwd, bwd) = self.last_step.get();
        let per_layer = (fwd + bwd) / c.n_layer.max(1);
        let formula = 4 * b * t * c.n_embd * 4 * micro_batches;
        format!(
            "tensor parallel: the last step all-reduced {fwd} bytes forward and {bwd} backward, \
             {per_layer} per layer; 4 all-reduces × B·T·C × 4 bytes × {micro_batches} \
             micro-batch(es) = {formula}"
        )
    }
}
