//! The CUDA arm of every backend op: the operands' device addresses handed to a launcher of
//! `crate::tensor::cuda`, which checks the sizes and launches our kernel. Outputs come from the
//! GPU's caching allocator. Everything is queued on the GPU's one stream and returns at once;
//! only reading a value back (`item`, `to_vec`) waits.
//!
//! f32 and bf16 tensors run the same kernels compiled twice (`floatX` in `kernels/common.cuh`);
//! statistics (LayerNorm's mean and rstd, attention's and the loss's log-sum-exp, losses) are
//! f32 whatever the dtype. f64 is for gradient checks on the CPU only.

use super::super::storage::{DType, Device, Storage};
use super::super::tensor::Tensor;
use super::{
    AdamwHyper, AdamwState, AttentionSaved, Binary, Heads, LayerNormStats, Saved, Targets, Unary,
};
use crate::tensor::cuda::alloc::{self, Block};
use crate::tensor::cuda::{self as k, DevPtr, Gpu, GpuFloat, Precision};
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
        let len: usize = shape.iter().product();
        let block = ok(
            "allocating",
            alloc::alloc(&self.gpu, len * dtype.size_in_bytes()),
        );
        Tensor::from_storage(Storage::Cuda { block, dtype, len }, shape, self.device)
    }
}

/// The tensor dtype a kernel storage type stands for.
fn dtype_of(p: Precision) -> DType {
    match p {
        Precision::F32 => DType::F32,
        Precision::Bf16 => DType::BF16,
    }
}

/// The device address of element `t.offset()` and the element count of a contiguous `t`, as a
/// kernel argument of type `X*` (the dtype is checked).
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
    debug_assert!(t.is_contiguous() && t.offset() + t.numel() <= *len);
    let size = std::mem::size_of::<X>() as u64;
    DevPtr::from_raw_parts(block.addr() + t.offset() as u64 * size, t.numel())
}

/// `ptr` for an f32 tensor (statistics), whatever the op's dtype.
fn ptr_f32(t: &Tensor) -> DevPtr<f32> {
    ptr::<f32>(t)
}

fn pending(op: &str) -> ! {
    panic!("{op}: no CUDA kernel for this op yet")
}

// ---- creation, copies, transfers ----------------------------------------------------------

pub(super) fn full(shape: &[usize], value: f64, dtype: DType, device: Device) -> Tensor {
    let on = On::device(device);
    let out = on.empty(shape, dtype);
    by_dtype!("full", dtype, X => ok("full", k::ops::fill::<X>(&on.gpu, ptr(&out), value as f32)));
    out
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
    let dst = out.0.storage.read().unwrap();
    let Storage::Cuda { block, .. } = &*dst else {
        unreachable!()
    };
    // SAFETY: the block holds n elements of this dtype, exactly `bytes.len()` bytes.
    ok("to(cuda)", unsafe { on.gpu.upload(block.addr(), bytes) });
    drop(dst);
    out
}

/// A contiguous GPU tensor's elements in host memory (waits for the queued work).
pub(super) fn download(x: &Tensor) -> Tensor {
    let on = On::of(x);
    let n = x.numel();
    let addr = |b: &Block| b.addr() + (x.offset() * x.dtype().size_in_bytes()) as u64;
    let g = x.0.storage.read().unwrap();
    let Storage::Cuda { block, .. } = &*g else {
        unreachable!()
    };
    let storage = match x.dtype() {
        DType::F32 => {
            let mut v = vec![0f32; n];
            // SAFETY: the tensor's n elements start at this address, 4 bytes each.
            ok("to(cpu)", unsafe {
                on.gpu
                    .download(bytemuck::cast_slice_mut(&mut v), addr(block))
            });
            Storage::F32(v)
        }
        DType::BF16 => {
            let mut v = vec![bf16::ZERO; n];
            // SAFETY: as above, 2 bytes each.
            ok("to(cpu)", unsafe {
                on.gpu
                    .download(bytemuck::cast_slice_mut(&mut v), addr(block))
            });
            Storage::Bf16(v)
        }
        DType::F64 => unreachable!("f64 on a GPU"),
    };
    Tensor::from_storage(storage, x.shape(), Device::Cpu)
}

pub(super) fn copy(x: &Tensor) -> Tensor {
    if !x.is_contiguous() {
        pending("copy of a strided view")
    }
    let on = On::of(x);
    let out = on.empty(x.shape(), x.dtype());
    let bytes = x.numel() * x.dtype().size_in_bytes();
    let src = {
        let g = x.0.storage.read().unwrap();
        let Storage::Cuda { block, .. } = &*g else {
            unreachable!()
        };
        block.addr() + (x.offset() * x.dtype().size_in_bytes()) as u64
    };
    let dst = {
        let g = out.0.storage.read().unwrap();
        let Storage::Cuda { block, .. } = &*g else {
            unreachable!()
        };
        block.addr()
    };
    // SAFETY: both ranges hold `bytes` bytes of live blocks; a fresh block never overlaps x's.
    ok("copy", unsafe { on.gpu.copy_on_device(dst, src, bytes) });
    out
}

