//! The CPU arm of every backend op: the tensor's host slice handed to a kernel of
//! `crate::tensor::cpu`, in f32 or f64 (the operands were checked by `backend`). bf16 lives on
//! the CPU only to be converted: an op on it says so.

use super::super::pool;
use super::super::shape::{broadcast_shapes, broadcast_strides, numel, split_at_axis};
use super::super::storage::{DType, Device, Element, Storage};
use super::super::tensor::Tensor;
use super::{
    AdamwHyper, AdamwState, AttentionSaved, Binary, Heads, LayerNormStats, Saved, Targets, Unary,
    mat_layout,
};
use crate::tensor::cpu;
use crate::tensor::cpu::elementwise::{View, map1, map2, zip3};
use half::bf16;

/// Runs `$f::<T>(args)` with `T` the element type of `$dtype`.
macro_rules! dispatch {
    ($name:expr, $dtype:expr, $f:ident($($arg:expr),*)) => {
        match $dtype {
            DType::F32 => $f::<f32>($($arg),*),
            DType::F64 => $f::<f64>($($arg),*),
            DType::BF16 => panic!(
                "{}: bf16 tensors on the CPU can only be converted (to_dtype(DType::F32))",
                $name
            ),
        }
    };
}

fn new<T: Element>(data: Vec<T>, shape: &[usize]) -> Tensor {
    Tensor::from_storage(T::into_storage(data), shape, Device::Cpu)
}

/// Reads a contiguous tensor's elements (the tensor must be contiguous).
fn read<T: Element, R>(t: &Tensor, f: impl FnOnce(&[T]) -> R) -> R {
    f(Host::of(t).get::<T>())
}

/// A contiguous host tensor's elements, readable while this lives (it holds the storage's
/// read lock), so that a kernel can take several inputs without nested closures.
struct Host<'a> {
    guard: std::sync::RwLockReadGuard<'a, Storage>,
    start: usize,
    len: usize,
}

