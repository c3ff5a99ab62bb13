//! GPT-2 training on the GPU, llm.c style: an explicit forward and backward pass over buffers
//! allocated once, with no autograd tape.
//!
//! The CPU model (`crate::model::gpt`) records every op on a tape and lets `backward()` replay it.
//! Here the backward pass is written out by hand, layer by layer in reverse, because on a GPU the
//! point is to control every byte: each activation the backward needs is kept in a buffer sized
//! for `(B, T)` up front, and each gradient is accumulated in place.
//!
//! Memory, all flat (see [`ParamTable`] for the parameter layout):
//! - `master` fp32 weights (what AdamW updates), `params` the same in `floatX` (what the kernels
//!   read; `adamw_update` writes both), `grads` in `floatX`, AdamW's `m` and `v` in fp32;
//! - activations per layer, kept for the backward pass, and a few gradient buffers reused by
//!   every layer (the backward needs one layer's worth at a time).
//!
//! Forward, per layer (`x` is the residual stream, `[N, C]` with `N = B·T`):
//! ```text
//! ln1 = layernorm(x)            qkv = ln1·W_qkv + b          atty = attention(qkv)
//! res2 = x + (atty·W_proj + b)  ln2 = layernorm(res2)        fch = ln2·W_fc + b
//! fch_gelu = gelu(fch)          res3 = res2 + (fch_gelu·W_fcproj + b)   (the next layer's x)
//! ```
//! then `lnf = layernorm(x)`, `logits = lnf·wteᵀ` (`[N, Vp]`), and the fused classifier turns
//! the logits into per-row losses and overwrites them with `dlogits` in the same pass.
//! A linear layer `out = inp·W (+ b)` with `W` stored `[in, out]` goes backward as
//! `dinp = dout·Wᵀ`, `dW += inpᵀ·dout`, `db += Σ_rows dout`.

use super::exec::{Exec, Mem, best_matmul, encoder_scratch_len};
use super::params::ParamTable;
use super::{DevPtr, Gpu, GpuFloat};
use crate::model::config::GptConfig;
use crate::model::gpt::Gpt;
use crate::train::optim::{AdamW, AdamWConfig, clip_factor};
use anyhow::{Result, bail, ensure};
use std::sync::Arc;

pub use super::exec::{AdamwArgs, MatmulVersion};

/// Views of one layer's twelve tensors in a flat buffer (parameters or gradients).
#[derive(Clone, Copy, Debug)]
struct LayerViews<T> {
    ln1_w: DevPtr<T>,
    ln1_b: DevPtr<T>,
    qkv_w: DevPtr<T>,
    qkv_b: DevPtr<T>,
    proj_w: DevPtr<T>,
    proj_b: DevPtr<T>,
    ln2_w: DevPtr<T>,
    ln2_b: DevPtr<T>,
    fc_w: DevPtr<T>,
    fc_b: DevPtr<T>,
    fcproj_w: DevPtr<T>,
    fcproj_b: DevPtr<T>,
}

/// Views of every tensor of the model in a flat buffer laid out by a [`ParamTable`].
#[derive(Clone, Debug)]
struct Views<T> {
    /// `[Vp, C]`, padding rows included.
    wte: DevPtr<T>,
    wpe: DevPtr<T>,
    layers: Vec<LayerViews<T>>,
    lnf_w: DevPtr<T>,
    lnf_b: DevPtr<T>,
}

impl<T> Views<T> {
    fn new(table: &ParamTable, base: DevPtr<T>) -> Views<T> {
        assert_eq!(base.len, table.total, "Views: buffer length");
        let mut slots = table.slots.iter();
        let mut next = |suffix: &str| {
            let s = slots.next().expect("ParamTable: too few tensors");
            assert!(s.name.ends_with(suffix), "{} is not {suffix}", s.name);
            base.slice(s.offset, s.len)
        };
        let wte = next("wte.weight");
        let wpe = next("wpe.weight");
        let n_layer = (table.slots.len() - 4) / 12;
        let layers = (0..n_layer)
            .map(|_| LayerViews {
                ln1_w: next("ln_1.weight"),
                ln1_b: next("ln_1.bias"),
                qkv_w: next("attn.c_attn.weight"),
                qkv_b: next("attn.c_attn.bias"),
                proj_w: next("attn.c_proj.weight"),
                proj_b: next("attn.c_proj.bias"),
                ln2_w: next("ln_2.weight"),
                ln2_b: next("ln_2.bias"),
                fc_w: next("mlp.c_fc.weight"),
                fc_b: next("mlp.c_fc.bias"),
                fcproj_w: next("mlp.c_proj.weight"),
                fcproj_b: next("mlp.c_proj.bias"),
            })
            .collect();
        let lnf_w = next("ln_f.weight");
        let lnf_b = next("ln_f.bias");
        Views {
            wte,
            wpe,
            layers,
            lnf_w,
            lnf_b,
        }
    }
}

