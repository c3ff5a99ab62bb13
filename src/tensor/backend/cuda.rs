//! The CUDA arm of every backend op: the operands' device addresses handed to a launcher of
//! `crate::tensor::cuda`, which checks the sizes and launches our kernel. Outputs come from the
//! GPU's caching allocator. Everything is queued on the GPU's one stream and returns at once;
//! only reading a value back (`item`, `to_vec`) waits.
//!
//! f32 and bf16 tensors run the same kernels compiled twice (`floatX` in `kernels/common.cuh`);
//! statistics (LayerNorm's mean and rstd, the log-sum-exps, the losses) are f32 whatever the
//! dtype. f64 is for gradient checks on the CPU only.
//!
//! Strided views are read in place where a kernel takes a [`Strided`] layout (copies, binary
//! ops, masks, adds into a region); the other kernels want contiguous inputs and get a copy.

use super::super::shape::{broadcast_shapes, broadcast_strides, contiguous_strides, numel};
use super::super::storage::{DType, Device, Storage};
use super::super::tensor::Tensor;
use super::{
    AdamwHyper, AdamwState, AttentionSaved, Binary, Heads, LayerNormStats, Saved, Targets, Unary,
};
use crate::tensor::cuda::elementwise::{self as ew, BinaryOp, UnaryOp};
use crate::tensor::cuda::{self as k, Axis, DevPtr, Gpu, GpuFloat, Precision, Rows, Strided};
use half::bf16;
use std::sync::Arc;

/// Runs `$body` with `$X` the storage type of `$dtype` (f32 or bf16).
macro_rules! by_dtype {
    ($op:expr, $dtype:expr, $X:ident => $body:expr) => {
        match $dtype {
            DType::F32 => {
                type $X = f32;
                $body
            }
            DType::BF16 => {
                type $X = bf16;
                $body
            }
            DType::F64 => panic!(
                "{}: f64 tensors live on the CPU only (gradient checks)",
                $op
            ),
        }
    };
}

