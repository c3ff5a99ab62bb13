//! The backend boundary: every computation on tensor data goes through a function here. Each
//! checks its operands (shapes, dtypes, one device for all) and hands the work to the arm of the
//! device the tensors live on: `cpu` (loops and SIMD over host slices, `crate::tensor::cpu`) or
//! `cuda` (our kernels in `kernels/*.cu`, launched through `crate::tensor::cuda`). The autograd
//! layer (`ops.rs`, `attention.rs`, `fused.rs`) only ever calls these, and never looks at the
//! device: the same graph runs on either.
//!
//! None of these record anything on the tape.

mod cpu;
mod cuda;

use super::shape::{broadcast_shapes, numel};
use super::storage::{DType, Device};
use super::tensor::Tensor;
use crate::tensor::cpu::matmul::Layout;

/// Elementwise ops of one tensor (scalars folded in).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    Neg,
    Exp,
    Log,
    Sqrt,
    Tanh,
    Gelu,
    Relu,
    Powf(f64),
    AddScalar(f64),
    MulScalar(f64),
}

/// Elementwise ops of two tensors, with numpy broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
}

impl Unary {
    pub fn name(self) -> &'static str {
        match self {
            Unary::Neg => "neg",
            Unary::Exp => "exp",
            Unary::Log => "log",
            Unary::Sqrt => "sqrt",
            Unary::Tanh => "tanh",
            Unary::Gelu => "gelu",
            Unary::Relu => "relu",
            Unary::Powf(_) => "powf",
            Unary::AddScalar(_) => "add_scalar",
            Unary::MulScalar(_) => "mul_scalar",
        }
    }

    fn backward_name(self) -> &'static str {
        match self {
            Unary::Gelu => "gelu_backward",
            _ => "unary_backward",
        }
    }
}

impl Binary {
    pub fn name(self) -> &'static str {
        match self {
            Binary::Add => "add",
            Binary::Sub => "sub",
            Binary::Mul => "mul",
            Binary::Div => "div",
        }
    }
}

/// The targets of a loss: one class id per row, and the id whose rows do not count.
#[derive(Clone, Copy, Debug)]
pub struct Targets<'a> {
    pub ids: &'a [u32],
    pub ignore: Option<u32>,
}

impl Targets<'_> {
    /// Rows that count toward the mean.
    pub fn count(&self) -> usize {
        self.ids.iter().filter(|&&t| Some(t) != self.ignore).count()
    }
}

/// The tensors one AdamW step updates in place: the parameter, its moments, and, when the
/// parameter is kept in lower precision (bf16), its fp32 master copy.
pub struct AdamwState<'a> {
    pub param: &'a Tensor,
    pub grad: &'a Tensor,
    pub m: &'a Tensor,
    pub v: &'a Tensor,
    pub master: Option<&'a Tensor>,
}

pub use crate::tensor::cpu::adamw::Hyper as AdamwHyper;

/// What the fused classifier keeps for its backward pass (see [`classifier`]).
pub struct ClassifierSaved(Saved);

/// The CPU computes the gradients of the mean loss in the forward pass (the logits are never
/// stored whole); the GPU keeps the logits and turns them into gradients in the backward pass.
enum Saved {
    Grads { dx: Tensor, dw: Tensor },
    Logits(cuda::ClassifierLogits),
    None,
}

/// Runs the arm of `$dev` (`cpu::$f` or `cuda::$f`), timed under `$name` by the profiler.
macro_rules! on_device {
    ($name:expr, $dev:expr, $f:ident($($arg:expr),*)) => {
        super::profile::time($name, || match $dev {
            Device::Cpu => cpu::$f($($arg),*),
            Device::Cuda(_) => cuda::$f($($arg),*),
        })
    };
}

/// Panics unless `a` and `b` have one dtype and one device, naming both.
fn same(op: &str, a: &Tensor, b: &Tensor) {
    same_device(op, a, b);
    assert!(
        a.dtype() == b.dtype(),
        "{op}: operands differ in dtype ({} and {}), shapes {:?} and {:?}",
        a.dtype().name(),
        b.dtype().name(),
        a.shape(),
        b.shape()
    );
}

/// Panics unless `a` and `b` are on one device, naming both.
fn same_device(op: &str, a: &Tensor, b: &Tensor) {
    assert!(
        a.device() == b.device(),
        "{op}: operands are on two devices ({} and {}), shapes {:?} and {:?}",
        a.device(),
        b.device(),
        a.shape(),
        b.shape()
    );
}

// ---- creation, copies, transfers ----------------------------------------------------------