/// The sizes that decide every activation buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub b: usize,
    pub t: usize,
    pub c: usize,
    pub nh: usize,
    pub hs: usize,
    pub l: usize,
    pub v: usize,
    pub vp: usize,
}

impl Dims {
    pub fn new(config: &GptConfig, b: usize, t: usize) -> Dims {
        Dims {
            b,
            t,
            c: config.n_embd,
            nh: config.n_head,
            hs: config.n_embd / config.n_head,
            l: config.n_layer,
            v: config.vocab_size,
            vp: super::params::padded_vocab(config.vocab_size),
        }
    }

    /// Rows of every activation: `B·T`.
    pub fn n(&self) -> usize {
        self.b * self.t
    }

    /// `(name, floatX elements, fp32 elements)` of every activation and gradient buffer, as
    /// allocated by [`GpuGpt::new`] (the kernels' scratch buffers not included).
    pub fn buffers(&self) -> Vec<(&'static str, usize, usize)> {
        let (n, c, l) = (self.n(), self.c, self.l);
        let rows = self.b * self.nh * self.t;
        vec![
            ("encoded", n * c, 0),
            ("ln1", l * n * c, 2 * l * n),
            ("qkv", l * n * 3 * c, 0),
            ("atty", l * n * c, l * rows),
            ("res2", l * n * c, 0),
            ("ln2", l * n * c, 2 * l * n),
            ("fch", l * n * 4 * c, 0),
            ("fch_gelu", l * n * 4 * c, 0),
            ("res3", l * n * c, 0),
            ("lnf", n * c, 2 * n),
            ("logits", n * self.vp, n),
            ("scratch", n * c, 0),
            ("dresidual", n * c, 0),
            ("dbuf", n * c, 0),
            ("dqkv", n * 3 * c, 0),
            ("dfch_gelu", n * 4 * c, 0),
            ("dfch", n * 4 * c, 0),
        ]
    }

    /// Bytes of activations and activation gradients with `floatX` of `x_bytes` bytes.
    pub fn activation_bytes(&self, x_bytes: usize) -> usize {
        self.buffers()
            .iter()
            .map(|&(_, x, f)| x * x_bytes + f * 4)
            .sum()
    }
}

/// The forward activations kept for the backward pass, and the backward's gradient buffers.
struct Acts<X> {
    tokens: Mem<i32>,
    targets: Mem<i32>,
    encoded: Mem<X>,
    ln1: Mem<X>,
    ln1_mean: Mem<f32>,
    ln1_rstd: Mem<f32>,
    qkv: Mem<X>,
    atty: Mem<X>,
    lse: Mem<f32>,
    res2: Mem<X>,
    ln2: Mem<X>,
    ln2_mean: Mem<f32>,
    ln2_rstd: Mem<f32>,
    fch: Mem<X>,
    fch_gelu: Mem<X>,
    res3: Mem<X>,
    lnf: Mem<X>,
    lnf_mean: Mem<f32>,
    lnf_rstd: Mem<f32>,
    /// `[N, Vp]`: logits, then (after the classifier) dlogits.
    logits: Mem<X>,
    losses: Mem<f32>,
    /// `[N, C]`: the output of the two projections before the residual add.
    scratch: Mem<X>,
    dresidual: Mem<X>,
    dbuf: Mem<X>,
    dqkv: Mem<X>,
    dfch_gelu: Mem<X>,
    dfch: Mem<X>,
    attn_scratch: Mem<f32>,
    /// `[Vp, C]` fp32, zero between calls: `encoder_backward` sums dwte rows here.
    enc_scratch: Mem<f32>,
}

