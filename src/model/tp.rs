//! Megatron-LM's split of GPT-2 over `tp` ranks: which slice of each weight a rank keeps.
//!
//! ```text
//!   attn.c_attn  [C, 3C]  column parallel: the q, k and v columns of the rank's n_head/tp heads
//!   attn.c_proj  [C, C]   row parallel:    the rows that read those heads' outputs
//!   mlp.c_fc     [C, 4C]  column parallel: 4C/tp of the hidden units (with their biases)
//!   mlp.c_proj   [4C, C]  row parallel:    the rows that read those units
//!   everything else       replicated: embeddings, LayerNorms, the row-parallel biases
//! ```
//!
//! A column-parallel layer followed by a row-parallel one needs no communication in between:
//! each rank's heads (or hidden units) are complete, and GELU and attention work on them alone.
//! Only the sum after the row-parallel layer crosses ranks (Megatron's *g*), and its mirror in
//! backward (*f*): two all-reduces per block forward, two backward (see
//! [`crate::tensor::parallel`]).
//!
//! A run starts from the whole model, built from the seed exactly as on one rank, and each rank
//! keeps its slices ([`Gpt::shard`]); checkpoints gather the slices back ([`unslice`]) into the
//! same Hugging Face directory a single rank writes.

use super::gpt::Gpt;
use crate::tensor::Tensor;
use crate::tensor::parallel::Group;

/// How a parameter is split over the tensor parallel ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Every rank holds all of it.
    Replicated,
    /// The last axis is `blocks` equal blocks (q | k | v for attention, one for the MLP); a rank
    /// keeps the `rank`-th `1/tp` of each block.
    Columns { blocks: usize },
    /// A rank keeps the `rank`-th `1/tp` of the rows (the first axis).
    Rows,
}

/// The split of the GPT-2 parameter `name` (a checkpoint name such as `h.0.mlp.c_fc.weight`).
pub fn split_of(name: &str) -> Split {
    let is = |layer: &str| {
        name.ends_with(&format!("{layer}.weight")) || name.ends_with(&format!("{layer}.bias"))
    };
    if is("attn.c_attn") {
        Split::Columns { blocks: 3 }
    } else if is("mlp.c_fc") {
        Split::Columns { blocks: 1 }
    } else if name.ends_with("c_proj.weight") {
        Split::Rows
    } else {
        Split::Replicated
    }
}

/// For a row of `n` values split `blocks` × `tp` ways: `(start in the full row, start in the
/// rank's row, length)` of each piece rank `rank` keeps.
fn pieces(n: usize, blocks: usize, tp: usize, rank: usize) -> impl Iterator<Item = [usize; 3]> {
    let piece = n / blocks / tp;
    (0..blocks).map(move |b| [b * (n / blocks) + rank * piece, b * piece, piece])
}

/// Rank `rank`'s slice of a whole parameter of shape `shape` (values `data`, row-major): its
/// shape and values.
pub fn slice(
    split: Split,
    shape: &[usize],
    data: &[f32],
    tp: usize,
    rank: usize,
) -> (Vec<usize>, Vec<f32>) {
    let mut local = shape.to_vec();
    match split {
        Split::Replicated => (local, data.to_vec()),
        Split::Rows => {
            let per = data.len() / tp;
            local[0] /= tp;
            (local, data[rank * per..(rank + 1) * per].to_vec())
        }
        Split::Columns { blocks } => {
            let n = *shape.last().expect("a column split needs an axis");
            let mut out = Vec::with_capacity(data.len() / tp);
            for row in data.chunks(n) {
                for [from, _, len] in pieces(n, blocks, tp, rank) {
                    out.extend_from_slice(&row[from..from + len]);
                }
            }
            *local.last_mut().unwrap() /= tp;
            (local, out)
        }
    }
}

/// The whole parameter of shape `shape` from `gathered`, every rank's slice one after another in
/// rank order (what an all-gather of the slices gives). The inverse of [`slice`].
pub fn unslice(split: Split, shape: &[usize], gathered: &[f32], tp: usize) -> Vec<f32> {
    let per = gathered.len() / tp;
    match split {
        Split::Replicated => gathered[..per].to_vec(),
        Split::Rows => gathered.to_vec(),
        Split::Columns { blocks } => {
            let n = *shape.last().expect("a column split needs an axis");
            let mut full = vec![0.0; gathered.len()];
            for (rank, mine) in gathered.chunks(per).enumerate() {
                for (full_row, row) in full.chunks_mut(n).zip(mine.chunks(n / tp)) {
                    for [from, at, len] in pieces(n, blocks, tp, rank) {
                        full_row[from..from + len].copy_from_slice(&row[at..at + len]);
                    }
                }
            }
            full
        }
    }
}

impl Gpt {
    /// This rank's share of the whole model `self` (on the CPU, in f32) for tensor parallel
    /// over `group`: its slices of the split weights, copies of the rest, as fresh leaves.
    pub fn shard(&self, group: Group) -> Gpt {
        let (tp, rank) = (group.size(), group.rank());
        let tensors = self.params().into_iter().map(|(name, p)| {
            let (shape, data) = slice(split_of(&name), p.shape(), &p.to_vec(), tp, rank);
            Tensor::from_vec(data, &shape).requires_grad_()
        });
        let tensors: Vec<Tensor> = tensors.collect();
        let mut model = Gpt::from_tensors(self.config, tensors, self.attention);
        model.tp = Some(group);
        model
    }
}