pub fn full(shape: &[usize], value: f64, dtype: DType, device: Device) -> Tensor {
    on_device!("full", device, full(shape, value, dtype, device))
}

/// A dense copy of any view.
pub fn copy(x: &Tensor) -> Tensor {
    on_device!("copy", x.device(), copy(x))
}

/// `x` itself when contiguous, else a dense copy.
pub fn contiguous(x: &Tensor) -> Tensor {
    if x.is_contiguous() {
        x.clone()
    } else {
        copy(x)
    }
}

/// Converts the element type (on the tensor's device).
pub fn cast(x: &Tensor, dtype: DType) -> Tensor {
    if x.dtype() == dtype {
        return x.clone();
    }
    on_device!("cast", x.device(), cast(x, dtype))
}

/// Overwrites the contiguous `dst` with the elements of `src` (same shape, dtype and device).
pub fn copy_into(dst: &Tensor, src: &Tensor) {
    same("copy_into", dst, src);
    assert!(
        dst.shape() == src.shape() && dst.is_contiguous(),
        "copy_into: {:?} into {:?} (which must be contiguous)",
        src.shape(),
        dst.shape()
    );
    on_device!("copy_into", dst.device(), copy_into(dst, src))
}

/// A copy of `x` on `device` (same dtype, contiguous); `x` itself when it is already there.
pub fn to_device(x: &Tensor, device: Device) -> Tensor {
    match (x.device(), device) {
        (a, b) if a == b => x.clone(),
        (Device::Cpu, Device::Cpu) => unreachable!(),
        (Device::Cpu, Device::Cuda(i)) => cuda::upload(&cpu::contiguous(x), i),
        (Device::Cuda(_), Device::Cpu) => cuda::download(&cuda::contiguous(x)),
        (Device::Cuda(_), Device::Cuda(i)) => cuda::upload(&cuda::download(x), i),
    }
}

// ---- elementwise --------------------------------------------------------------------------

pub fn unary(op: Unary, x: &Tensor) -> Tensor {
    on_device!(op.name(), x.device(), unary(op, x))
}

/// The gradient of `y = op(x)` given `g = dL/dy`.
pub fn unary_backward(op: Unary, x: &Tensor, y: &Tensor, g: &Tensor) -> Tensor {
    same(op.backward_name(), x, g);
    on_device!(op.backward_name(), x.device(), unary_backward(op, x, y, g))
}

/// `a op b` with numpy broadcasting.
pub fn binary(op: Binary, a: &Tensor, b: &Tensor) -> Tensor {
    same(op.name(), a, b);
    broadcast_shapes(op.name(), a.shape(), b.shape());
    on_device!(op.name(), a.device(), binary(op, a, b))
}

/// `dst[.., start..start + len, ..] += src` along axis `axis` (the whole of `dst` when `region`
/// is `None`), in place. `dst` must be contiguous and not shared with any other tensor.
pub fn add_into(dst: &Tensor, src: &Tensor, region: Option<(usize, usize)>) {
    same("add_into", dst, src);
    on_device!("add_into", dst.device(), add_into(dst, src, region))
}

/// `x` where `mask == 0`, `value` where `mask != 0` (mask broadcasts to x's shape).
pub fn masked_fill(x: &Tensor, mask: &Tensor, value: f64) -> Tensor {
    same("masked_fill", x, mask);
    let shape = broadcast_shapes("masked_fill", x.shape(), mask.shape());
    assert_eq!(
        shape,
        x.shape(),
        "masked_fill: mask {:?} does not broadcast to {:?}",
        mask.shape(),
        x.shape()
    );
    on_device!("masked_fill", x.device(), masked_fill(x, mask, value))
}

/// The causal mask over the last two axes `[t, s]`: positions `j > i + s − t` become `value`.
pub fn causal_fill(x: &Tensor, value: f64) -> Tensor {
    assert!(
        x.ndim() >= 2,
        "causal_mask: needs at least 2 axes, got shape {:?}",
        x.shape()
    );
    on_device!("causal_fill", x.device(), causal_fill(x, value))
}

// ---- reductions ---------------------------------------------------------------------------

/// Sum over axis `a`, keeping it with size 1.
pub fn sum_axis(x: &Tensor, a: usize) -> Tensor {
    on_device!("sum_axis", x.device(), sum_axis(x, a))
}

/// Max over axis `a`, keeping it with size 1.
pub fn max_axis(x: &Tensor, a: usize) -> Tensor {
    on_device!("max_axis", x.device(), max_axis(x, a))
}