/// A launcher's error (an unlaunchable shape, a driver error) as a panic naming the op: like a
/// shape mismatch, it is a bug in the caller or a broken device, not bad user input.
fn ok<T>(op: &str, r: anyhow::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{op} on the GPU: {e:#}"))
}

/// Where an op runs: the GPU and its `Device` name, taken from an operand.
struct On {
    gpu: Arc<Gpu>,
    device: Device,
}

impl On {
    /// The GPU `t` lives on.
    fn of(t: &Tensor) -> On {
        match &*t.0.storage.read().unwrap() {
            Storage::Cuda { block, .. } => On {
                gpu: block.gpu().clone(),
                device: t.device(),
            },
            other => panic!("expected a GPU tensor, found {}", other.describe()),
        }
    }

    /// The GPU of `device` (opened on first use).
    fn device(device: Device) -> On {
        let Device::Cuda(i) = device else {
            panic!("expected a CUDA device, got {device}")
        };
        On {
            gpu: ok("opening the GPU", k::device::get(i)),
            device,
        }
    }

    /// A fresh tensor; its contents are whatever the allocator hands out.
    fn empty(&self, shape: &[usize], dtype: DType) -> Tensor {
        let len = numel(shape);
        let block = ok(
            "allocating",
            k::alloc::alloc(&self.gpu, len * dtype.size_in_bytes()),
        );
        Tensor::from_storage(Storage::Cuda { block, dtype, len }, shape, self.device)
    }

    /// A fresh tensor filled with `value`.
    fn full(&self, shape: &[usize], value: f32, dtype: DType) -> Tensor {
        let out = self.empty(shape, dtype);
        by_dtype!("full", dtype, X => ok("full", k::ops::fill::<X>(&self.gpu, ptr(&out), value)));
        out
    }

    /// Host ids as an `i32` array on this GPU (kept alive by the returned block).
    fn ids(&self, ids: &[i32]) -> (k::alloc::Block, DevPtr<i32>) {
        ok("uploading ids", k::alloc::upload(&self.gpu, ids))
    }
}

/// The tensor dtype a kernel storage type stands for.
fn dtype_of(p: Precision) -> DType {
    match p {
        Precision::F32 => DType::F32,
        Precision::Bf16 => DType::BF16,
    }
}

/// The device address of `t`'s first element.
fn addr(t: &Tensor) -> u64 {
    let g = t.0.storage.read().unwrap();
    let Storage::Cuda { block, .. } = &*g else {
        panic!("expected a GPU tensor, found {}", g.describe())
    };
    block.addr() + (t.offset() * t.dtype().size_in_bytes()) as u64
}

/// `t`'s elements from its offset to the end of its storage, as a kernel argument of type `X*`
/// (the dtype is checked). For a contiguous `t` that starts with its `numel()` elements; a
/// strided view's layout says which of them it uses.
fn ptr<X: GpuFloat>(t: &Tensor) -> DevPtr<X> {
    let g = t.0.storage.read().unwrap();
    let Storage::Cuda { block, dtype, len } = &*g else {
        panic!("expected a GPU tensor, found {}", g.describe())
    };
    assert_eq!(
        dtype_of(X::PRECISION),
        *dtype,
        "a kernel for {} given a {} tensor",
        X::PRECISION.name(),
        dtype.name()
    );
    let size = std::mem::size_of::<X>() as u64;
    DevPtr::from_raw_parts(block.addr() + t.offset() as u64 * size, len - t.offset())
}

/// [`ptr`] cut to exactly the `numel()` elements of a contiguous `t`.
fn dense<X: GpuFloat>(t: &Tensor) -> DevPtr<X> {
    debug_assert!(t.is_contiguous());
    ptr::<X>(t).slice(0, t.numel())
}

/// An f32 tensor's elements (statistics), whatever the op's dtype.
fn stat(t: &Tensor) -> DevPtr<f32> {
    dense::<f32>(t)
}

// ---- creation, copies, transfers ----------------------------------------------------------

pub(super) fn full(shape: &[usize], value: f64, dtype: DType, device: Device) -> Tensor {
    On::device(device).full(shape, value as f32, dtype)
}

/// A host tensor's elements in GPU memory of device `i` (same dtype; f64 is refused).
pub(super) fn upload(x: &Tensor, i: usize) -> Tensor {
    let on = On::device(Device::Cuda(i));
    let out = on.empty(x.shape(), x.dtype());
    let g = x.0.storage.read().unwrap();
    let (o, n) = (x.offset(), x.numel());
    let bytes: &[u8] = match &*g {
        Storage::F32(v) => bytemuck::cast_slice(&v[o..o + n]),
        Storage::Bf16(v) => bytemuck::cast_slice(&v[o..o + n]),
        Storage::F64(_) => panic!("to(cuda): f64 tensors live on the CPU only; cast to f32 first"),
        Storage::Cuda { .. } => unreachable!("upload of a GPU tensor"),
    };
    // SAFETY: `out` was just allocated for n elements of this dtype: `bytes.len()` bytes.
    ok("to(cuda)", unsafe { on.gpu.upload(addr(&out), bytes) });
    out
}

/// A contiguous GPU tensor's elements in host memory (waits for the queued work).
pub(super) fn download(x: &Tensor) -> Tensor {
    let on = On::of(x);
    let n = x.numel();
    let storage = match x.dtype() {
        DType::F32 => {
            let mut v = vec![0f32; n];
            // SAFETY: the tensor's n elements start at this address, 4 bytes each.
            let r = unsafe { on.gpu.download(bytemuck::cast_slice_mut(&mut v), addr(x)) };
            ok("to(cpu)", r);
            Storage::F32(v)
        }
        DType::BF16 => {
            let mut v = vec![bf16::ZERO; n];
            // SAFETY: as above, 2 bytes each.
            let r = unsafe { on.gpu.download(bytemuck::cast_slice_mut(&mut v), addr(x)) };
            ok("to(cpu)", r);
            Storage::Bf16(v)
        }
        DType::F64 => unreachable!("f64 on a GPU"),
    };
    Tensor::from_storage(storage, x.shape(), Device::Cpu)
}

/// A dense copy of any view (`kernels/copy.cu`).
pub(super) fn copy(x: &Tensor) -> Tensor {
    let on = On::of(x);
    let out = on.empty(x.shape(), x.dtype());
    let layout = Strided::new(x.shape(), &[&contiguous_strides(x.shape()), x.strides()]);
    by_dtype!("copy", x.dtype(), X =>
        ok("copy", ew::copy_strided::<X>(&on.gpu, ptr(&out), ptr(x), &layout)));
    out
}

pub(super) fn contiguous(x: &Tensor) -> Tensor {
    if x.is_contiguous() {
        x.clone()
    } else {
        copy(x)
    }
}

/// Overwrites the contiguous `dst` with `src` (any view).
pub(super) fn copy_into(dst: &Tensor, src: &Tensor) {
    if dst.shares_storage(src) && addr(dst) == addr(src) && src.is_contiguous() {
        return;
    }
    let on = On::of(dst);
    let layout = Strided::new(src.shape(), &[dst.strides(), src.strides()]);
    by_dtype!("copy_into", dst.dtype(), X =>
        ok("copy_into", ew::copy_strided::<X>(&on.gpu, ptr(dst), ptr(src), &layout)));
}

/// f32 ↔ bf16 on the GPU (`kernels/cast.cu`).
pub(super) fn cast(x: &Tensor, dtype: DType) -> Tensor {
    let x = contiguous(x);
    let on = On::of(&x);
    let out = on.empty(x.shape(), dtype);
    let r = match (x.dtype(), dtype) {
        (DType::F32, DType::BF16) => {
            k::ops::cast_to_floatx::<bf16>(&on.gpu, dense(&out), dense(&x))
        }
        (DType::BF16, DType::F32) => k::ops::cast_to_float::<bf16>(&on.gpu, dense(&out), dense(&x)),
        (a, b) => panic!(
            "cast: {} to {} on a GPU (f64 lives on the CPU only)",
            a.name(),
            b.name()
        ),
    };
    ok("cast", r);
    out
}

// ---- elementwise --------------------------------------------------------------------------

/// The kernel op of a backend op (GELU has kernels of its own).
fn kernel_op(op: Unary) -> UnaryOp {
    match op {
        Unary::Neg => UnaryOp::Neg,
        Unary::Exp => UnaryOp::Exp,
        Unary::Log => UnaryOp::Log,
        Unary::Sqrt => UnaryOp::Sqrt,
        Unary::Tanh => UnaryOp::Tanh,
        Unary::Relu => UnaryOp::Relu,
        Unary::Powf(p) => UnaryOp::Powf(p as f32),
        Unary::AddScalar(c) => UnaryOp::AddScalar(c as f32),
        Unary::MulScalar(c) => UnaryOp::MulScalar(c as f32),
        Unary::Gelu => unreachable!("GELU runs kernels/gelu.cu"),
    }
}

/// `op(x)` elementwise (`kernels/elementwise.cu`, GELU `kernels/gelu.cu`).
pub(super) fn unary(op: Unary, x: &Tensor) -> Tensor {
    let x = contiguous(x);
    let on = On::of(&x);
    let out = on.empty(x.shape(), x.dtype());
    by_dtype!(op.name(), x.dtype(), X => ok(op.name(), match op {
        Unary::Gelu => k::ops::gelu_forward::<X>(&on.gpu, dense(&out), dense(&x)),
        _ => ew::unary_forward::<X>(&on.gpu, kernel_op(op), dense(&out), dense(&x)),
    }));
    out
}

/// The gradient of `y = op(x)` given `g`.
pub(super) fn unary_backward(op: Unary, x: &Tensor, y: &Tensor, g: &Tensor) -> Tensor {
    let (x, y, g) = (contiguous(x), contiguous(y), contiguous(g));
    let on = On::of(&x);
    let dx = on.empty(x.shape(), x.dtype());
    let name = op.backward_name();
    by_dtype!(name, x.dtype(), X => ok(name, match op {
        Unary::Gelu => k::ops::gelu_backward::<X>(&on.gpu, dense(&dx), dense(&x), dense(&g)),
        _ => ew::unary_backward::<X>(
            &on.gpu, kernel_op(op), dense(&dx), dense(&x), dense(&y), dense(&g),
        ),
    }));
    dx
}

/// `a op b` with broadcasting, both read in place through their strides.
pub(super) fn binary(op: Binary, a: &Tensor, b: &Tensor) -> Tensor {
    let shape = broadcast_shapes(op.name(), a.shape(), b.shape());
    let on = On::of(a);
    let out = on.empty(&shape, a.dtype());
    let sa = broadcast_strides(a.shape(), a.strides(), &shape);
    let sb = broadcast_strides(b.shape(), b.strides(), &shape);
    let layout = Strided::new(&shape, &[&contiguous_strides(&shape), &sa, &sb]);
    let kop = match op {
        Binary::Add => BinaryOp::Add,
        Binary::Sub => BinaryOp::Sub,
        Binary::Mul => BinaryOp::Mul,
        Binary::Div => BinaryOp::Div,
    };
    by_dtype!(op.name(), a.dtype(), X => ok(op.name(),
        ew::binary::<X>(&on.gpu, kop, ptr(&out), ptr(a), ptr(b), &layout)));
    out
}

/// `dst[region] += src`, `src` read through its strides.
pub(super) fn add_into(dst: &Tensor, src: &Tensor, region: Option<(usize, usize)>) {
    let on = On::of(dst);
    let off = region.map_or(0, |(a, start)| start * dst.strides()[a]);
    let window = dst.view_raw(
        src.shape().to_vec(),
        dst.strides().to_vec(),
        dst.offset() + off,
    );
    let layout = Strided::new(src.shape(), &[window.strides(), src.strides()]);
    by_dtype!("add_into", dst.dtype(), X => ok("add_into",
        ew::add_strided::<X>(&on.gpu, ptr(&window), ptr(src), &layout)));
}

/// `value` where the (broadcast) mask is non-zero.
pub(super) fn masked_fill(x: &Tensor, mask: &Tensor, value: f64) -> Tensor {
    let on = On::of(x);
    let out = on.empty(x.shape(), x.dtype());
    let sm = broadcast_strides(mask.shape(), mask.strides(), x.shape());
    let layout = Strided::new(
        x.shape(),
        &[&contiguous_strides(x.shape()), x.strides(), &sm],
    );
    by_dtype!("masked_fill", x.dtype(), X => ok("masked_fill", ew::masked_fill::<X>(
        &on.gpu, ptr(&out), ptr(x), ptr(mask), &layout, value as f32,
    )));
    out
}

/// The causal mask over the last two axes.
pub(super) fn causal_fill(x: &Tensor, value: f64) -> Tensor {
    let x = contiguous(x);
    let on = On::of(&x);
    let out = on.empty(x.shape(), x.dtype());
    let nd = x.ndim();
    let (t, s) = (x.shape()[nd - 2], x.shape()[nd - 1]);
    by_dtype!("causal_fill", x.dtype(), X => ok("causal_fill",
        ew::causal_fill::<X>(&on.gpu, dense(&out), dense(&x), t, s, value as f32)));
    out
}

// ---- reductions ---------------------------------------------------------------------------

/// `x`'s shape with axis `a` set to 1.
fn keep_axis(shape: &[usize], a: usize) -> Vec<usize> {
    let mut s = shape.to_vec();
    s[a] = 1;
    s
}

pub(super) fn sum_axis(x: &Tensor, a: usize) -> Tensor {
    let x = contiguous(x);
    let on = On::of(&x);
    let out = on.empty(&keep_axis(x.shape(), a), x.dtype());
    by_dtype!("sum_axis", x.dtype(), X => ok("sum_axis",
        k::reduce::sum_axis::<X>(&on.gpu, dense(&out), dense(&x), Axis::of(x.shape(), a))));
    out
}

pub(super) fn max_axis(x: &Tensor, a: usize) -> Tensor {
    let x = contiguous(x);
    let on = On::of(&x);
    let out = on.empty(&keep_axis(x.shape(), a), x.dtype());
    by_dtype!("max_axis", x.dtype(), X => ok("max_axis",
        k::reduce::max_axis::<X>(&on.gpu, dense(&out), dense(&x), Axis::of(x.shape(), a))));
    out
}

pub(super) fn max_axis_backward(x: &Tensor, y: &Tensor, g: &Tensor, a: usize) -> Tensor {
    let (x, y, g) = (contiguous(x), contiguous(y), contiguous(g));
    let on = On::of(&x);
    let dx = on.empty(x.shape(), x.dtype());
    let axis = Axis::of(x.shape(), a);
    by_dtype!("max_axis_backward", x.dtype(), X => ok("max_axis_backward",
    k::reduce::max_axis_backward::<X>(
        &on.gpu, dense(&dx), dense(&x), dense(&y), dense(&g), axis,
    )));
    dx
}

/// `Σ x²` into a fresh f32 scalar (`kernels/norm.cu`).
pub(super) fn sum_squares(x: &Tensor) -> Tensor {
    let x = contiguous(x);
    let on = On::of(&x);
    let out = on.full(&[], 0.0, DType::F32);
    by_dtype!("sum_squares", x.dtype(), X => ok("sum_squares",
        k::ops::grad_norm_squared::<X>(&on.gpu, stat(&out), dense(&x))));
    out
}

// ---- matmul -------------------------------------------------------------------------------

/// A matrix operand as gemm takes it: the view's elements and whether it is stored transposed
/// (a transposed view is read in place; anything else is made contiguous first).
fn operand(t: &Tensor) -> (Tensor, bool) {
    use crate::tensor::cpu::matmul::Layout;
    match super::mat_layout(t) {
        Some(l) => (t.clone(), l == Layout::T),
        None => (copy(t), false),
    }
}

/// `a @ b`, batch axes broadcast: one gemm per batch entry.
pub(super) fn matmul(a: &Tensor, b: &Tensor) -> Tensor {
    if a.ndim() == 2 && b.ndim() == 2 {
        return linear(a, b, None);
    }
    let (na, nb) = (a.ndim(), b.ndim());
    let batch = broadcast_shapes("matmul", &a.shape()[..na - 2], &b.shape()[..nb - 2]);
    let (m, n) = (a.shape()[na - 2], b.shape()[nb - 1]);
    let mut shape = batch.clone();
    shape.extend([m, n]);
    let on = On::of(a);
    let out = on.empty(&shape, a.dtype());
    let ea = a.expand(&[batch.as_slice(), &a.shape()[na - 2..]].concat());
    let eb = b.expand(&[batch.as_slice(), &b.shape()[nb - 2..]].concat());
    let (fa, fb) = (flatten_batch(&ea), flatten_batch(&eb));
    for i in 0..numel(&batch) {
        let o = out.view_raw(vec![m, n], vec![n, 1], i * m * n);
        gemm_into(&o, &matrix(&fa, i), &matrix(&fb, i), None);
    }
    out
}

/// A `[batch.., r, c]` view as `[batch, r, c]` (a copy when the batch axes do not merge).
fn flatten_batch(t: &Tensor) -> Tensor {
    let nd = t.ndim();
    let (r, c) = (t.shape()[nd - 2], t.shape()[nd - 1]);
    let batch = numel(&t.shape()[..nd - 2]);
    let strides = &t.strides()[..nd - 2];
    let shape = &t.shape()[..nd - 2];
    // The batch axes merge when each stride is the next one times its size (or size 1).
    let mut step = None;
    let mut mergeable = true;
    for d in (0..shape.len()).rev() {
        if shape[d] == 1 {
            continue;
        }
        match step {
            None => step = Some((strides[d], shape[d])),
            Some((s, sz)) if strides[d] == s * sz => step = Some((s, sz * shape[d])),
            Some(_) => mergeable = false,
        }
    }
    let bs = step.map_or(0, |(s, _)| s);
    let t = if mergeable { t.clone() } else { copy(t) };
    let bs = if mergeable { bs } else { r * c };
    let (sr, sc) = (t.strides()[nd - 2], t.strides()[nd - 1]);
    t.view_raw(vec![batch, r, c], vec![bs, sr, sc], t.offset())
}

/// Batch entry `i` of a `[batch, r, c]` view.
fn matrix(t: &Tensor, i: usize) -> Tensor {
    let s = t.strides();
    t.view_raw(
        t.shape()[1..].to_vec(),
        s[1..].to_vec(),
        t.offset() + i * s[0],
    )
}

/// `out = x·w (+ bias)` into the contiguous `[m, n]` view `out`, with our fastest gemm.
fn gemm_into(out: &Tensor, x: &Tensor, w: &Tensor, bias: Option<&Tensor>) {
    let (x, ta) = operand(x);
    let (w, tb) = operand(w);
    let (m, kk, n) = (x.shape()[0], x.shape()[1], w.shape()[1]);
    let on = On::of(&x);
    by_dtype!("matmul", x.dtype(), X => {
        let bias = bias.map(|b| dense::<X>(&contiguous(b)));
        let g = k::matmul::Gemm {
            m,
            k: kk,
            n,
            a: k::matmul::Operand { ptr: ptr(&x), transposed: ta },
            b: k::matmul::Operand { ptr: ptr(&w), transposed: tb },
            c: dense(out),
            bias,
            accumulate: false,
        };
        ok("matmul", k::matmul::gemm::<X>(&on.gpu, k::matmul::preferred::<X>(), &g))
    });
}

/// `x·w (+ bias)` as one gemm, bias fused.
pub(super) fn linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Tensor {
    let out = On::of(x).empty(&[x.shape()[0], w.shape()[1]], x.dtype());
    gemm_into(&out, x, w, bias);
    out
}

// ---- fused row ops ------------------------------------------------------------------------

pub(super) fn softmax(x: &Tensor, log: bool) -> Tensor {
    let x = contiguous(x);
    let on = On::of(&x);
    let out = on.empty(x.shape(), x.dtype());
    by_dtype!("softmax", x.dtype(), X => ok("softmax", k::softmax::softmax_forward::<X>(
        &on.gpu, dense(&out), dense(&x), Rows::of(x.shape()), log,
    )));
    out
}

pub(super) fn softmax_backward(y: &Tensor, g: &Tensor, log: bool) -> Tensor {
    let (y, g) = (contiguous(y), contiguous(g));
    let on = On::of(&y);
    let dx = on.empty(y.shape(), y.dtype());
    by_dtype!("softmax_backward", y.dtype(), X => ok("softmax_backward",
    k::softmax::softmax_backward::<X>(
        &on.gpu, dense(&dx), dense(&y), dense(&g), Rows::of(y.shape()), log,
    )));
    dx
}

pub(super) fn causal_softmax(x: &Tensor, scale: f64) -> Tensor {
    let x = contiguous(x);
    let on = On::of(&x);
    let out = on.empty(x.shape(), x.dtype());
    let shape = k::softmax::Causal::of(x.shape());
    by_dtype!("causal_softmax", x.dtype(), X => ok("causal_softmax",
    k::softmax::causal_softmax_forward::<X>(
        &on.gpu, dense(&out), dense(&x), shape, scale as f32,
    )));
    out
}

pub(super) fn causal_softmax_backward(y: &Tensor, g: &Tensor, scale: f64) -> Tensor {
    let (y, g) = (contiguous(y), contiguous(g));
    let on = On::of(&y);
    let dx = on.empty(y.shape(), y.dtype());
    let shape = k::softmax::Causal::of(y.shape());
    by_dtype!("causal_softmax_backward", y.dtype(), X => ok("causal_softmax_backward",
    k::softmax::causal_softmax_backward::<X>(
        &on.gpu, dense(&dx), dense(&y), dense(&g), shape, scale as f32,
    )));
    dx
}

/// The (rows, cols) of a LayerNorm over the last axis, with its epsilon.
fn ln_shape(x: &Tensor, eps: f64) -> k::ops::LayerNormShape {
    let c = x.shape().last().copied().unwrap_or(1);
    k::ops::LayerNormShape {
        n: x.numel() / c.max(1),
        c,
        eps: eps as f32,
    }
}

/// LayerNorm (`kernels/layernorm.cu`): one warp per row, statistics in f32.
pub(super) fn layernorm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> (Tensor, Tensor, Tensor) {
    let (x, w, b) = (contiguous(x), contiguous(w), contiguous(b));
    let on = On::of(&x);
    let shape = ln_shape(&x, eps);
    let y = on.empty(x.shape(), x.dtype());
    let mean = on.empty(&[shape.n], DType::F32);
    let rstd = on.empty(&[shape.n], DType::F32);
    let stats = k::ops::RowStats {
        mean: stat(&mean),
        rstd: stat(&rstd),
    };
    by_dtype!("layernorm", x.dtype(), X => ok("layernorm", k::ops::layernorm_forward::<X>(
        &on.gpu, dense(&y), stats, dense(&x), dense(&w), dense(&b), shape,
    )));
    (y, mean, rstd)
}

/// LayerNorm gradients; the kernels add into zeroed outputs.
pub(super) fn layernorm_backward(
    x: &Tensor,
    w: &Tensor,
    stats: LayerNormStats,
    g: &Tensor,
) -> (Tensor, Tensor, Tensor) {
    let (x, w, g) = (contiguous(x), contiguous(w), contiguous(g));
    let on = On::of(&x);
    let shape = ln_shape(&x, 0.0);
    let dx = on.full(x.shape(), 0.0, x.dtype());
    let dw = on.full(&[shape.c], 0.0, x.dtype());
    let db = on.full(&[shape.c], 0.0, x.dtype());
    let rs = k::ops::RowStats {
        mean: stat(stats.mean),
        rstd: stat(stats.rstd),
    };
    by_dtype!("layernorm_backward", x.dtype(), X => {
        let grads = k::ops::LayerNormGrads { dinp: dense(&dx), dweight: dense(&dw), dbias: dense(&db) };
        ok("layernorm_backward", k::ops::layernorm_backward::<X>(
            &on.gpu, grads, dense(&g), dense(&x), dense(&w), rs, shape,
        ))
    });
    (dx, dw, db)
}

/// Rows of the table gathered by `ids` (uploaded as i32).
pub(super) fn embedding(w: &Tensor, ids: &[u32], shape: &[usize]) -> Tensor {
    let w = contiguous(w);
    let on = On::of(&w);
    let dim = w.shape()[1];
    let mut out_shape = shape.to_vec();
    out_shape.push(dim);
    let out = on.empty(&out_shape, w.dtype());
    let host: Vec<i32> = ids
        .iter()
        .map(|&i| i32::try_from(i).unwrap_or(-1))
        .collect();
    let (_keep, dids) = on.ids(&host);
    by_dtype!("embedding", w.dtype(), X => ok("embedding",
        k::embedding::embedding_forward::<X>(&on.gpu, dense(&out), dense(&w), dids, dim)));
    out
}

/// `dst[ids[i]] += src[i]`: each id's rows summed in position order, then added (deterministic).
pub(super) fn add_rows(dst: &Tensor, src: &Tensor, ids: &[u32]) {
    let src = contiguous(src);
    let on = On::of(dst);
    let (vocab, dim) = (dst.shape()[0], dst.shape()[1]);
    let buckets = k::embedding::EmbeddingBuckets::new(ids, vocab);
    let dev = ok("add_rows", buckets.upload(&on.gpu));
    by_dtype!("add_rows", dst.dtype(), X => ok("add_rows",
        k::embedding::embedding_add_rows::<X>(&on.gpu, dense(dst), dense(&src), &dev, dim)));
}

/// The targets on the device (`-1` where ignored), kept alive with their block.
fn targets_on(on: &On, t: Targets) -> (k::alloc::Block, DevPtr<i32>) {
    on.ids(&k::cross_entropy::device_targets(t.ids, t.ignore))
}

/// Mean cross-entropy: per-row losses and log-sum-exps in f32, then their mean on the device.
pub(super) fn cross_entropy(x: &Tensor, t: Targets) -> (Tensor, Tensor, usize) {
    let x = contiguous(x);
    let on = On::of(&x);
    let rows = x.shape()[0];
    let count = t.count();
    let (losses, lse) = (on.empty(&[rows], DType::F32), on.empty(&[rows], DType::F32));
    let (_keep, targets) = targets_on(&on, t);
    by_dtype!("cross_entropy", x.dtype(), X => {
        let l = k::cross_entropy::Logits { logits: dense::<X>(&x), targets, rows, cols: x.shape()[1] };
        ok("cross_entropy", k::cross_entropy::cross_entropy_forward::<X>(
            &on.gpu, stat(&losses), stat(&lse), l,
        ))
    });
    let loss = on.empty(&[], DType::F32);
    let scale = 1.0 / count as f32;
    ok(
        "cross_entropy",
        k::reduce::sum_to_scalar(&on.gpu, stat(&loss), stat(&losses), scale),
    );
    (loss, lse, count)
}

/// `d loss / d logits` times the scalar `g` (read on the device, never copied back).
pub(super) fn cross_entropy_backward(x: &Tensor, lse: &Tensor, t: Targets, g: &Tensor) -> Tensor {
    let x = contiguous(x);
    let on = On::of(&x);
    let dx = on.empty(x.shape(), x.dtype());
    into_cross_entropy_grad(&on, (&x, &dx), lse, t, g);
    dx
}

/// Writes the gradient of the mean cross-entropy of `logits` into `out` (which may be `logits`).
fn into_cross_entropy_grad(
    on: &On,
    (logits, out): (&Tensor, &Tensor),
    lse: &Tensor,
    t: Targets,
    g: &Tensor,
) {
    let g = if g.dtype() == DType::F32 {
        g.clone()
    } else {
        cast(g, DType::F32)
    };
    let (_keep, targets) = targets_on(on, t);
    let scale = 1.0 / t.count().max(1) as f32;
    let (rows, cols) = (logits.shape()[0], logits.shape()[1]);
    by_dtype!("cross_entropy_backward", logits.dtype(), X => {
        let l = k::cross_entropy::Logits { logits: dense::<X>(logits), targets, rows, cols };
        ok("cross_entropy_backward", k::cross_entropy::cross_entropy_backward::<X>(
            &on.gpu, dense(out), l, stat(lse), stat(&g), scale,
        ))
    });
}

/// Concatenation: each input copied into its slice of the output.
pub(super) fn cat(xs: &[&Tensor], a: usize) -> Tensor {
    let mut shape = xs[0].shape().to_vec();
    shape[a] = xs.iter().map(|t| t.shape()[a]).sum();
    let on = On::of(xs[0]);
    let out = on.empty(&shape, xs[0].dtype());
    let strides = contiguous_strides(&shape);
    let mut start = 0;
    for t in xs {
        let window = out.view_raw(t.shape().to_vec(), strides.clone(), start * strides[a]);
        let layout = Strided::new(t.shape(), &[&strides, t.strides()]);
        by_dtype!("cat", t.dtype(), X =>
            ok("cat", ew::copy_strided::<X>(&on.gpu, ptr(&window), ptr(t), &layout)));
        start += t.shape()[a];
    }
    out
}

// ---- fused model ops ----------------------------------------------------------------------

fn kernel_heads(h: Heads) -> k::attention::Heads {
    k::attention::Heads {
        b: h.b,
        t: h.t,
        nh: h.n_head,
        hs: h.head_size,
    }
}

/// Fused causal attention on `qkv` `[B, T, 3C]` (`kernels/attention*.cu`).
pub(super) fn causal_attention(qkv: &Tensor, h: Heads) -> (Tensor, Tensor) {
    let qkv = contiguous(qkv);
    let on = On::of(&qkv);
    let y = on.empty(&[h.b, h.t, h.n_head * h.head_size], qkv.dtype());
    let lse = on.empty(&[h.b, h.n_head, h.t], DType::F32);
    by_dtype!("causal_attention", qkv.dtype(), X => ok("causal_attention",
    k::attention::attention_forward::<X>(
        &on.gpu, dense(&y), stat(&lse), dense(&qkv), kernel_heads(h),
    )));
    (y, lse)
}

/// Its gradient with respect to `qkv` (recomputes the attention weights; no atomics).
pub(super) fn causal_attention_backward(s: AttentionSaved, g: &Tensor, h: Heads) -> Tensor {
    let (g, qkv, y) = (contiguous(g), contiguous(s.qkv), contiguous(s.y));
    let on = On::of(&g);
    let dqkv = on.empty(qkv.shape(), g.dtype());
    let scratch = on.empty(
        &[k::attention::attention_scratch_len(kernel_heads(h))],
        DType::F32,
    );
    by_dtype!("causal_attention_backward", g.dtype(), X => {
        let bufs = k::attention::AttentionBackward {
            dqkv: dense::<X>(&dqkv),
            dout: dense(&g),
            out: dense(&y),
            qkv: dense(&qkv),
            lse: stat(s.lse),
            scratch: stat(&scratch),
        };
        ok("causal_attention_backward",
            k::attention::attention_backward::<X>(&on.gpu, &bufs, kernel_heads(h)))
    });
    dqkv
}

/// What the GPU classifier keeps for backward: the logits (overwritten by their gradient in
/// place) and their row log-sum-exp.
pub struct ClassifierLogits {
    logits: Tensor,
    lse: Tensor,
}

/// `logits = x·wᵀ` and their mean cross-entropy; the logits are kept for the backward pass.
pub(super) fn classifier(x: &Tensor, w: &Tensor, t: Targets, want_grad: bool) -> (Tensor, Saved) {
    let logits = matmul(x, &w.t_view());
    let (loss, lse, _) = cross_entropy(&logits, t);
    if !want_grad {
        return (loss, Saved::None);
    }
    (loss, Saved::Logits(ClassifierLogits { logits, lse }))
}

/// The logits turned into their gradient in place, then `dx = dlogits·w`, `dw = dlogitsᵀ·x`.
pub(super) fn classifier_backward(
    saved: ClassifierLogits,
    x: &Tensor,
    w: &Tensor,
    t: Targets,
    g: &Tensor,
) -> (Tensor, Tensor) {
    let ClassifierLogits { logits, lse } = saved;
    let on = On::of(&logits);
    into_cross_entropy_grad(&on, (&logits, &logits), &lse, t, g);
    let dx = matmul(&logits, w);
    let dw = matmul(&logits.t_view(), x);
    (dx, dw)
}

/// One AdamW step (`kernels/adamw.cu`): f32 moments and master weights; a bf16 parameter is
/// rewritten as its master rounded to bf16 (without a master, an f32 parameter is its own).
pub(super) fn adamw(s: AdamwState, h: &AdamwHyper) {
    let on = On::of(s.param);
    let args = k::ops::AdamwArgs {
        lr: h.lr,
        beta1: h.beta1,
        beta2: h.beta2,
        eps: h.eps,
        weight_decay: h.weight_decay,
        grad_scale: h.grad_scale,
        step: u32::try_from(h.step).expect("adamw: step count beyond u32"),
    };
    let grad = contiguous(s.grad);
    let master = s.master.unwrap_or(s.param);
    by_dtype!("adamw", s.param.dtype(), X => ok("adamw", k::ops::adamw_update::<X>(
        &on.gpu, dense(s.param), stat(master), dense(&grad), stat(s.m), stat(s.v), &args,
    )));
}
