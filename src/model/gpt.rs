//! GPT-2, top to bottom, in the order the data flows through it.
//!
//! ```text
//! ids [B,T] ─► wte[ids] + wpe[0..T] ─► x [B·T, C]
//!   n_layer × block:  x = x + attn(ln_1(x))      causal multi-head self-attention
//!                     x = x + mlp(ln_2(x))       C → 4C → GELU → C
//! ln_f(x) ─► x · wteᵀ ─► logits [B·T, V]          the head shares the token embedding
//! ```
//! Every step is a tensor op that records itself on the autograd tape, so `loss.backward()` is the
//! whole backward pass. The same graph runs on the CPU or a GPU: [`Gpt::to`] moves the parameters
//! (and picks their dtype, bf16 for mixed precision), and every op follows its inputs. Weights
//! use GPT-2's layouts (linear weights `[in, out]`), so checkpoints map one to one onto Hugging
//! Face's `GPT2LMHeadModel`.

use super::checkpoint::{NamedTensor, gpt2_param_shapes};
use super::config::{GptConfig, INIT_STD, LAYER_NORM_EPS};
use crate::tensor::parallel::Group;
use crate::tensor::{DType, Device, Rng, Tensor};

/// How attention is computed: the fused op (fast, the default) or composed from basic ops
/// (`softmax(mask(QKᵀ/√d))·V`, kept to verify the fused one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attention {
    Fused,
    Composed,
}

/// One transformer block's parameters.
pub struct Block {
    pub ln_1_w: Tensor,
    pub ln_1_b: Tensor,
    /// `[C, 3C]`: the query, key and value projections side by side.
    pub attn_w: Tensor,
    pub attn_b: Tensor,
    /// `[C, C]`: mixes the heads' outputs back into the residual stream.
    pub attn_proj_w: Tensor,
    pub attn_proj_b: Tensor,
    pub ln_2_w: Tensor,
    pub ln_2_b: Tensor,
    /// `[C, 4C]`
    pub fc_w: Tensor,
    pub fc_b: Tensor,
    /// `[4C, C]`
    pub mlp_proj_w: Tensor,
    pub mlp_proj_b: Tensor,
}

/// The model: its configuration and its parameters.
pub struct Gpt {
    pub config: GptConfig,
    /// `[V, C]` token embedding, also the LM head.
    pub wte: Tensor,
    /// `[block_size, C]` learned position embedding.
    pub wpe: Tensor,
    pub blocks: Vec<Block>,
    pub ln_f_w: Tensor,
    pub ln_f_b: Tensor,
    pub attention: Attention,
    /// Set when the blocks hold one rank's slices of a tensor parallel group (see
    /// [`super::tp`]); `None` for the whole model.
    pub tp: Option<Group>,
}

impl Gpt {
    /// A fresh model with GPT-2's initialisation: weights normal(0, 0.02), the two residual
    /// projections per block scaled by 1/√(2·n_layer) (the residual stream sums 2·n_layer of
    /// them), biases zero, LayerNorm gains one. Parameters require grad.
    pub fn new(config: GptConfig, seed: u64) -> Gpt {
        let mut rng = Rng::new(seed);
        let resid_std = INIT_STD / (2.0 * config.n_layer as f32).sqrt();
        let named = gpt2_param_shapes(&config)
            .into_iter()
            .map(|(name, shape)| {
                let n: usize = shape.iter().product();
                let data = if name.ends_with(".bias") {
                    vec![0.0; n]
                } else if name.contains("ln_") {
                    vec![1.0; n]
                } else {
                    let std = if name.ends_with("c_proj.weight") {
                        resid_std
                    } else {
                        INIT_STD
                    };
                    Tensor::randn(&shape, 0.0, std, &mut rng).to_vec()
                };
                NamedTensor { name, shape, data }
            })
            .collect();
        Gpt::from_named(config, named)
    }

    /// Build from tensors in [`gpt2_param_shapes`] order (e.g. from a checkpoint).
    pub fn from_named(config: GptConfig, named: Vec<NamedTensor>) -> Gpt {
        let expected = gpt2_param_shapes(&config);
        assert_eq!(named.len(), expected.len(), "Gpt::from_named: tensor count");
        let tensors = named.into_iter().zip(expected).map(|(t, (name, shape))| {
            assert!(
                t.name == name && t.shape == shape,
                "Gpt::from_named: got {} {:?}, expected {name} {shape:?}",
                t.name,
                t.shape
            );
            Tensor::from_vec(t.data, &t.shape).requires_grad_()
        });
        Gpt::from_tensors(config, tensors, Attention::Fused)
    }