/// Gradient of `y = max_axis(x, a)`: `g` goes to the first maximum of each lane.
pub fn max_axis_backward(x: &Tensor, y: &Tensor, g: &Tensor, a: usize) -> Tensor {
    on_device!(
        "max_axis_backward",
        x.device(),
        max_axis_backward(x, y, g, a)
    )
}

/// `Σ x²` over every element, as a scalar on the tensor's device: f32 (f64 for an f64 tensor),
/// summed in f64 on the CPU and in f32 on a GPU. For the global gradient norm.
pub fn sum_squares(x: &Tensor) -> Tensor {
    on_device!("sum_squares", x.device(), sum_squares(x))
}

// ---- matmul -------------------------------------------------------------------------------

/// How the last two axes of `t` can be handed to gemm without a copy, if they can.
pub(crate) fn mat_layout(t: &Tensor) -> Option<Layout> {
    let nd = t.ndim();
    let (r, c) = (t.shape()[nd - 2], t.shape()[nd - 1]);
    let (sr, sc) = (t.strides()[nd - 2], t.strides()[nd - 1]);
    if (sc == 1 || c == 1) && (sr == c || r == 1) {
        Some(Layout::N)
    } else if (sr == 1 || r == 1) && (sc == r || c == 1) {
        Some(Layout::T)
    } else {
        None
    }
}

/// `a @ b` over the last two axes, batch axes broadcast. Transposed views go to gemm as
/// `Layout::T`; other non-contiguous matrices are copied first.
pub fn matmul(a: &Tensor, b: &Tensor) -> Tensor {
    same("matmul", a, b);
    assert!(
        a.ndim() >= 2 && b.ndim() >= 2 && a.shape()[a.ndim() - 1] == b.shape()[b.ndim() - 2],
        "matmul: shapes {:?} and {:?} do not multiply",
        a.shape(),
        b.shape()
    );
    broadcast_shapes(
        "matmul",
        &a.shape()[..a.ndim() - 2],
        &b.shape()[..b.ndim() - 2],
    );
    on_device!("matmul", a.device(), matmul(a, b))
}

/// `x·w (+ bias)` for a 2-D `x` `[m, k]` and `w` `[k, n]` (a transposed view is read in place):
/// one gemm with the bias added on the way out.
pub fn linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Tensor {
    same("linear", x, w);
    assert!(
        x.ndim() == 2 && w.ndim() == 2 && x.shape()[1] == w.shape()[0],
        "linear: input {:?} and weight {:?} do not match (weight is [in, out])",
        x.shape(),
        w.shape()
    );
    if let Some(b) = bias {
        same("linear", x, b);
        assert_eq!(
            b.shape(),
            [w.shape()[1]],
            "linear: bias {:?} for weight {:?}",
            b.shape(),
            w.shape()
        );
    }
    on_device!("linear", x.device(), linear(x, w, bias))
}

// ---- fused row ops ------------------------------------------------------------------------

/// Softmax (or log-softmax) over the last axis.
pub fn softmax(x: &Tensor, log: bool) -> Tensor {
    on_device!("softmax", x.device(), softmax(x, log))
}

/// Gradient of softmax/log-softmax from its output `y` and `g`.
pub fn softmax_backward(y: &Tensor, g: &Tensor, log: bool) -> Tensor {
    same("softmax_backward", y, g);
    on_device!("softmax_backward", y.device(), softmax_backward(y, g, log))
}

/// `softmax(scale·x)` over the last axis with the causal mask of the last two axes built in.
pub fn causal_softmax(x: &Tensor, scale: f64) -> Tensor {
    let nd = x.ndim();
    assert!(
        nd >= 2,
        "causal_softmax: needs at least 2 axes, got shape {:?}",
        x.shape()
    );
    let (t, s) = (x.shape()[nd - 2], x.shape()[nd - 1]);
    assert!(
        s >= t,
        "causal_softmax: {t} queries but only {s} keys in shape {:?}",
        x.shape()
    );
    on_device!("causal_softmax", x.device(), causal_softmax(x, scale))
}

/// Gradient of [`causal_softmax`] from its output `y` and `g`.
pub fn causal_softmax_backward(y: &Tensor, g: &Tensor, scale: f64) -> Tensor {
    same("causal_softmax_backward", y, g);
    on_device!(
        "causal_softmax_backward",
        y.device(),
        causal_softmax_backward(y, g, scale)
    )
}