impl<X: GpuFloat> Acts<X> {
    fn new(ex: &Exec, d: &Dims) -> Result<Acts<X>> {
        let (n, c, l) = (d.n(), d.c, d.l);
        let x = |len: usize| ex.zeros::<X>(len);
        let f = |len: usize| ex.zeros::<f32>(len);
        Ok(Acts {
            tokens: ex.zeros(n)?,
            targets: ex.zeros(n)?,
            encoded: x(n * c)?,
            ln1: x(l * n * c)?,
            ln1_mean: f(l * n)?,
            ln1_rstd: f(l * n)?,
            qkv: x(l * n * 3 * c)?,
            atty: x(l * n * c)?,
            lse: f(l * d.b * d.nh * d.t)?,
            res2: x(l * n * c)?,
            ln2: x(l * n * c)?,
            ln2_mean: f(l * n)?,
            ln2_rstd: f(l * n)?,
            fch: x(l * n * 4 * c)?,
            fch_gelu: x(l * n * 4 * c)?,
            res3: x(l * n * c)?,
            lnf: x(n * c)?,
            lnf_mean: f(n)?,
            lnf_rstd: f(n)?,
            logits: x(n * d.vp)?,
            losses: f(n)?,
            scratch: x(n * c)?,
            dresidual: x(n * c)?,
            dbuf: x(n * c)?,
            dqkv: x(n * 3 * c)?,
            dfch_gelu: x(n * 4 * c)?,
            dfch: x(n * 4 * c)?,
            attn_scratch: f(ex.attention_scratch_len(d.b, d.t, d.nh, d.hs))?,
            enc_scratch: f(encoder_scratch_len(d.vp, c))?,
        })
    }
}

/// Layer `l`'s part of a buffer holding `size` elements per layer.
fn layer<T>(buf: &Mem<T>, l: usize, size: usize) -> DevPtr<T> {
    buf.ptr().slice(l * size, size)
}

/// The `dloss` the classifier multiplies every row's gradient by: the CPU trainer's loss is the
/// mean over the `counted` targets of a micro-batch, scaled by `1/grad_accum` before backward,
/// so each counted row gets `1 / (counted · grad_accum)`.
pub fn row_grad_scale(counted: usize, grad_accum: usize) -> f32 {
    assert!(counted > 0 && grad_accum > 0, "row_grad_scale: empty batch");
    (1.0 / (counted as f64 * grad_accum as f64)) as f32
}

/// Token ids as the kernels take them (`int`), each checked below `vocab` (a larger id would
/// make the embedding kernel read outside `wte`).
pub fn ids_for_gpu(ids: &[u32], vocab: usize, what: &str) -> Result<Vec<i32>> {
    ids.iter()
        .map(|&id| {
            if (id as usize) < vocab {
                Ok(id as i32)
            } else {
                bail!("{what}: token id {id} is outside the vocabulary of {vocab}")
            }
        })
        .collect()
}

/// GPT-2 on the GPU, for a fixed micro-batch shape `(B, T)`, with storage type `X`
/// (`f32`: matches the CPU; `half::bf16`: mixed precision).
pub struct GpuGpt<X: GpuFloat> {
    /// Where the kernels run (the GPU; host loops in unit tests).
    pub exec: Exec,
    pub config: GptConfig,
    pub table: ParamTable,
    pub dims: Dims,
    /// The matmul used everywhere (our fastest for `X` unless changed with
    /// [`set_matmul`](Self::set_matmul)).
    pub matmul: MatmulVersion,
    master: Mem<f32>,
    params: Mem<X>,
    grads: Mem<X>,
    m: Mem<f32>,
    v: Mem<f32>,
    norm: Mem<f32>,
    w: Views<X>,
    g: Views<X>,
    acts: Acts<X>,
    /// Set by a forward pass that computed dlogits; cleared by `backward`.
    backward_ready: bool,
}