impl<'a> Host<'a> {
    fn of(t: &'a Tensor) -> Host<'a> {
        debug_assert!(t.is_contiguous());
        Host {
            guard: t.0.storage.read().unwrap(),
            start: t.offset(),
            len: t.numel(),
        }
    }

    fn get<T: Element>(&self) -> &[T] {
        &T::slice(&self.guard)[self.start..self.start + self.len]
    }
}

// ---- creation and copies ------------------------------------------------------------------

pub(super) fn full(shape: &[usize], value: f64, dtype: DType, _device: Device) -> Tensor {
    fn go<T: Element>(shape: &[usize], value: f64) -> Tensor {
        let mut v = pool::take::<T>(numel(shape));
        v.fill(T::from_f64(value));
        new(v, shape)
    }
    if dtype == DType::BF16 {
        let v = vec![bf16::from_f64(value); numel(shape)];
        return Tensor::from_storage(Storage::Bf16(v), shape, Device::Cpu);
    }
    dispatch!("full", dtype, go(shape, value))
}

/// The elements of a host tensor of any dtype in row-major order, converted by `f`.
pub(super) fn values<R>(x: &Tensor, f32_to: fn(f32) -> R, f64_to: fn(f64) -> R) -> Vec<R> {
    fn gather<T: Copy, R>(d: &[T], x: &Tensor, f: impl Fn(T) -> R) -> Vec<R> {
        let mut idx = vec![0usize; x.ndim()];
        let mut out = Vec::with_capacity(x.numel());
        for _ in 0..x.numel() {
            let off: usize = idx.iter().zip(x.strides()).map(|(i, s)| i * s).sum();
            out.push(f(d[x.offset() + off]));
            for a in (0..idx.len()).rev() {
                idx[a] += 1;
                if idx[a] < x.shape()[a] {
                    break;
                }
                idx[a] = 0;
            }
        }
        out
    }
    let g = x.0.storage.read().unwrap();
    match &*g {
        Storage::F32(d) if x.is_contiguous() => d[x.offset()..x.offset() + x.numel()]
            .iter()
            .map(|&v| f32_to(v))
            .collect(),
        Storage::F32(d) => gather(d, x, f32_to),
        Storage::F64(d) => gather(d, x, f64_to),
        Storage::Bf16(d) => gather(d, x, |v| f32_to(v.to_f32())),
        Storage::Cuda { .. } => unreachable!("values: a GPU tensor reached the CPU arm"),
    }
}

/// A dense copy of any view.
pub(super) fn copy(x: &Tensor) -> Tensor {
    fn go<T: Element>(x: &Tensor) -> Tensor {
        let g = x.0.storage.read().unwrap();
        let src = View {
            data: T::slice(&g),
            offset: x.offset(),
            strides: x.strides(),
        };
        let mut out = pool::take::<T>(x.numel());
        map1(x.shape(), src, &mut out, |v| v);
        new(out, x.shape())
    }
    if x.dtype() == DType::BF16 {
        return cast(x, DType::BF16);
    }
    dispatch!("copy", x.dtype(), go(x))
}

/// Overwrites `dst` (contiguous) with `src`.
pub(super) fn copy_into(dst: &Tensor, src: &Tensor) {
    fn go<T: Element>(dst: &Tensor, src: &Tensor) {
        let src = contiguous(src);
        read(&src, |s: &[T]| {
            dst.with_data_mut(|d: &mut [T]| d.copy_from_slice(s))
        })
    }
    dispatch!("copy_into", dst.dtype(), go(dst, src))
}

/// `x` itself when contiguous, else a dense copy.
pub(super) fn contiguous(x: &Tensor) -> Tensor {
    if x.is_contiguous() {
        x.clone()
    } else {
        copy(x)
    }
}

/// Converts the element type.
pub(super) fn cast(x: &Tensor, dtype: DType) -> Tensor {
    let storage = match dtype {
        DType::F32 => Storage::F32(values(x, |v| v, |v| v as f32)),
        DType::F64 => Storage::F64(values(x, f64::from, |v| v)),
        DType::BF16 => Storage::Bf16(values(x, bf16::from_f32, bf16::from_f64)),
    };
    Tensor::from_storage(storage, x.shape(), Device::Cpu)
}

// ---- elementwise --------------------------------------------------------------------------

pub(super) fn unary(op: Unary, x: &Tensor) -> Tensor {
    fn go<T: Element>(op: Unary, x: &Tensor) -> Tensor {
        let mut out = pool::take::<T>(x.numel());
        if op == Unary::Gelu {
            let xc = contiguous(x);
            read(&xc, |s: &[T]| cpu::gelu::gelu(s, &mut out));
            return new(out, x.shape());
        }
        let g = x.0.storage.read().unwrap();
        let v = View {
            data: T::slice(&g),
            offset: x.offset(),
            strides: x.strides(),
        };
        let sh = x.shape();
        match op {
            Unary::Neg => map1(sh, v, &mut out, |a| -a),
            Unary::Exp => map1(sh, v, &mut out, |a| a.exp()),
            Unary::Log => map1(sh, v, &mut out, |a| a.ln()),
            Unary::Sqrt => map1(sh, v, &mut out, |a| a.sqrt()),
            Unary::Tanh => map1(sh, v, &mut out, |a| a.tanh()),
            Unary::Relu => map1(sh, v, &mut out, |a| if a > T::ZERO { a } else { T::ZERO }),
            Unary::Powf(p) => {
                let p = T::from_f64(p);
                map1(sh, v, &mut out, |a| a.powf(p))
            }
            Unary::AddScalar(c) => {
                let c = T::from_f64(c);
                map1(sh, v, &mut out, |a| a + c)
            }
            Unary::MulScalar(c) => {
                let c = T::from_f64(c);
                map1(sh, v, &mut out, |a| a * c)
            }
            Unary::Gelu => unreachable!(),
        }
        new(out, sh)
    }
    dispatch!(op.name(), x.dtype(), go(op, x))
}

/// The gradient of `y = op(x)` given `g = dL/dy`.
pub(super) fn unary_backward(op: Unary, x: &Tensor, y: &Tensor, g: &Tensor) -> Tensor {
    fn go<T: Element>(op: Unary, x: &Tensor, y: &Tensor, g: &Tensor) -> Tensor {
        let (x, y, g) = (contiguous(x), contiguous(y), contiguous(g));
        let mut out = pool::take::<T>(x.numel());
        let (hxs, hys, hgs) = (Host::of(&x), Host::of(&y), Host::of(&g));
        let (xs, ys, gs) = (hxs.get::<T>(), hys.get::<T>(), hgs.get::<T>());
        let o = &mut out;
        let half = T::from_f64(0.5);
        match op {
            Unary::Neg => zip3(xs, ys, gs, o, |_, _, g| -g),
            Unary::Exp => zip3(xs, ys, gs, o, |_, y, g| g * y),
            Unary::Log => zip3(xs, ys, gs, o, |x, _, g| g / x),
            Unary::Sqrt => zip3(xs, ys, gs, o, |_, y, g| g * half / y),
            Unary::Tanh => zip3(xs, ys, gs, o, |_, y, g| g * (T::ONE - y * y)),
            Unary::Relu => zip3(
                xs,
                ys,
                gs,
                o,
                |x, _, g| if x > T::ZERO { g } else { T::ZERO },
            ),
            Unary::Powf(p) => {
                let (p, q) = (T::from_f64(p), T::from_f64(p - 1.0));
                zip3(xs, ys, gs, o, |x, _, g| g * p * x.powf(q))
            }
            Unary::AddScalar(_) => o.copy_from_slice(gs),
            Unary::MulScalar(c) => {
                let c = T::from_f64(c);
                zip3(xs, ys, gs, o, |_, _, g| g * c)
            }
            Unary::Gelu => cpu::gelu::gelu_backward(xs, gs, o),
        }
        new(out, x.shape())
    }
    dispatch!(op.backward_name(), x.dtype(), go(op, x, y, g))
}

/// `a op b` with numpy broadcasting.
pub(super) fn binary(op: Binary, a: &Tensor, b: &Tensor) -> Tensor {
    fn go<T: Element>(op: Binary, a: &Tensor, b: &Tensor) -> Tensor {
        let shape = broadcast_shapes(op.name(), a.shape(), b.shape());
        let sa = broadcast_strides(a.shape(), a.strides(), &shape);
        let sb = broadcast_strides(b.shape(), b.strides(), &shape);
        let mut out = pool::take::<T>(numel(&shape));
        {
            let ga = a.0.storage.read().unwrap();
            let gb = b.0.storage.read().unwrap();
            let va = View {
                data: T::slice(&ga),
                offset: a.offset(),
                strides: &sa,
            };
            let vb = View {
                data: T::slice(&gb),
                offset: b.offset(),
                strides: &sb,
            };
            match op {
                Binary::Add => map2(&shape, va, vb, &mut out, |x, y| x + y),
                Binary::Sub => map2(&shape, va, vb, &mut out, |x, y| x - y),
                Binary::Mul => map2(&shape, va, vb, &mut out, |x, y| x * y),
                Binary::Div => map2(&shape, va, vb, &mut out, |x, y| x / y),
            }
        }
        new(out, &shape)
    }
    dispatch!(op.name(), a.dtype(), go(op, a, b))
}

/// `dst[.., start..start + len, ..] += src` along axis `axis` (the whole of `dst` when `axis` is
/// `None`), in place. `dst` must be contiguous and not shared with any other tensor.
pub(super) fn add_into(dst: &Tensor, src: &Tensor, region: Option<(usize, usize)>) {
    fn go<T: Element>(dst: &Tensor, src: &Tensor, region: Option<(usize, usize)>) {
        let off = dst.offset() + region.map_or(0, |(a, start)| start * dst.strides()[a]);
        let gs = src.0.storage.read().unwrap();
        let v = View {
            data: T::slice(&gs),
            offset: src.offset(),
            strides: src.strides(),
        };
        let mut gd = dst.0.storage.write().unwrap();
        let d = T::slice_mut(&mut gd);
        cpu::elementwise::add_assign_strided(src.shape(), d, off, dst.strides(), v);
    }
    dispatch!("add_into", dst.dtype(), go(dst, src, region))
}

/// `x` where `mask == 0`, `value` where `mask != 0` (mask broadcasts to x's shape).
pub(super) fn masked_fill(x: &Tensor, mask: &Tensor, value: f64) -> Tensor {
    fn go<T: Element>(x: &Tensor, mask: &Tensor, value: f64) -> Tensor {
        let shape = x.shape();
        let sm = broadcast_strides(mask.shape(), mask.strides(), shape);
        let mut out = pool::take::<T>(numel(shape));
        let gx = x.0.storage.read().unwrap();
        let gm = mask.0.storage.read().unwrap();
        let vx = View {
            data: T::slice(&gx),
            offset: x.offset(),
            strides: x.strides(),
        };
        let vm = View {
            data: T::slice(&gm),
            offset: mask.offset(),
            strides: &sm,
        };
        let v = T::from_f64(value);
        map2(
            shape,
            vx,
            vm,
            &mut out,
            |a, m| if m != T::ZERO { v } else { a },
        );
        new(out, shape)
    }
    dispatch!("masked_fill", x.dtype(), go(x, mask, value))
}

/// The causal mask over the last two axes `[t, s]`: positions `j > i + s − t` become `value`.
pub(super) fn causal_fill(x: &Tensor, value: f64) -> Tensor {
    fn go<T: Element>(x: &Tensor, value: f64) -> Tensor {
        let nd = x.ndim();
        let (t, s) = (x.shape()[nd - 2], x.shape()[nd - 1]);
        let mut out = pool::take::<T>(x.numel());
        read(&contiguous(x), |v: &[T]| out.copy_from_slice(v));
        cpu::elementwise::causal_fill(&mut out, t, s, T::from_f64(value));
        new(out, x.shape())
    }
    dispatch!("causal_fill", x.dtype(), go(x, value))
}

// ---- reductions ---------------------------------------------------------------------------

/// Sum over axis `a`, keeping it with size 1.
pub(super) fn sum_axis(x: &Tensor, a: usize) -> Tensor {
    fn go<T: Element>(x: &Tensor, a: usize) -> Tensor {
        let x = contiguous(x);
        let (outer, n, inner) = split_at_axis(x.shape(), a);
        let mut out = pool::take::<T>(outer * inner);
        read(&x, |s: &[T]| {
            cpu::reduce::sum_axis(s, outer, n, inner, &mut out)
        });
        let mut shape = x.shape().to_vec();
        shape[a] = 1;
        new(out, &shape)
    }
    dispatch!("sum_axis", x.dtype(), go(x, a))
}

/// Max over axis `a`, keeping it with size 1.
pub(super) fn max_axis(x: &Tensor, a: usize) -> Tensor {
    fn go<T: Element>(x: &Tensor, a: usize) -> Tensor {
        let x = contiguous(x);
        let (outer, n, inner) = split_at_axis(x.shape(), a);
        let mut out = pool::take::<T>(outer * inner);
        read(&x, |s: &[T]| {
            cpu::reduce::max_axis(s, outer, n, inner, &mut out)
        });
        let mut shape = x.shape().to_vec();
        shape[a] = 1;
        new(out, &shape)
    }
    dispatch!("max_axis", x.dtype(), go(x, a))
}

/// Gradient of `y = max_axis(x, a)`: `g` goes to the first maximum of each lane.
pub(super) fn max_axis_backward(x: &Tensor, y: &Tensor, g: &Tensor, a: usize) -> Tensor {
    fn go<T: Element>(x: &Tensor, y: &Tensor, g: &Tensor, a: usize) -> Tensor {
        let (x, y, g) = (contiguous(x), contiguous(y), contiguous(g));
        let (outer, n, inner) = split_at_axis(x.shape(), a);
        let mut dx = pool::take::<T>(x.numel());
        let (hxs, hys, hgs) = (Host::of(&x), Host::of(&y), Host::of(&g));
        let (xs, ys, gs) = (hxs.get::<T>(), hys.get::<T>(), hgs.get::<T>());
        cpu::reduce::max_axis_backward(xs, ys, gs, outer, n, inner, &mut dx);
        new(dx, x.shape())
    }
    dispatch!("max_axis_backward", x.dtype(), go(x, y, g, a))
}

/// `Σ x²` as a scalar of x's dtype, summed in f64 (in parallel for f32).
pub(super) fn sum_squares(x: &Tensor) -> Tensor {
    if x.dtype() == DType::F32 {
        let x = contiguous(x);
        let s = read(&x, |v: &[f32]| cpu::adamw::sum_of_squares(&[v]));
        return new(vec![s as f32], &[]);
    }
    fn go<T: Element>(x: &Tensor) -> Tensor {
        let x = contiguous(x);
        let s = read(&x, |v: &[T]| {
            v.iter().map(|&e| e.to_f64() * e.to_f64()).sum::<f64>()
        });
        new(vec![T::from_f64(s)], &[])
    }
    dispatch!("sum_squares", x.dtype(), go(x))
}

// ---- matmul -------------------------------------------------------------------------------

/// `a @ b` over the last two axes, batch axes broadcast. Transposed views go to gemm as
/// `Layout::T`; other non-contiguous matrices are copied first.
pub(super) fn matmul(a: &Tensor, b: &Tensor) -> Tensor {
    fn go<T: Element>(a: &Tensor, b: &Tensor) -> Tensor {
        let (na, nb) = (a.ndim(), b.ndim());
        let (m, k, n) = (a.shape()[na - 2], a.shape()[na - 1], b.shape()[nb - 1]);
        let batch = broadcast_shapes("matmul", &a.shape()[..na - 2], &b.shape()[..nb - 2]);
        let a = if mat_layout(a).is_some() {
            a.clone()
        } else {
            copy(a)
        };
        let b = if mat_layout(b).is_some() {
            b.clone()
        } else {
            copy(b)
        };
        let (la, lb) = (mat_layout(&a).unwrap(), mat_layout(&b).unwrap());
        let sa = broadcast_strides(&a.shape()[..na - 2], &a.strides()[..na - 2], &batch);
        let sb = broadcast_strides(&b.shape()[..nb - 2], &b.strides()[..nb - 2], &batch);
        let mut out_shape = batch.clone();
        out_shape.extend([m, n]);
        let mut out = pool::take::<T>(numel(&out_shape));
        if m * n == 0 || k == 0 {
            out.fill(T::ZERO);
            return new(out, &out_shape);
        }
        let ga = a.0.storage.read().unwrap();
        let gb = b.0.storage.read().unwrap();
        let (da, db) = (T::slice(&ga), T::slice(&gb));
        let one = |bi: usize, c: &mut [T]| {
            let (mut oa, mut ob, mut rest) = (a.offset(), b.offset(), bi);
            for d in (0..batch.len()).rev() {
                let i = rest % batch[d];
                rest /= batch[d];
                oa += i * sa[d];
                ob += i * sb[d];
            }
            T::gemm(
                m,
                k,
                n,
                &da[oa..oa + m * k],
                la,
                &db[ob..ob + k * n],
                lb,
                c,
                false,
            );
        };
        // Many small products (attention heads): one per task. Large ones parallelise inside gemm.
        if out.len() > m * n && m * n * k < (1 << 22) {
            use rayon::prelude::*;
            out.par_chunks_mut(m * n)
                .enumerate()
                .for_each(|(bi, c)| one(bi, c));
        } else {
            for (bi, c) in out.chunks_mut(m * n).enumerate() {
                one(bi, c);
            }
        }
        drop((ga, gb));
        new(out, &out_shape)
    }
    dispatch!("matmul", a.dtype(), go(a, b))
}

/// `x·w (+ bias)`: one gemm, then the bias added in place.
pub(super) fn linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Tensor {
    let y = matmul(x, w);
    if let Some(b) = bias {
        add_into(&y, &b.expand(y.shape()), None);
    }
    y
}

// ---- fused row ops ------------------------------------------------------------------------

/// Softmax (or log-softmax) over the last axis.
pub(super) fn softmax(x: &Tensor, log: bool) -> Tensor {
    fn go<T: Element>(x: &Tensor, log: bool) -> Tensor {
        let x = contiguous(x);
        if x.numel() == 0 {
            return x.clone();
        }
        let cols = x.shape().last().copied().unwrap_or(1);
        let mut out = pool::take::<T>(x.numel());
        read(&x, |s: &[T]| {
            if log {
                cpu::softmax::log_softmax(s, &mut out, cols)
            } else {
                cpu::softmax::softmax(s, &mut out, cols)
            }
        });
        new(out, x.shape())
    }
    dispatch!("softmax", x.dtype(), go(x, log))
}

/// Gradient of softmax/log-softmax from its output `y` and `g`.
pub(super) fn softmax_backward(y: &Tensor, g: &Tensor, log: bool) -> Tensor {
    fn go<T: Element>(y: &Tensor, g: &Tensor, log: bool) -> Tensor {
        let (y, g) = (contiguous(y), contiguous(g));
        let cols = y.shape().last().copied().unwrap_or(1);
        let mut dx = pool::take::<T>(y.numel());
        let (hys, hgs) = (Host::of(&y), Host::of(&g));
        let (ys, gs) = (hys.get::<T>(), hgs.get::<T>());
        if log {
            cpu::softmax::log_softmax_backward(ys, gs, &mut dx, cols)
        } else {
            cpu::softmax::softmax_backward(ys, gs, &mut dx, cols)
        }
        new(dx, y.shape())
    }
    dispatch!("softmax_backward", y.dtype(), go(y, g, log))
}

/// `softmax(scale·x)` over the last axis with the causal mask of the last two axes built in.
pub(super) fn causal_softmax(x: &Tensor, scale: f64) -> Tensor {
    fn go<T: Element>(x: &Tensor, scale: f64) -> Tensor {
        let x = contiguous(x);
        if x.numel() == 0 {
            return x.clone();
        }
        let nd = x.ndim();
        let (t, s) = (x.shape()[nd - 2], x.shape()[nd - 1]);
        let mut out = pool::take::<T>(x.numel());
        let sc = T::from_f64(scale);
        read(&x, |xs: &[T]| {
            cpu::softmax::causal_softmax(xs, &mut out, t, s, sc)
        });
        new(out, x.shape())
    }
    dispatch!("causal_softmax", x.dtype(), go(x, scale))
}

/// Gradient of [`causal_softmax`] from its output `y` and `g`.
pub(super) fn causal_softmax_backward(y: &Tensor, g: &Tensor, scale: f64) -> Tensor {
    fn go<T: Element>(y: &Tensor, g: &Tensor, scale: f64) -> Tensor {
        let (y, g) = (contiguous(y), contiguous(g));
        let nd = y.ndim();
        let (t, s) = (y.shape()[nd - 2], y.shape()[nd - 1]);
        let mut dx = pool::take::<T>(y.numel());
        let sc = T::from_f64(scale);
        let (hys, hgs) = (Host::of(&y), Host::of(&g));
        let (ys, gs) = (hys.get::<T>(), hgs.get::<T>());
        cpu::softmax::causal_softmax_backward(ys, gs, &mut dx, t, s, sc);
        new(dx, y.shape())
    }
    dispatch!("causal_softmax_backward", y.dtype(), go(y, g, scale))
}

/// LayerNorm over the last axis: returns `(y, mean, rstd)`, the last two of shape `[rows]`.
pub(super) fn layernorm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> (Tensor, Tensor, Tensor) {
    fn go<T: Element>(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> (Tensor, Tensor, Tensor) {
        let (x, w, b) = (contiguous(x), contiguous(w), contiguous(b));
        let cols = x.shape().last().copied().unwrap_or(1);
        let rows = x.numel() / cols.max(1);
        let mut y = pool::take::<T>(x.numel());
        let (mut mean, mut rstd) = (pool::take::<T>(rows), pool::take::<T>(rows));
        let (hxs, hws, hbs) = (Host::of(&x), Host::of(&w), Host::of(&b));
        let (xs, ws, bs) = (hxs.get::<T>(), hws.get::<T>(), hbs.get::<T>());
        let e = T::from_f64(eps);
        cpu::layernorm::layernorm(xs, ws, bs, e, cols, &mut y, &mut mean, &mut rstd);
        (new(y, x.shape()), new(mean, &[rows]), new(rstd, &[rows]))
    }
    dispatch!("layernorm", x.dtype(), go(x, w, b, eps))
}

/// LayerNorm gradients `(dx, dw, db)`.
pub(super) fn layernorm_backward(
    x: &Tensor,
    w: &Tensor,
    stats: LayerNormStats,
    g: &Tensor,
) -> (Tensor, Tensor, Tensor) {
    let (mean, rstd) = (stats.mean, stats.rstd);
    fn go<T: Element>(
        x: &Tensor,
        w: &Tensor,
        mean: &Tensor,
        rstd: &Tensor,
        g: &Tensor,
    ) -> (Tensor, Tensor, Tensor) {
        let (x, w, g) = (contiguous(x), contiguous(w), contiguous(g));
        let cols = x.shape().last().copied().unwrap_or(1);
        let mut dx = pool::take::<T>(x.numel());
        let (mut dw, mut db) = (pool::take::<T>(cols), pool::take::<T>(cols));
        let (hxs, hws, hms, hrs, hgs) = (
            Host::of(&x),
            Host::of(&w),
            Host::of(mean),
            Host::of(rstd),
            Host::of(&g),
        );
        let (xs, ws, ms, rs, gs) = (
            hxs.get::<T>(),
            hws.get::<T>(),
            hms.get::<T>(),
            hrs.get::<T>(),
            hgs.get::<T>(),
        );
        cpu::layernorm::layernorm_backward(xs, ws, ms, rs, gs, cols, &mut dx, &mut dw, &mut db);
        (new(dx, x.shape()), new(dw, &[cols]), new(db, &[cols]))
    }
    dispatch!("layernorm_backward", x.dtype(), go(x, w, mean, rstd, g))
}

/// Rows of `w` (`[vocab, dim]`) gathered by `ids`; the result has shape `shape + [dim]`.
pub(super) fn embedding(w: &Tensor, ids: &[u32], shape: &[usize]) -> Tensor {
    fn go<T: Element>(w: &Tensor, ids: &[u32], shape: &[usize]) -> Tensor {
        let w = contiguous(w);
        let dim = w.shape()[1];
        let mut out = pool::take::<T>(ids.len() * dim);
        read(&w, |ws: &[T]| {
            cpu::embedding::embedding(ws, dim, ids, &mut out)
        });
        let mut s = shape.to_vec();
        s.push(dim);
        new(out, &s)
    }
    dispatch!("embedding", w.dtype(), go(w, ids, shape))
}

/// `dst[ids[i]] += src[i]`, in place.
pub(super) fn add_rows(dst: &Tensor, src: &Tensor, ids: &[u32]) {
    fn go<T: Element>(dst: &Tensor, src: &Tensor, ids: &[u32]) {
        let src = contiguous(src);
        let dim = dst.shape()[1];
        read(&src, |gs: &[T]| {
            dst.with_data_mut(|d: &mut [T]| cpu::embedding::embedding_backward(gs, dim, ids, d))
        })
    }
    dispatch!("add_rows", dst.dtype(), go(dst, src, ids))
}

/// Mean cross-entropy of rows of `x` (`[rows, classes]`) against `targets`: returns the scalar
/// loss, the per-row log-sum-exp `[rows]`, and how many rows counted.
pub(super) fn cross_entropy(x: &Tensor, t: Targets) -> (Tensor, Tensor, usize) {
    fn go<T: Element>(x: &Tensor, t: Targets) -> (Tensor, Tensor, usize) {
        let x = contiguous(x);
        let cols = x.shape()[1];
        let mut lse = pool::take::<T>(t.ids.len());
        let (total, count) = read(&x, |xs: &[T]| {
            cpu::cross_entropy::cross_entropy(xs, t.ids, t.ignore, cols, &mut lse)
        });
        let loss = new(vec![T::from_f64(total / count as f64)], &[]);
        (loss, new(lse, &[t.ids.len()]), count)
    }
    dispatch!("cross_entropy", x.dtype(), go(x, t))
}

/// Gradient of the mean cross-entropy with respect to the logits, scaled by the scalar `g`.
pub(super) fn cross_entropy_backward(x: &Tensor, lse: &Tensor, t: Targets, g: &Tensor) -> Tensor {
    fn go<T: Element>(x: &Tensor, lse: &Tensor, t: Targets, g: &Tensor) -> Tensor {
        let x = contiguous(x);
        let cols = x.shape()[1];
        let scale = T::from_f64(g.item_f64() / t.count().max(1) as f64);
        let mut dx = pool::take::<T>(x.numel());
        let (hxs, hls) = (Host::of(&x), Host::of(lse));
        let (xs, ls) = (hxs.get::<T>(), hls.get::<T>());
        cpu::cross_entropy::cross_entropy_backward(xs, ls, t.ids, t.ignore, cols, scale, &mut dx);
        new(dx, x.shape())
    }
    dispatch!("cross_entropy_backward", x.dtype(), go(x, lse, t, g))
}

// ---- layout -------------------------------------------------------------------------------

/// Concatenation along axis `a` (all other axes equal).
pub(super) fn cat(xs: &[&Tensor], a: usize) -> Tensor {
    fn go<T: Element>(xs: &[&Tensor], a: usize) -> Tensor {
        let mut shape = xs[0].shape().to_vec();
        shape[a] = xs.iter().map(|t| t.shape()[a]).sum();
        let (outer, total, inner) = split_at_axis(&shape, a);
        let mut out = pool::take::<T>(numel(&shape));
        let mut start = 0;
        for t in xs {
            let t = contiguous(t);
            let n = t.shape()[a];
            read(&t, |s: &[T]| {
                for o in 0..outer {
                    let dst = (o * total + start) * inner;
                    out[dst..dst + n * inner]
                        .copy_from_slice(&s[o * n * inner..(o + 1) * n * inner]);
                }
            });
            start += n;
        }
        new(out, &shape)
    }
    dispatch!("cat", xs[0].dtype(), go(xs, a))
}

// ---- fused model ops ----------------------------------------------------------------------

/// `qkv` `[B, T, 3C]` → q, k, v as `[B·H, T, D]` each (one copy that splits out the heads).
fn split_heads(qkv: &Tensor, h: Heads) -> Tensor {
    let v = qkv.view_raw(
        vec![h.b, h.t, 3, h.n_head, h.head_size],
        super::super::shape::contiguous_strides(&[h.b, h.t, 3, h.n_head, h.head_size]),
        qkv.offset(),
    );
    let perm = [2, 0, 3, 1, 4];
    let shape = perm.iter().map(|&p| v.shape()[p]).collect();
    let strides = perm.iter().map(|&p| v.strides()[p]).collect();
    copy(&v.view_raw(shape, strides, v.offset()))
}

/// `[B·H, T, D]` (heads apart) → `[B, T, H·D]` (heads side by side), and the reverse.
fn merge_heads(y: &Tensor, h: Heads) -> Tensor {
    let (b, t, n, d) = (h.b, h.t, h.n_head, h.head_size);
    let strides = vec![n * t * d, d, t * d, 1];
    let v = y.view_raw(vec![b, t, n, d], strides, y.offset());
    copy(&v).reshape_view(&[b, t, n * d])
}

/// Fused causal attention on `qkv`: the heads are split out, `cpu::attention` runs per head.
pub(super) fn causal_attention(qkv: &Tensor, h: Heads) -> (Tensor, Tensor) {
    fn go<T: Element>(qkv: &Tensor, h: Heads) -> (Tensor, Tensor) {
        let parts = split_heads(&contiguous(qkv), h);
        let (bh, t, d) = (h.b * h.n_head, h.t, h.head_size);
        let n = bh * t * d;
        let mut y = pool::take::<T>(n);
        let mut lse = pool::take::<T>(bh * t);
        read(&parts, |p: &[T]| {
            let (q, k, v) = (&p[..n], &p[n..2 * n], &p[2 * n..]);
            let s = T::from_f64(1.0 / (d as f64).sqrt());
            cpu::attention::causal_attention_forward(q, k, v, &mut y, &mut lse, t, d, s)
        });
        let y = merge_heads(&new(y, &[bh, t, d]), h);
        (y, new(lse, &[h.b, h.n_head, t]))
    }
    dispatch!("causal_attention", qkv.dtype(), go(qkv, h))
}

/// Gradient of fused causal attention with respect to `qkv`.
pub(super) fn causal_attention_backward(s: AttentionSaved, g: &Tensor, h: Heads) -> Tensor {
    fn go<T: Element>(s: AttentionSaved, g: &Tensor, h: Heads) -> Tensor {
        let parts = split_heads(&contiguous(s.qkv), h);
        let (bh, t, d) = (h.b * h.n_head, h.t, h.head_size);
        let n = bh * t * d;
        let heads_apart = |x: &Tensor| {
            let x = contiguous(x);
            let st = vec![t * h.n_head * d, d, h.n_head * d, 1];
            copy(&x.view_raw(vec![h.b, h.n_head, t, d], st, x.offset()))
        };
        let (y, gy) = (heads_apart(s.y), heads_apart(g));
        let mut dqkv = pool::take::<T>(3 * n);
        let (hp, hys, hgs, hls) = (
            Host::of(&parts),
            Host::of(&y),
            Host::of(&gy),
            Host::of(s.lse),
        );
        let (p, ys, gs, ls) = (
            hp.get::<T>(),
            hys.get::<T>(),
            hgs.get::<T>(),
            hls.get::<T>(),
        );
        let (dq, rest) = dqkv.split_at_mut(n);
        let (dk, dv) = rest.split_at_mut(n);
        let (q, k, v) = (&p[..n], &p[n..2 * n], &p[2 * n..]);
        let sc = T::from_f64(1.0 / (d as f64).sqrt());
        cpu::attention::causal_attention_backward(q, k, v, ys, ls, gs, dq, dk, dv, t, d, sc);
        // [3, B, H, T, D] → [B, T, 3, H, D] = [B, T, 3C]
        let d3 = new(dqkv, &[3, h.b, h.n_head, t, d]);
        let st = d3.strides().to_vec();
        let v = d3.view_raw(
            vec![h.b, t, 3, h.n_head, d],
            vec![st[1], st[3], st[0], st[2], st[4]],
            0,
        );
        copy(&v).reshape_view(&[h.b, t, 3 * h.n_head * d])
    }
    dispatch!("causal_attention_backward", g.dtype(), go(s, g, h))
}

/// The fused classifier on the CPU (`cpu::classifier`): logits `x·wᵀ`, the mean cross-entropy
/// and (when asked) the gradients of that mean with respect to `x` and `w`, chunk by chunk in
/// the forward pass, never holding the whole `[rows, V]` logits. f64 (gradient checks) takes
/// the plain route: matmul, then cross-entropy and its gradient.
pub(super) fn classifier(x: &Tensor, w: &Tensor, t: Targets, want_grad: bool) -> (Tensor, Saved) {
    if x.dtype() != DType::F32 {
        return classifier_composed(x, w, t, want_grad);
    }
    let (x, w) = (contiguous(x), contiguous(w));
    let d = cpu::classifier::Dims {
        rows: x.shape()[0],
        c: x.shape()[1],
        v: w.shape()[0],
    };
    let (hx, hw) = (Host::of(&x), Host::of(&w));
    let opts = cpu::classifier::Options {
        take: pool::take::<f32>,
        give: pool::give::<f32>,
        ..cpu::classifier::Options::new(want_grad)
    };
    let out = cpu::classifier::classifier(hx.get(), hw.get(), t.ids, t.ignore, d, opts);
    let loss = new(vec![(out.loss_sum / out.count as f64) as f32], &[]);
    match out.grads {
        Some((dx, dw)) => {
            let (dx, dw) = (new(dx, x.shape()), new(dw, w.shape()));
            (loss, Saved::Grads { dx, dw })
        }
        None => (loss, Saved::None),
    }
}

/// The classifier as separate ops (any dtype the CPU computes in).
fn classifier_composed(x: &Tensor, w: &Tensor, t: Targets, want_grad: bool) -> (Tensor, Saved) {
    let logits = matmul(x, &w.t_view());
    let (loss, lse, _) = cross_entropy(&logits, t);
    if !want_grad {
        return (loss, Saved::None);
    }
    let one = full(&[], 1.0, x.dtype(), Device::Cpu);
    let dlogits = cross_entropy_backward(&logits, &lse, t, &one);
    drop(logits);
    let dx = matmul(&dlogits, w);
    let dw = matmul(&dlogits.t_view(), x);
    (loss, Saved::Grads { dx, dw })
}

/// The saved gradients of the mean loss, times the upstream scalar `g`.
pub(super) fn scale_grads(dx: Tensor, dw: Tensor, g: &Tensor) -> (Tensor, Tensor) {
    let s = g.item_f64();
    if s == 1.0 {
        return (dx, dw);
    }
    (
        unary(Unary::MulScalar(s), &dx),
        unary(Unary::MulScalar(s), &dw),
    )
}

/// One AdamW step in place on f32 tensors (`cpu::adamw`); the CPU keeps no master copy.
pub(super) fn adamw(s: AdamwState, h: &AdamwHyper) {
    assert!(
        s.master.is_none() && s.param.dtype() == DType::F32,
        "adamw: the CPU updates f32 parameters in place (got {} with a master copy: {})",
        s.param.dtype().name(),
        s.master.is_some()
    );
    let grad = contiguous(s.grad);
    read(&grad, |g: &[f32]| {
        s.m.with_data_mut(|m: &mut [f32]| {
            s.v.with_data_mut(|v: &mut [f32]| {
                s.param
                    .with_data_mut(|p: &mut [f32]| cpu::adamw::adamw(h, p, g, m, v))
            })
        })
    })
}