/// LayerNorm over the last axis: returns `(y, mean, rstd)`, the last two of shape `[rows]`
/// (in f32 for a bf16 input: statistics are kept in full precision).
pub fn layernorm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> (Tensor, Tensor, Tensor) {
    same("layer_norm", x, w);
    same("layer_norm", x, b);
    let c = x.shape().last().copied().unwrap_or(1);
    assert!(
        w.shape() == [c] && b.shape() == [c],
        "layer_norm: input {:?} needs weight and bias of shape [{c}], got {:?} and {:?}",
        x.shape(),
        w.shape(),
        b.shape()
    );
    on_device!("layernorm", x.device(), layernorm(x, w, b, eps))
}

/// The saved statistics of a LayerNorm, for its backward.
pub struct LayerNormStats<'a> {
    pub mean: &'a Tensor,
    pub rstd: &'a Tensor,
}

/// LayerNorm gradients `(dx, dw, db)`.
pub fn layernorm_backward(
    x: &Tensor,
    w: &Tensor,
    stats: LayerNormStats,
    g: &Tensor,
) -> (Tensor, Tensor, Tensor) {
    same("layernorm_backward", x, g);
    on_device!(
        "layernorm_backward",
        x.device(),
        layernorm_backward(x, w, stats, g)
    )
}

/// Rows of `w` (`[vocab, dim]`) gathered by `ids`; the result has shape `shape + [dim]`.
pub fn embedding(w: &Tensor, ids: &[u32], shape: &[usize]) -> Tensor {
    assert!(
        w.ndim() == 2,
        "embedding: table must be 2-d, got shape {:?}",
        w.shape()
    );
    assert_eq!(
        numel(shape),
        ids.len(),
        "embedding: {} ids for shape {shape:?}",
        ids.len()
    );
    let vocab = w.shape()[0];
    if let Some(bad) = ids.iter().find(|&&i| i as usize >= vocab) {
        panic!("embedding: id {bad} is outside the table's {vocab} rows");
    }
    on_device!("embedding", w.device(), embedding(w, ids, shape))
}

/// `dst[ids[i], :] += src[i, :]` in place: the gradient of an embedding lookup, added into the
/// table's (`dst` `[vocab, dim]` contiguous and not shared, `src` `[ids.len(), dim]`).
/// Deterministic: each row's additions happen in the order of `ids`.
pub fn add_rows(dst: &Tensor, src: &Tensor, ids: &[u32]) {
    same("add_rows", dst, src);
    assert!(
        dst.ndim() == 2 && src.shape() == [ids.len(), dst.shape()[1]] && dst.is_contiguous(),
        "add_rows: {} rows {:?} into a table {:?}",
        ids.len(),
        src.shape(),
        dst.shape()
    );
    if let Some(bad) = ids.iter().find(|&&i| i as usize >= dst.shape()[0]) {
        panic!(
            "add_rows: id {bad} is outside the table's {} rows",
            dst.shape()[0]
        );
    }
    on_device!("add_rows", dst.device(), add_rows(dst, src, ids))
}

/// Mean cross-entropy of rows of `x` (`[rows, classes]`) against `targets`: returns the scalar
/// loss (f32 for bf16 logits), the per-row log-sum-exp `[rows]`, and how many rows counted.
pub fn cross_entropy(x: &Tensor, targets: Targets) -> (Tensor, Tensor, usize) {
    assert!(
        x.ndim() == 2 && x.shape()[0] == targets.ids.len(),
        "cross_entropy: logits {:?} for {} targets",
        x.shape(),
        targets.ids.len()
    );
    on_device!("cross_entropy", x.device(), cross_entropy(x, targets))
}

/// Gradient of the mean cross-entropy with respect to the logits, scaled by the scalar `g`.
pub fn cross_entropy_backward(x: &Tensor, lse: &Tensor, targets: Targets, g: &Tensor) -> Tensor {
    same_device("cross_entropy_backward", x, g);
    on_device!(
        "cross_entropy_backward",
        x.device(),
        cross_entropy_backward(x, lse, targets, g)
    )
}

// ---- layout -------------------------------------------------------------------------------

/// Concatenation along axis `a` (all other axes equal).
pub fn cat(xs: &[&Tensor], a: usize) -> Tensor {
    assert!(!xs.is_empty(), "cat: no tensors");
    for t in xs {
        same("cat", xs[0], t);
        let ok = t.ndim() == xs[0].ndim()
            && (0..t.ndim()).all(|d| d == a || t.shape()[d] == xs[0].shape()[d]);
        assert!(
            ok,
            "cat: shapes {:?} and {:?} differ off axis {a}",
            xs[0].shape(),
            t.shape()
        );
    }
    on_device!("cat", xs[0].device(), cat(xs, a))
}