impl<X: GpuFloat> GpuGpt<X> {
    /// The CPU model's weights on the GPU (zero gradients and moments), with activations for
    /// micro-batches of `batch` sequences of `seq_len` tokens.
    pub fn new(gpu: &Arc<Gpu>, model: &Gpt, batch: usize, seq_len: usize) -> Result<GpuGpt<X>> {
        GpuGpt::with_exec(Exec::Gpu(gpu.clone()), model, batch, seq_len)
    }

    /// [`new`](Self::new) on any executor.
    pub fn with_exec(ex: Exec, model: &Gpt, batch: usize, seq_len: usize) -> Result<GpuGpt<X>> {
        let config = model.config;
        ensure!(
            batch > 0 && seq_len > 0 && seq_len <= config.block_size,
            "GpuGpt: batch {batch}, seq_len {seq_len} (block_size {})",
            config.block_size
        );
        let dims = Dims::new(&config, batch, seq_len);
        // The kernels take shapes as int; the logits are the largest single tensor.
        ensure!(
            dims.n() * dims.vp <= i32::MAX as usize,
            "GpuGpt: B·T·Vp = {} does not fit in an int; use a smaller batch",
            dims.n() * dims.vp
        );
        let table = ParamTable::new(&config);
        let data: Vec<Vec<f32>> = model.params().iter().map(|(_, p)| p.to_vec()).collect();
        let refs: Vec<&[f32]> = data.iter().map(|d| d.as_slice()).collect();
        let mut master = ex.zeros::<f32>(table.total)?;
        ex.upload(&mut master, &table.pack(&refs))?;
        let params = ex.zeros::<X>(table.total)?;
        ex.cast_to_floatx(params.ptr(), master.ptr())?;
        let grads = ex.zeros::<X>(table.total)?;
        let w = Views::new(&table, params.ptr());
        let g = Views::new(&table, grads.ptr());
        Ok(GpuGpt {
            config,
            matmul: best_matmul::<X>(),
            m: ex.zeros(table.total)?,
            v: ex.zeros(table.total)?,
            norm: ex.zeros(1)?,
            acts: Acts::new(&ex, &dims)?,
            exec: ex,
            dims,
            table,
            master,
            params,
            grads,
            w,
            g,
            backward_ready: false,
        })
    }

    /// Use matmul version `v` from now on (e.g. cuBLAS, to compare).
    pub fn set_matmul(&mut self, v: MatmulVersion) {
        self.matmul = v;
    }

    #[allow(clippy::too_many_arguments)]
    fn gemm(
        &self,
        m: usize,
        k: usize,
        n: usize,
        a: DevPtr<X>,
        ta: bool,
        b: DevPtr<X>,
        tb: bool,
        c: DevPtr<X>,
        bias: Option<DevPtr<X>>,
        accumulate: bool,
    ) -> Result<()> {
        self.exec.gemm(
            self.matmul,
            m,
            k,
            n,
            a.slice(0, m * k),
            ta,
            b.slice(0, k * n),
            tb,
            c.slice(0, m * n),
            bias.map(|b| b.slice(0, n)),
            accumulate,
        )
    }