/// The device address of `t`'s first element.
fn addr(t: &Tensor) -> u64 {
    let g = t.0.storage.read().unwrap();
    let Storage::Cuda { block, .. } = &*g else {
        panic!("expected a GPU tensor, found {}", g.describe())
    };
    block.addr() + (t.offset() * t.dtype().size_in_bytes()) as u64
}

pub(super) fn copy_into(dst: &Tensor, src: &Tensor) {
    let src = contiguous(src);
    let on = On::of(dst);
    let bytes = src.numel() * src.dtype().size_in_bytes();
    if dst.shares_storage(&src) && addr(dst) == addr(&src) {
        return;
    }
    // SAFETY: both tensors hold `bytes` bytes of live blocks; `dst` is contiguous and, being
    // written whole, does not overlap `src` unless they are the same elements (checked above).
    ok("copy_into", unsafe {
        on.gpu.copy_on_device(addr(dst), addr(&src), bytes)
    });
}

pub(super) fn contiguous(x: &Tensor) -> Tensor {
    if x.is_contiguous() {
        x.clone()
    } else {
        copy(x)
    }
}

/// f32 ↔ bf16 on the GPU (`kernels/cast.cu`).
pub(super) fn cast(x: &Tensor, dtype: DType) -> Tensor {
    let x = contiguous(x);
    let on = On::of(&x);
    let out = on.empty(x.shape(), dtype);
    match (x.dtype(), dtype) {
        (DType::F32, DType::BF16) => ok(
            "cast",
            k::ops::cast_to_floatx::<bf16>(&on.gpu, ptr(&out), ptr(&x)),
        ),
        (DType::BF16, DType::F32) => ok(
            "cast",
            k::ops::cast_to_float::<bf16>(&on.gpu, ptr(&out), ptr(&x)),
        ),
        (a, b) => panic!(
            "cast: {} to {} on a GPU (f64 lives on the CPU only)",
            a.name(),
            b.name()
        ),
    }
    out
}

// ---- elementwise --------------------------------------------------------------------------

pub(super) fn unary(op: Unary, x: &Tensor) -> Tensor {
    let x = contiguous(x);
    let on = On::of(&x);
    let out = on.empty(x.shape(), x.dtype());
    match op {
        Unary::Gelu => by_dtype!("gelu", x.dtype(), X =>
            ok("gelu", k::ops::gelu_forward::<X>(&on.gpu, ptr(&out), ptr(&x)))),
        _ => pending(op.name()),
    }
    out
}

pub(super) fn unary_backward(op: Unary, x: &Tensor, _y: &Tensor, g: &Tensor) -> Tensor {
    let (x, g) = (contiguous(x), contiguous(g));
    let on = On::of(&x);
    let out = on.empty(x.shape(), x.dtype());
    match op {
        Unary::Gelu => by_dtype!("gelu_backward", x.dtype(), X =>
            ok("gelu_backward", k::ops::gelu_backward::<X>(&on.gpu, ptr(&out), ptr(&x), ptr(&g)))),
        _ => pending(op.backward_name()),
    }
    out
}

pub(super) fn binary(op: Binary, a: &Tensor, b: &Tensor) -> Tensor {
    if op != Binary::Add || a.shape() != b.shape() {
        pending(op.name())
    }
    let (a, b) = (contiguous(a), contiguous(b));
    let on = On::of(&a);
    let out = on.empty(a.shape(), a.dtype());
    by_dtype!("add", a.dtype(), X =>
        ok("add", k::ops::residual_forward::<X>(&on.gpu, ptr(&out), ptr(&a), ptr(&b))));
    out
}

pub(super) fn add_into(dst: &Tensor, src: &Tensor, region: Option<(usize, usize)>) {
    if region.is_some() || !src.is_contiguous() || dst.shape() != src.shape() {
        pending("add_into of a region or a strided view")
    }
    let on = On::of(dst);
    by_dtype!("add_into", dst.dtype(), X =>
        ok("add_into", k::ops::add_into::<X>(&on.gpu, ptr(dst), ptr(src))));
}

pub(super) fn masked_fill(_x: &Tensor, _mask: &Tensor, _value: f64) -> Tensor {
    pending("masked_fill")
}

pub(super) fn causal_fill(_x: &Tensor, _value: f64) -> Tensor {
    pending("causal_fill")
}