    /// The model whose parameters are `tensors`, in [`gpt2_param_shapes`] order.
    pub(super) fn from_tensors(
        config: GptConfig,
        tensors: impl IntoIterator<Item = Tensor>,
        attention: Attention,
    ) -> Gpt {
        let mut it = tensors.into_iter();
        let mut next = || it.next().expect("one tensor per parameter");
        let (wte, wpe) = (next(), next());
        let blocks = (0..config.n_layer)
            .map(|_| Block {
                ln_1_w: next(),
                ln_1_b: next(),
                attn_w: next(),
                attn_b: next(),
                attn_proj_w: next(),
                attn_proj_b: next(),
                ln_2_w: next(),
                ln_2_b: next(),
                fc_w: next(),
                fc_b: next(),
                mlp_proj_w: next(),
                mlp_proj_b: next(),
            })
            .collect();
        let (ln_f_w, ln_f_b) = (next(), next());
        Gpt {
            config,
            wte,
            wpe,
            blocks,
            ln_f_w,
            ln_f_b,
            attention,
            tp: None,
        }
    }

    /// Every parameter with its GPT-2 name, in checkpoint order.
    pub fn params(&self) -> Vec<(String, &Tensor)> {
        let mut out: Vec<&Tensor> = vec![&self.wte, &self.wpe];
        for b in &self.blocks {
            out.extend([
                &b.ln_1_w,
                &b.ln_1_b,
                &b.attn_w,
                &b.attn_b,
                &b.attn_proj_w,
                &b.attn_proj_b,
                &b.ln_2_w,
                &b.ln_2_b,
                &b.fc_w,
                &b.fc_b,
                &b.mlp_proj_w,
                &b.mlp_proj_b,
            ]);
        }
        out.extend([&self.ln_f_w, &self.ln_f_b]);
        gpt2_param_shapes(&self.config)
            .into_iter()
            .map(|(name, _)| name)
            .zip(out)
            .collect()
    }

    /// The parameters as plain data, for checkpoints.
    pub fn to_named(&self) -> Vec<NamedTensor> {
        self.params()
            .into_iter()
            .map(|(name, t)| NamedTensor {
                name,
                shape: t.shape().to_vec(),
                data: t.to_vec(),
            })
            .collect()
    }

    /// The same model with every parameter on `device` in `dtype`: fresh leaves that require
    /// grad, holding copies of the values (rounded for bf16). Like `Tensor::to`, a parameter
    /// already on `device` in `dtype` is not copied: the two models then share it.
    pub fn to(&self, device: Device, dtype: DType) -> Gpt {
        let moved = self
            .params()
            .into_iter()
            .map(|(_, p)| p.detach().to(device).to_dtype(dtype).requires_grad_());
        let moved: Vec<Tensor> = moved.collect();
        let mut model = Gpt::from_tensors(self.config, moved, self.attention);
        model.tp = self.tp.clone();
        model
    }

    /// Where the parameters live, and their dtype.
    pub fn placement(&self) -> (Device, DType) {
        (self.wte.device(), self.wte.dtype())
    }

    /// The final hidden states `[B·T, C]` (after `ln_f`) for token ids `ids` (`B·T` of them,
    /// row-major `[B, T]`).
    fn hidden(&self, ids: &[u32], b: usize, t: usize) -> Tensor {
        assert!(
            t <= self.config.block_size && ids.len() == b * t,
            "Gpt::forward: {} ids for B={b}, T={t} (block_size {})",
            ids.len(),
            self.config.block_size
        );
        let x = self.embed(ids, &[b, t], 0);
        self.final_norm(&self.run_blocks(x, 0..self.config.n_layer, b, t))
    }

    /// The blocks `range` in turn on the rows `x` (`[B·T, C]`), with training attention: the
    /// whole stack, or one pipeline stage's share of it.
    pub fn run_blocks(
        &self,
        mut x: Tensor,
        range: std::ops::Range<usize>,
        b: usize,
        t: usize,
    ) -> Tensor {
        for block in &self.blocks[range] {
            x = self.block(block, &x, |qkv| self.attend(qkv, b, t));
        }
        x
    }

    /// `wte[ids] + wpe[start..start + T]` as `[N, C]` rows, for ids of shape `[.., T]` at
    /// positions `start..start + T`.
    pub fn embed(&self, ids: &[u32], shape: &[usize], start: usize) -> Tensor {
        let t = *shape.last().expect("embed: ids need a shape");
        let tok = self.wte.embedding(ids, shape);
        let pos = self.wpe.narrow(0, start, t);
        (&tok + &pos).reshape(&[ids.len(), self.config.n_embd])
    }