    /// Everything up to the logits `[N, Vp]` in `acts.logits`.
    fn forward_to_logits(&mut self, tokens: &[u32]) -> Result<()> {
        let d = self.dims;
        let (n, c, ex) = (d.n(), d.c, &self.exec);
        ensure!(
            tokens.len() == n,
            "GpuGpt::forward: {} tokens for B={} T={}",
            tokens.len(),
            d.b,
            d.t
        );
        let ids = ids_for_gpu(tokens, d.v, "GpuGpt::forward")?;
        ex.upload(&mut self.acts.tokens, &ids)?;
        let a = &self.acts;
        let nc = n * c;
        ex.encoder_forward(
            a.encoded.ptr(),
            a.tokens.ptr(),
            self.w.wte,
            self.w.wpe,
            d.b,
            d.t,
            c,
        )?;
        for l in 0..d.l {
            let w = &self.w.layers[l];
            let x = if l == 0 {
                a.encoded.ptr()
            } else {
                layer(&a.res3, l - 1, nc)
            };
            let ln1 = layer(&a.ln1, l, nc);
            let qkv = layer(&a.qkv, l, 3 * nc);
            let atty = layer(&a.atty, l, nc);
            let res2 = layer(&a.res2, l, nc);
            let ln2 = layer(&a.ln2, l, nc);
            let fch = layer(&a.fch, l, 4 * nc);
            let fch_gelu = layer(&a.fch_gelu, l, 4 * nc);
            let scratch = a.scratch.ptr();
            ex.layernorm_forward(
                ln1,
                layer(&a.ln1_mean, l, n),
                layer(&a.ln1_rstd, l, n),
                x,
                w.ln1_w,
                w.ln1_b,
                n,
                c,
            )?;
            self.gemm(
                n,
                c,
                3 * c,
                ln1,
                false,
                w.qkv_w,
                false,
                qkv,
                Some(w.qkv_b),
                false,
            )?;
            ex.attention_forward(
                atty,
                layer(&a.lse, l, d.b * d.nh * d.t),
                qkv,
                d.b,
                d.t,
                d.nh,
                d.hs,
            )?;
            self.gemm(
                n,
                c,
                c,
                atty,
                false,
                w.proj_w,
                false,
                scratch,
                Some(w.proj_b),
                false,
            )?;
            ex.residual_forward(res2, x, scratch)?;
            ex.layernorm_forward(
                ln2,
                layer(&a.ln2_mean, l, n),
                layer(&a.ln2_rstd, l, n),
                res2,
                w.ln2_w,
                w.ln2_b,
                n,
                c,
            )?;
            self.gemm(
                n,
                c,
                4 * c,
                ln2,
                false,
                w.fc_w,
                false,
                fch,
                Some(w.fc_b),
                false,
            )?;
            ex.gelu_forward(fch_gelu, fch)?;
            self.gemm(
                n,
                4 * c,
                c,
                fch_gelu,
                false,
                w.fcproj_w,
                false,
                scratch,
                Some(w.fcproj_b),
                false,
            )?;
            ex.residual_forward(layer(&a.res3, l, nc), res2, scratch)?;
        }
        ex.layernorm_forward(
            a.lnf.ptr(),
            a.lnf_mean.ptr(),
            a.lnf_rstd.ptr(),
            layer(&a.res3, d.l - 1, nc),
            self.w.lnf_w,
            self.w.lnf_b,
            n,
            c,
        )?;
        // The tied head: logits = lnf · wteᵀ, wte stored [Vp, C].
        self.gemm(
            n,
            c,
            d.vp,
            a.lnf.ptr(),
            false,
            self.w.wte,
            true,
            a.logits.ptr(),
            None,
            false,
        )
    }

    /// Runs the classifier on the logits with row gradient `dloss`; returns the mean loss.
    fn classify(&mut self, targets: &[u32], dloss: f32) -> Result<f32> {
        let d = self.dims;
        let n = d.n();
        ensure!(
            targets.len() == n,
            "GpuGpt: {} targets for B·T = {n}",
            targets.len()
        );
        let ids = ids_for_gpu(targets, d.v, "GpuGpt targets")?;
        let ex = &self.exec;
        ex.upload(&mut self.acts.targets, &ids)?;
        ex.classifier_forward_backward(
            self.acts.logits.ptr(),
            self.acts.losses.ptr(),
            self.acts.targets.ptr(),
            n,
            d.v,
            d.vp,
            dloss,
        )?;
        let losses = ex.to_host(&self.acts.losses)?;
        let sum: f64 = losses.iter().map(|&x| x as f64).sum();
        Ok((sum / n as f64) as f32)
    }

    /// Forward pass on one micro-batch (`B·T` tokens and their targets, row-major `[B, T]`):
    /// returns the mean loss, and leaves `dlogits` for [`backward`](Self::backward) scaled so
    /// that the gradients are those of `loss_scale · mean loss` (the trainer passes
    /// `1/grad_accum`, as the CPU trainer scales its loss before `backward()`).
    pub fn forward(&mut self, tokens: &[u32], targets: &[u32], loss_scale: f32) -> Result<f32> {
        self.forward_to_logits(tokens)?;
        // Every target counts (the trainer has no ignored positions).
        let dloss = loss_scale / self.dims.n() as f32;
        let loss = self.classify(targets, dloss)?;
        self.backward_ready = true;
        Ok(loss)
    }