// ---- fused model ops ----------------------------------------------------------------------

/// The shape of fused attention's input: `qkv` is `[B, T, 3C]` (queries, keys, values side by
/// side, heads of `C / n_head` columns within each), as a linear layer makes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heads {
    pub b: usize,
    pub t: usize,
    pub n_head: usize,
    pub head_size: usize,
}

impl Heads {
    /// The heads of `qkv` (`[B, T, 3C]`), panicking with the shape when it is not one.
    pub fn of(qkv: &Tensor, n_head: usize) -> Heads {
        let s = qkv.shape();
        assert!(
            s.len() == 3 && n_head > 0 && s[2].is_multiple_of(3 * n_head),
            "causal_attention: qkv {s:?} is not [B, T, 3·C] with C divisible by {n_head} heads"
        );
        Heads {
            b: s[0],
            t: s[1],
            n_head,
            head_size: s[2] / (3 * n_head),
        }
    }
}

/// Fused causal self-attention: `y = softmax(mask(q·kᵀ/√D))·v` per head, returned as `[B, T, C]`
/// with the heads side by side, plus the row log-sum-exp `[B, n_head, T]` (f32) for backward.
pub fn causal_attention(qkv: &Tensor, n_head: usize) -> (Tensor, Tensor) {
    let heads = Heads::of(qkv, n_head);
    on_device!(
        "causal_attention",
        qkv.device(),
        causal_attention(qkv, heads)
    )
}

/// What the backward of fused attention reads: its input, output and row log-sum-exp.
pub struct AttentionSaved<'a> {
    pub qkv: &'a Tensor,
    pub y: &'a Tensor,
    pub lse: &'a Tensor,
}

/// Gradient of [`causal_attention`] with respect to `qkv`, given `g = dL/dy`.
pub fn causal_attention_backward(s: AttentionSaved, g: &Tensor, n_head: usize) -> Tensor {
    same("causal_attention_backward", s.qkv, g);
    let heads = Heads::of(s.qkv, n_head);
    on_device!(
        "causal_attention_backward",
        g.device(),
        causal_attention_backward(s, g, heads)
    )
}

/// The fused LM head and loss: `mean_rows cross_entropy(x·wᵀ, targets)` for `x` `[N, C]` and the
/// token embedding `w` `[V, C]`, without handing the `[N, V]` logits to the graph. Returns the
/// scalar loss (f32) and what [`classifier_backward`] needs when `want_grad`.
pub fn classifier(
    x: &Tensor,
    w: &Tensor,
    targets: Targets,
    want_grad: bool,
) -> (Tensor, ClassifierSaved) {
    same("classifier", x, w);
    assert!(
        x.ndim() == 2 && w.ndim() == 2 && x.shape()[1] == w.shape()[1],
        "classifier: input {:?} and embedding {:?} do not match (embedding is [vocab, dim])",
        x.shape(),
        w.shape()
    );
    assert_eq!(
        x.shape()[0],
        targets.ids.len(),
        "classifier: {} rows but {} targets",
        x.shape()[0],
        targets.ids.len()
    );
    let (loss, saved) = on_device!(
        "classifier",
        x.device(),
        classifier(x, w, targets, want_grad)
    );
    (loss, ClassifierSaved(saved))
}

/// Gradients `(dx, dw)` of [`classifier`]'s loss scaled by the scalar `g`.
pub fn classifier_backward(
    saved: ClassifierSaved,
    x: &Tensor,
    w: &Tensor,
    targets: Targets,
    g: &Tensor,
) -> (Tensor, Tensor) {
    super::profile::time("classifier_backward", || match saved.0 {
        Saved::Grads { dx, dw } => cpu::scale_grads(dx, dw, g),
        Saved::Logits(l) => cuda::classifier_backward(l, x, w, targets, g),
        Saved::None => panic!("classifier: backward of a forward run without gradients"),
    })
}

/// One AdamW step on one parameter, in place (not recorded): moments, parameter, and the fp32
/// master copy when there is one (then the parameter becomes the master rounded to its dtype).
pub fn adamw(s: AdamwState, h: &AdamwHyper) {
    for t in [s.grad, s.m, s.v].into_iter().chain(s.master) {
        same_device("adamw", s.param, t);
        assert_eq!(
            t.shape(),
            s.param.shape(),
            "adamw: state of shape {:?} for a parameter of shape {:?}",
            t.shape(),
            s.param.shape()
        );
    }
    on_device!("adamw", s.param.device(), adamw(s, h))
}