// ---- reductions ---------------------------------------------------------------------------

pub(super) fn sum_axis(_x: &Tensor, _a: usize) -> Tensor {
    pending("sum_axis")
}

pub(super) fn max_axis(_x: &Tensor, _a: usize) -> Tensor {
    pending("max_axis")
}

pub(super) fn max_axis_backward(_x: &Tensor, _y: &Tensor, _g: &Tensor, _a: usize) -> Tensor {
    pending("max_axis_backward")
}

/// `Σ x²` into a fresh f32 scalar (`kernels/norm.cu`).
pub(super) fn sum_squares(x: &Tensor) -> Tensor {
    let x = contiguous(x);
    let on = On::of(&x);
    let out = on.empty(&[], DType::F32);
    ok("sum_squares", k::ops::fill::<f32>(&on.gpu, ptr(&out), 0.0));
    by_dtype!("sum_squares", x.dtype(), X =>
        ok("sum_squares", k::ops::grad_norm_squared::<X>(&on.gpu, ptr(&out), ptr(&x))));
    out
}

// ---- matmul -------------------------------------------------------------------------------

pub(super) fn matmul(a: &Tensor, b: &Tensor) -> Tensor {
    if a.ndim() != 2 || b.ndim() != 2 {
        pending("batched matmul")
    }
    linear(a, b, None)
}

/// `x·w (+ bias)` as one gemm of our fastest kernel for the dtype, bias fused.
pub(super) fn linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Tensor {
    use crate::tensor::cpu::matmul::Layout;
    let layout = |t: &Tensor| super::mat_layout(t);
    let x = if layout(x).is_some() {
        x.clone()
    } else {
        copy(x)
    };
    let w = if layout(w).is_some() {
        w.clone()
    } else {
        copy(w)
    };
    let (m, kk, n) = (x.shape()[0], x.shape()[1], w.shape()[1]);
    let on = On::of(&x);
    let out = on.empty(&[m, n], x.dtype());
    let (ta, tb) = (layout(&x) == Some(Layout::T), layout(&w) == Some(Layout::T));
    let base = |t: &Tensor| t.view_raw(vec![t.numel()], vec![1], t.offset());
    by_dtype!("matmul", x.dtype(), X => {
        let v = k::matmul::best::<X>();
        let bias = bias.map(|b| ptr::<X>(&contiguous(b)));
        ok("matmul", k::matmul::gemm::<X>(
            &on.gpu, v, m, kk, n, ptr(&base(&x)), ta, ptr(&base(&w)), tb, ptr(&out), bias, false,
        ))
    });
    out
}

// ---- fused row ops ------------------------------------------------------------------------

pub(super) fn softmax(_x: &Tensor, _log: bool) -> Tensor {
    pending("softmax")
}

pub(super) fn softmax_backward(_y: &Tensor, _g: &Tensor, _log: bool) -> Tensor {
    pending("softmax_backward")
}

pub(super) fn causal_softmax(_x: &Tensor, _scale: f64) -> Tensor {
    pending("causal_softmax")
}

pub(super) fn causal_softmax_backward(_y: &Tensor, _g: &Tensor, _scale: f64) -> Tensor {
    pending("causal_softmax_backward")
}

pub(super) fn layernorm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> (Tensor, Tensor, Tensor) {
    let (x, w, b) = (contiguous(x), contiguous(w), contiguous(b));
    let c = x.shape().last().copied().unwrap_or(1);
    let rows = x.numel() / c.max(1);
    let on = On::of(&x);
    let y = on.empty(x.shape(), x.dtype());
    let mean = on.empty(&[rows], DType::F32);
    let rstd = on.empty(&[rows], DType::F32);
    let _ = eps;
    by_dtype!("layernorm", x.dtype(), X => ok("layernorm", k::ops::layernorm_forward::<X>(
        &on.gpu, ptr(&y), ptr_f32(&mean), ptr_f32(&rstd), ptr(&x), ptr(&w), ptr(&b), rows, c,
    )));
    (y, mean, rstd)
}

pub(super) fn layernorm_backward(
    x: &Tensor,
    w: &Tensor,
    stats: LayerNormStats,
    g: &Tensor,
) -> (Tensor, Tensor, Tensor) {
    let (x, w, g) = (contiguous(x), contiguous(w), contiguous(g));
    let c = x.shape().last().copied().unwrap_or(1);
    let rows = x.numel() / c.max(1);
    let on = On::of(&x);
    let dx = full(x.shape(), 0.0, x.dtype(), x.device());
    let dw = full(&[c], 0.0, x.dtype(), x.device());
    let db = full(&[c], 0.0, x.dtype(), x.device());
    by_dtype!("layernorm_backward", x.dtype(), X => ok("layernorm_backward",
    k::ops::layernorm_backward::<X>(
        &on.gpu, ptr(&dx), ptr(&dw), ptr(&db), ptr(&g), ptr(&x), ptr(&w),
        ptr_f32(stats.mean), ptr_f32(stats.rstd), rows, c,
    )));
    (dx, dw, db)
}