    /// The mean loss only (the gradient buffers are not touched).
    pub fn eval_loss(&mut self, tokens: &[u32], targets: &[u32]) -> Result<f32> {
        self.forward_to_logits(tokens)?;
        // dloss 0: the classifier's dlogits are zeros and unused.
        let loss = self.classify(targets, 0.0)?;
        self.backward_ready = false;
        Ok(loss)
    }

    /// The logits `[B·T, V]` (padding columns dropped), copied to the host.
    pub fn logits(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.forward_to_logits(tokens)?;
        self.backward_ready = false;
        let (v, vp) = (self.dims.v, self.dims.vp);
        let all = self.exec.to_host(&self.acts.logits)?;
        Ok(all
            .chunks_exact(vp)
            .flat_map(|row| row[..v].iter().map(|x| x.to_f32()))
            .collect())
    }

    /// Adds the gradients of the last [`forward`](Self::forward) to the gradient buffers.
    pub fn backward(&mut self) -> Result<()> {
        ensure!(
            self.backward_ready,
            "GpuGpt::backward needs a forward with targets first"
        );
        self.backward_ready = false;
        // The kernels below add into dresidual, which starts from zero each pass.
        self.exec.zero(&mut self.acts.dresidual)?;
        let d = self.dims;
        let (n, c, ex) = (d.n(), d.c, &self.exec);
        let nc = n * c;
        let a = &self.acts;
        let (dres, dbuf, dqkv) = (a.dresidual.ptr(), a.dbuf.ptr(), a.dqkv.ptr());
        let (dfch_gelu, dfch) = (a.dfch_gelu.ptr(), a.dfch.ptr());
        let dlogits = a.logits.ptr();

        // The head: dlnf = dlogits·wte, dwte += dlogitsᵀ·lnf.
        self.gemm(
            n, d.vp, c, dlogits, false, self.w.wte, false, dbuf, None, false,
        )?;
        self.gemm(
            d.vp,
            n,
            c,
            dlogits,
            true,
            a.lnf.ptr(),
            false,
            self.g.wte,
            None,
            true,
        )?;
        ex.layernorm_backward(
            dres,
            self.g.lnf_w,
            self.g.lnf_b,
            dbuf,
            layer(&a.res3, d.l - 1, nc),
            self.w.lnf_w,
            a.lnf_mean.ptr(),
            a.lnf_rstd.ptr(),
            n,
            c,
        )?;

        for l in (0..d.l).rev() {
            let (w, g) = (&self.w.layers[l], &self.g.layers[l]);
            let x = if l == 0 {
                a.encoded.ptr()
            } else {
                layer(&a.res3, l - 1, nc)
            };
            let ln1 = layer(&a.ln1, l, nc);
            let qkv = layer(&a.qkv, l, 3 * nc);
            let atty = layer(&a.atty, l, nc);
            let res2 = layer(&a.res2, l, nc);
            let ln2 = layer(&a.ln2, l, nc);
            let fch = layer(&a.fch, l, 4 * nc);
            let fch_gelu = layer(&a.fch_gelu, l, 4 * nc);

            // dres holds d(res3): it flows on unchanged to res2 and into the MLP's projection.
            self.gemm(
                n,
                c,
                4 * c,
                dres,
                false,
                w.fcproj_w,
                true,
                dfch_gelu,
                None,
                false,
            )?;
            self.gemm(
                4 * c,
                n,
                c,
                fch_gelu,
                true,
                dres,
                false,
                g.fcproj_w,
                None,
                true,
            )?;
            ex.bias_backward(g.fcproj_b, dres, n, c)?;
            ex.gelu_backward(dfch, fch, dfch_gelu)?;
            self.gemm(n, 4 * c, c, dfch, false, w.fc_w, true, dbuf, None, false)?;
            self.gemm(c, n, 4 * c, ln2, true, dfch, false, g.fc_w, None, true)?;
            ex.bias_backward(g.fc_b, dfch, n, 4 * c)?;
            // dres += the path through ln_2: now d(res2).
            ex.layernorm_backward(
                dres,
                g.ln2_w,
                g.ln2_b,
                dbuf,
                res2,
                w.ln2_w,
                layer(&a.ln2_mean, l, n),
                layer(&a.ln2_rstd, l, n),
                n,
                c,
            )?;

            // d(res2) flows on to x and into the attention's projection.
            self.gemm(n, c, c, dres, false, w.proj_w, true, dbuf, None, false)?;
            self.gemm(c, n, c, atty, true, dres, false, g.proj_w, None, true)?;
            ex.bias_backward(g.proj_b, dres, n, c)?;
            ex.attention_backward(
                dqkv,
                dbuf,
                atty,
                qkv,
                layer(&a.lse, l, d.b * d.nh * d.t),
                a.attn_scratch.ptr(),
                d.b,
                d.t,
                d.nh,
                d.hs,
            )?;
            self.gemm(n, 3 * c, c, dqkv, false, w.qkv_w, true, dbuf, None, false)?;
            self.gemm(c, n, 3 * c, ln1, true, dqkv, false, g.qkv_w, None, true)?;
            ex.bias_backward(g.qkv_b, dqkv, n, 3 * c)?;
            // dres += the path through ln_1: now d(x), the previous layer's d(res3).
            ex.layernorm_backward(
                dres,
                g.ln1_w,
                g.ln1_b,
                dbuf,
                x,
                w.ln1_w,
                layer(&a.ln1_mean, l, n),
                layer(&a.ln1_rstd, l, n),
                n,
                c,
            )?;
        }
        ex.encoder_backward(
            self.g.wte,
            self.g.wpe,
            dres,
            a.tokens.ptr(),
            d.b,
            d.t,
            c,
            a.enc_scratch.ptr(),
        )
    }