    /// One transformer block on the rows `x` (`[N, C]`): `x + attn(ln_1(x))`, then
    /// `x + mlp(ln_2(x))`. `attend` maps the query-key-value projection (`[N, 3C]`) to the
    /// attention's output (`[N, C]`): the fused op in training, a KV cache when sampling.
    ///
    /// Tensor parallel, each rank runs this with its slices: `column` (Megatron's *f*, then
    /// the rank's heads or MLP columns) and `row` (its rows of the projection, Megatron's *g*
    /// summing the ranks' partial outputs, then the bias once).
    pub fn block(
        &self,
        block: &Block,
        x: &Tensor,
        attend: impl FnOnce(&Tensor) -> Tensor,
    ) -> Tensor {
        let eps = LAYER_NORM_EPS as f64;
        let h = x.layer_norm(&block.ln_1_w, &block.ln_1_b, eps);
        let y = attend(&self.column(&h, &block.attn_w, &block.attn_b));
        let x = x + &self.row(&y, &block.attn_proj_w, &block.attn_proj_b);
        let h = x.layer_norm(&block.ln_2_w, &block.ln_2_b, eps);
        let h = self.column(&h, &block.fc_w, &block.fc_b).gelu();
        &x + &self.row(&h, &block.mlp_proj_w, &block.mlp_proj_b)
    }

    /// `x·w + b` for a column-parallel weight: `x` enters through *f* when tensor parallel.
    fn column(&self, x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
        match &self.tp {
            None => x.linear(w, Some(b)),
            Some(group) => x.tp_copy(group).linear(w, Some(b)),
        }
    }

    /// `x·w + b` for a row-parallel weight: the ranks' partial products summed by *g* when
    /// tensor parallel, and the (replicated) bias added once, after the sum.
    fn row(&self, x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
        match &self.tp {
            None => x.linear(w, Some(b)),
            Some(group) => &x.linear(w, None).tp_reduce(group) + b,
        }
    }

    /// The embedding width and the heads of this rank's share of each attention layer: all
    /// of them, or `1/tp` of each when tensor parallel.
    fn local_heads(&self) -> (usize, usize) {
        let tp = self.tp.as_ref().map_or(1, Group::size);
        (self.config.n_embd / tp, self.config.n_head / tp)
    }

    /// The last LayerNorm, `ln_f`.
    pub fn final_norm(&self, x: &Tensor) -> Tensor {
        x.layer_norm(&self.ln_f_w, &self.ln_f_b, LAYER_NORM_EPS as f64)
    }

    /// Logits `[B·T, V]` for token ids `ids` (`B·T` of them, row-major `[B, T]`).
    pub fn forward(&self, ids: &[u32], b: usize, t: usize) -> Tensor {
        self.hidden(ids, b, t).matmul(&self.wte.t())
    }

    /// Causal self-attention on the query-key-value rows `qkv` (`[B·T, 3C]`): `[B·T, C]`.
    fn attend(&self, qkv: &Tensor, b: usize, t: usize) -> Tensor {
        let (c, nh) = self.local_heads();
        let qkv = qkv.reshape(&[b, t, 3 * c]);
        let y = match self.attention {
            Attention::Fused => qkv.causal_self_attention(nh),
            Attention::Composed => composed_attention(&qkv, nh),
        };
        y.reshape(&[b * t, c])
    }

    /// Mean next-token cross-entropy of `targets` given `ids`: the LM head and the loss as one
    /// fused op (the `[B·T, V]` logits never enter the graph).
    pub fn loss(&self, ids: &[u32], targets: &[u32], b: usize, t: usize) -> Tensor {
        self.hidden(ids, b, t).classifier_loss(&self.wte, targets)
    }
}

/// Attention composed from basic ops, `softmax(mask(QKᵀ/√d))·V` per head, kept to verify the
/// fused op: `qkv` `[B, T, 3C]` in, `[B, T, C]` out.
fn composed_attention(qkv: &Tensor, nh: usize) -> Tensor {
    let (b, t, c) = (qkv.shape()[0], qkv.shape()[1], qkv.shape()[2] / 3);
    let hd = c / nh;
    // [B, T, 3, H, D] → [3, B, H, T, D]: q, k and v with heads split out.
    let parts = qkv
        .reshape(&[b, t, 3, nh, hd])
        .permute(&[2, 0, 3, 1, 4])
        .contiguous()
        .chunk(3, 0);
    let split = |p: &Tensor| p.reshape(&[b * nh, t, hd]);
    let (q, k, v) = (split(&parts[0]), split(&parts[1]), split(&parts[2]));
    let att = q
        .matmul(&k.t())
        .mul_scalar(1.0 / (hd as f64).sqrt())
        .causal_mask(f64::NEG_INFINITY)
        .softmax();
    // [B·H, T, D] → [B, T, H, D] → [B, T, C]
    att.matmul(&v)
        .reshape(&[b, nh, t, hd])
        .permute(&[0, 2, 1, 3])
        .reshape(&[b, t, c])
}