pub(super) fn embedding(_w: &Tensor, _ids: &[u32], _shape: &[usize]) -> Tensor {
    pending("embedding")
}

pub(super) fn embedding_backward(_g: &Tensor, _ids: &[u32], _vocab: usize) -> Tensor {
    pending("embedding_backward")
}

pub(super) fn cross_entropy(_x: &Tensor, _t: Targets) -> (Tensor, Tensor, usize) {
    pending("cross_entropy")
}

pub(super) fn cross_entropy_backward(
    _x: &Tensor,
    _lse: &Tensor,
    _t: Targets,
    _g: &Tensor,
) -> Tensor {
    pending("cross_entropy_backward")
}

pub(super) fn cat(_xs: &[&Tensor], _a: usize) -> Tensor {
    pending("cat")
}

// ---- fused model ops ----------------------------------------------------------------------

/// Fused causal attention on `qkv` `[B, T, 3C]` (`kernels/attention*.cu`).
pub(super) fn causal_attention(qkv: &Tensor, h: Heads) -> (Tensor, Tensor) {
    let qkv = contiguous(qkv);
    let on = On::of(&qkv);
    let c = h.n_head * h.head_size;
    let y = on.empty(&[h.b, h.t, c], qkv.dtype());
    let lse = on.empty(&[h.b, h.n_head, h.t], DType::F32);
    by_dtype!("causal_attention", qkv.dtype(), X => ok("causal_attention",
    k::attention::attention_forward::<X>(
        &on.gpu, ptr(&y), ptr_f32(&lse), ptr(&qkv), h.b, h.t, h.n_head, h.head_size,
    )));
    (y, lse)
}

pub(super) fn causal_attention_backward(s: AttentionSaved, g: &Tensor, h: Heads) -> Tensor {
    let g = contiguous(g);
    let on = On::of(&g);
    let dqkv = on.empty(s.qkv.shape(), g.dtype());
    let scratch = on.empty(&[h.b * h.n_head * h.t], DType::F32);
    by_dtype!("causal_attention_backward", g.dtype(), X => ok("causal_attention_backward",
    k::attention::attention_backward::<X>(
        &on.gpu, ptr(&dqkv), ptr(&g), ptr(s.y), ptr(s.qkv), ptr_f32(s.lse), ptr_f32(&scratch),
        h.b, h.t, h.n_head, h.head_size,
    )));
    dqkv
}

/// What the GPU classifier keeps for backward: the logits (overwritten by their gradient in
/// place) and the row log-sum-exp.
pub struct ClassifierLogits {
    logits: Tensor,
    lse: Tensor,
}

pub(super) fn classifier(x: &Tensor, w: &Tensor, t: Targets, want_grad: bool) -> (Tensor, Saved) {
    let logits = matmul(x, &w.t_view());
    let (loss, lse, _) = cross_entropy(&logits, t);
    if !want_grad {
        return (loss, Saved::None);
    }
    (loss, Saved::Logits(ClassifierLogits { logits, lse }))
}

pub(super) fn classifier_backward(
    saved: ClassifierLogits,
    x: &Tensor,
    w: &Tensor,
    t: Targets,
    g: &Tensor,
) -> (Tensor, Tensor) {
    let dlogits = cross_entropy_backward(&saved.logits, &saved.lse, t, g);
    drop(saved);
    let dx = matmul(&dlogits, w);
    let dw = matmul(&dlogits.t_view(), x);
    (dx, dw)
}

/// One AdamW step (`kernels/adamw.cu`): fp32 moments and master weights; a bf16 parameter is
/// rewritten as its master rounded to bf16.
pub(super) fn adamw(s: AdamwState, h: &AdamwHyper) {
    let on = On::of(s.param);
    let args = k::ops::AdamwArgs {
        lr: h.lr,
        beta1: h.beta1,
        beta2: h.beta2,
        eps: h.eps,
        weight_decay: h.weight_decay,
        grad_scale: h.grad_scale,
        step: h.step as u32,
    };
    let grad = contiguous(s.grad);
    let master = s.master.unwrap_or(s.param);
    by_dtype!("adamw", s.param.dtype(), X => ok("adamw", k::ops::adamw_update::<X>(
        &on.gpu, ptr(s.param), ptr_f32(master), ptr(&grad), ptr_f32(s.m), ptr_f32(s.v), &args,
    )));
}