    /// Sets every gradient to zero.
    pub fn zero_grad(&mut self) -> Result<()> {
        self.exec.zero(&mut self.grads)
    }

    /// The global L2 norm of all gradients (fp32 accumulation on the GPU).
    pub fn grad_norm(&mut self) -> Result<f32> {
        self.exec.zero(&mut self.norm)?;
        self.exec
            .grad_norm_squared(self.norm.ptr(), self.grads.ptr())?;
        let sq = self.exec.to_host(&self.norm)?[0];
        Ok(sq.max(0.0).sqrt())
    }

    /// One AdamW step on every tensor with `h` (its `weight_decay` applies only to the tensors
    /// the table marks `decay`; the others get 0, as `AdamW::update` does).
    pub fn step(&mut self, h: &AdamwArgs) -> Result<()> {
        for s in &self.table.slots {
            let args = AdamwArgs {
                weight_decay: if s.decay { h.weight_decay } else { 0.0 },
                ..*h
            };
            self.exec.adamw_update(
                self.params.ptr().slice(s.offset, s.len),
                self.master.ptr().slice(s.offset, s.len),
                self.grads.ptr().slice(s.offset, s.len),
                self.m.ptr().slice(s.offset, s.len),
                self.v.ptr().slice(s.offset, s.len),
                &args,
            )?;
        }
        Ok(())
    }

    /// What `AdamW::update` does on the CPU: the gradient norm, the clip factor, `opt.step += 1`
    /// and the update of every tensor. Returns the norm before clipping.
    pub fn update(&mut self, opt: &mut AdamW, lr: f32, grad_clip: f32) -> Result<f32> {
        let norm = self.grad_norm()?;
        opt.step += 1;
        let h = adamw_args(&opt.cfg, lr, clip_factor(norm, grad_clip), opt.step)?;
        self.step(&h)?;
        Ok(norm)
    }

    /// Copies the fp32 master weights into the CPU model (same config).
    pub fn to_cpu(&self, model: &Gpt) -> Result<()> {
        ensure!(
            model.config == self.config,
            "GpuGpt::to_cpu: config differs"
        );
        let flat = self.exec.to_host(&self.master)?;
        let tensors = self.table.unpack(&flat);
        for ((_, p), data) in model.params().into_iter().zip(tensors) {
            p.with_data_mut(|dst: &mut [f32]| dst.copy_from_slice(&data));
        }
        Ok(())
    }

    /// Loads AdamW's moments from the CPU optimizer (e.g. after `--resume`).
    pub fn load_optimizer(&mut self, opt: &AdamW) -> Result<()> {
        let (m, v) = (self.pack(&opt.m)?, self.pack(&opt.v)?);
        self.exec.upload(&mut self.m, &m)?;
        self.exec.upload(&mut self.v, &v)?;
        Ok(())
    }

    /// Copies AdamW's moments into the CPU optimizer (for checkpoints).
    pub fn save_optimizer(&self, opt: &mut AdamW) -> Result<()> {
        opt.m = self.table.unpack(&self.exec.to_host(&self.m)?);
        opt.v = self.table.unpack(&self.exec.to_host(&self.v)?);
        Ok(())
    }

    fn pack(&self, tensors: &[Vec<f32>]) -> Result<Vec<f32>> {
        ensure!(
            tensors.len() == self.table.slots.len(),
            "optimizer state has {} tensors, the model {}",
            tensors.len(),
            self.table.slots.len()
        );
        let refs: Vec<&[f32]> = tensors.iter().map(|t| t.as_slice()).collect();
        Ok(self.table.pack(&refs))
    }

    /// The gradients, per tensor in CPU layout, as fp32 (for tests).
    pub fn grads_to_host(&self) -> Result<Vec<Vec<f32>>> {
        let flat: Vec<f32> = self
            .exec
            .to_host(&self.grads)?
            .into_iter()
            .map(|x| x.to_f32())
            .collect();
        Ok(self.table.unpack(&flat))
    }
}

/// The kernel's AdamW settings for optimizer step `step` (from 1).
pub fn adamw_args(cfg: &AdamWConfig, lr: f32, grad_scale: f32, step: u64) -> Result<AdamwArgs> {
    ensure!(step >= 1, "AdamW steps count from 1");
    Ok(AdamwArgs {
        lr,
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        eps: cfg.eps,
        weight_decay: cfg.weight_decay,
        grad_scale,
        step: u32::try_from(step)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_scale_matches_the_cpu_trainer() {
        // CPU: mean over B·T rows, then × 1/grad_accum.
        assert_eq!(row_grad_scale(128, 1), 1.0 / 128.0);
        assert_eq!(row_grad_scale(4 * 32, 4), 1.0 / 512.0);
        // What forward() computes for loss_scale = 1/grad_accum.
        let (n, accum) = (4 * 32usize, 3usize);
        let fwd = (1.0 / accum as f32) / n as f32;
        assert!((fwd - row_grad_scale(n, accum)).abs() <= 1e-7 * fwd);
    }

    #[test]
    fn ids_are_checked_against_the_vocabulary() {
        assert_eq!(
            ids_for_gpu(&[0, 5, 299], 300, "t").unwrap(),
            vec![0, 5, 299]
        );
        let err = ids_for_gpu(&[1, 300], 300, "t").unwrap_err().to_string();
        assert!(err.contains("300"), "{err}");
    }

    #[test]
    fn activation_sizes_for_gpt2_small() {
        let d = Dims::new(&GptConfig::GPT2_124M, 16, 1024);
        assert_eq!((d.vp, d.hs, d.n()), (50304, 64, 16384));
        // Per token: 16·C floatX per layer, 16·C more shared by all layers, and Vp logits.
        let x: usize = d.buffers().iter().map(|b| b.1).sum();
        assert_eq!(x, d.n() * (12 * 16 * 768 + 16 * 768 + 50304));
        // bf16: about 6.6 GB of activations at B=16.
        let gb = d.activation_bytes(2) as f64 / 1e9;
        assert!((6.0..7.5).contains(&gb), "{gb} GB");
    }

    #[test]
    fn adamw_args_copy_the_config() {
        let cfg = AdamWConfig::default();
        let h = adamw_args(&cfg, 1e-3, 0.5, 7).unwrap();
        assert_eq!(
            (
                h.beta1,
                h.beta2,
                h.eps,
                h.weight_decay,
                h.grad_scale,
                h.step
            ),
            (0.9, 0.95, 1e-8, 0.1, 0.5, 7)
        );
        assert!(adamw_args(&cfg, 1e-3, 1.0, 0).is_err());
    }
}
