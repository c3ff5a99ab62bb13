//! The backend boundary: every computation on tensor data goes through a function here, which
//! dispatches on the tensor's device (and then on its dtype). The autograd layer (`ops.rs`,
//! `nn.rs`) only ever calls these, so a CUDA backend is one more `match` arm per function.
//!
//! None of these record anything on the tape.

use super::pool;
use super::shape::{broadcast_shapes, broadcast_strides, numel, split_at_axis};
use super::storage::{DType, Device, Element};
use super::tensor::Tensor;
use crate::tensor::cpu;
use crate::tensor::cpu::elementwise::{View, map1, map2, zip3};
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

/// Runs `$f::<T>(args)` with `T` the element type of `$dtype` (CPU only for now), timed under
/// `$name` when the profiler is on.
macro_rules! dispatch {
    ($name:expr, $dev:expr, $dtype:expr, $f:ident($($arg:expr),*)) => {
        super::profile::time($name, || match ($dev, $dtype) {
            (Device::Cpu, DType::F32) => $f::<f32>($($arg),*),
            (Device::Cpu, DType::F64) => $f::<f64>($($arg),*),
        })
    };
}

fn same(op: &str, a: &Tensor, b: &Tensor) {
    assert!(
        a.dtype() == b.dtype() && a.device() == b.device(),
        "{op}: operands differ in dtype/device ({:?}/{:?} vs {:?}/{:?}), shapes {:?} and {:?}",
        a.dtype(),
        a.device(),
        b.dtype(),
        b.device(),
        a.shape(),
        b.shape()
    );
}

fn new<T: Element>(data: Vec<T>, shape: &[usize]) -> Tensor {
    Tensor::from_storage(T::into_storage(data), shape, Device::Cpu)
}

/// Reads a contiguous tensor's elements (the tensor must be contiguous).
fn read<T: Element, R>(t: &Tensor, f: impl FnOnce(&[T]) -> R) -> R {
    debug_assert!(t.is_contiguous());
    let g = t.0.storage.read().unwrap();
    f(&T::slice(&g)[t.offset()..t.offset() + t.numel()])
}

// ---- creation and copies ------------------------------------------------------------------

pub fn full(shape: &[usize], value: f64, dtype: DType, device: Device) -> Tensor {
    fn go<T: Element>(shape: &[usize], value: f64) -> Tensor {
        let mut v = pool::take::<T>(numel(shape));
        v.fill(T::from_f64(value));
        new(v, shape)
    }
    dispatch!("full", device, dtype, go(shape, value))
}

/// A dense copy of any view.
pub fn copy(x: &Tensor) -> Tensor {
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
    dispatch!("copy", x.device(), x.dtype(), go(x))
}

/// `x` itself when contiguous, else a dense copy.
pub fn contiguous(x: &Tensor) -> Tensor {
    if x.is_contiguous() {
        x.clone()
    } else {
        copy(x)
    }
}

/// Converts the element type.
pub fn cast(x: &Tensor, dtype: DType) -> Tensor {
    if x.dtype() == dtype {
        return x.clone();
    }
    match dtype {
        DType::F32 => Tensor::from_vec(x.to_vec(), x.shape()),
        DType::F64 => Tensor::from_vec_f64(x.to_vec_f64(), x.shape()),
    }
}

// ---- elementwise --------------------------------------------------------------------------

pub fn unary(op: Unary, x: &Tensor) -> Tensor {
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
    dispatch!(op.name(), x.device(), x.dtype(), go(op, x))
}

/// The gradient of `y = op(x)` given `g = dL/dy`.
pub fn unary_backward(op: Unary, x: &Tensor, y: &Tensor, g: &Tensor) -> Tensor {
    fn go<T: Element>(op: Unary, x: &Tensor, y: &Tensor, g: &Tensor) -> Tensor {
        let (x, y, g) = (contiguous(x), contiguous(y), contiguous(g));
        let mut out = pool::take::<T>(x.numel());
        read(&x, |xs: &[T]| {
            read(&y, |ys: &[T]| {
                read(&g, |gs: &[T]| {
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
                })
            })
        });
        new(out, x.shape())
    }
    dispatch!(op.backward_name(), x.device(), x.dtype(), go(op, x, y, g))
}

/// `a op b` with numpy broadcasting.
pub fn binary(op: Binary, a: &Tensor, b: &Tensor) -> Tensor {
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
    same(op.name(), a, b);
    dispatch!(op.name(), a.device(), a.dtype(), go(op, a, b))
}

/// `dst[.., start..start + len, ..] += src` along axis `axis` (the whole of `dst` when `axis` is
/// `None`), in place. `dst` must be contiguous and not shared with any other tensor.
pub fn add_into(dst: &Tensor, src: &Tensor, region: Option<(usize, usize)>) {
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
    same("add_into", dst, src);
    dispatch!("add_into", dst.device(), dst.dtype(), go(dst, src, region))
}

/// `x` where `mask == 0`, `value` where `mask != 0` (mask broadcasts to x's shape).
pub fn masked_fill(x: &Tensor, mask: &Tensor, value: f64) -> Tensor {
    fn go<T: Element>(x: &Tensor, mask: &Tensor, value: f64) -> Tensor {
        let shape = broadcast_shapes("masked_fill", x.shape(), mask.shape());
        assert_eq!(
            shape,
            x.shape(),
            "masked_fill: mask {:?} does not broadcast to {:?}",
            mask.shape(),
            x.shape()
        );
        let sm = broadcast_strides(mask.shape(), mask.strides(), &shape);
        let mut out = pool::take::<T>(numel(&shape));
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
            &shape,
            vx,
            vm,
            &mut out,
            |a, m| if m != T::ZERO { v } else { a },
        );
        new(out, &shape)
    }
    same("masked_fill", x, mask);
    dispatch!("masked_fill", x.device(), x.dtype(), go(x, mask, value))
}

/// The causal mask over the last two axes `[t, s]`: positions `j > i + s − t` become `value`.
pub fn causal_fill(x: &Tensor, value: f64) -> Tensor {
    fn go<T: Element>(x: &Tensor, value: f64) -> Tensor {
        let nd = x.ndim();
        assert!(
            nd >= 2,
            "causal_mask: needs at least 2 axes, got shape {:?}",
            x.shape()
        );
        let (t, s) = (x.shape()[nd - 2], x.shape()[nd - 1]);
        let mut out = pool::take::<T>(x.numel());
        read(&contiguous(x), |v: &[T]| out.copy_from_slice(v));
        cpu::elementwise::causal_fill(&mut out, t, s, T::from_f64(value));
        new(out, x.shape())
    }
    dispatch!("causal_fill", x.device(), x.dtype(), go(x, value))
}

// ---- reductions ---------------------------------------------------------------------------

/// Sum over axis `a`, keeping it with size 1.
pub fn sum_axis(x: &Tensor, a: usize) -> Tensor {
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
    dispatch!("sum_axis", x.device(), x.dtype(), go(x, a))
}

/// Max over axis `a`, keeping it with size 1.
pub fn max_axis(x: &Tensor, a: usize) -> Tensor {
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
    dispatch!("max_axis", x.device(), x.dtype(), go(x, a))
}

/// Gradient of `y = max_axis(x, a)`: `g` goes to the first maximum of each lane.
pub fn max_axis_backward(x: &Tensor, y: &Tensor, g: &Tensor, a: usize) -> Tensor {
    fn go<T: Element>(x: &Tensor, y: &Tensor, g: &Tensor, a: usize) -> Tensor {
        let (x, y, g) = (contiguous(x), contiguous(y), contiguous(g));
        let (outer, n, inner) = split_at_axis(x.shape(), a);
        let mut dx = pool::take::<T>(x.numel());
        read(&x, |xs: &[T]| {
            read(&y, |ys: &[T]| {
                read(&g, |gs: &[T]| {
                    cpu::reduce::max_axis_backward(xs, ys, gs, outer, n, inner, &mut dx)
                })
            })
        });
        new(dx, x.shape())
    }
    dispatch!("max_axis_backward", x.device(), x.dtype(), go(x, y, g, a))
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
    same("matmul", a, b);
    assert!(
        a.ndim() >= 2 && b.ndim() >= 2 && a.shape()[a.ndim() - 1] == b.shape()[b.ndim() - 2],
        "matmul: shapes {:?} and {:?} do not multiply",
        a.shape(),
        b.shape()
    );
    dispatch!("matmul", a.device(), a.dtype(), go(a, b))
}

// ---- fused row ops ------------------------------------------------------------------------

/// Softmax (or log-softmax) over the last axis.
pub fn softmax(x: &Tensor, log: bool) -> Tensor {
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
    dispatch!("softmax", x.device(), x.dtype(), go(x, log))
}

/// Gradient of softmax/log-softmax from its output `y` and `g`.
pub fn softmax_backward(y: &Tensor, g: &Tensor, log: bool) -> Tensor {
    fn go<T: Element>(y: &Tensor, g: &Tensor, log: bool) -> Tensor {
        let (y, g) = (contiguous(y), contiguous(g));
        let cols = y.shape().last().copied().unwrap_or(1);
        let mut dx = pool::take::<T>(y.numel());
        read(&y, |ys: &[T]| {
            read(&g, |gs: &[T]| {
                if log {
                    cpu::softmax::log_softmax_backward(ys, gs, &mut dx, cols)
                } else {
                    cpu::softmax::softmax_backward(ys, gs, &mut dx, cols)
                }
            })
        });
        new(dx, y.shape())
    }
    dispatch!("softmax_backward", y.device(), y.dtype(), go(y, g, log))
}

/// `softmax(scale·x)` over the last axis with the causal mask of the last two axes built in.
pub fn causal_softmax(x: &Tensor, scale: f64) -> Tensor {
    fn go<T: Element>(x: &Tensor, scale: f64) -> Tensor {
        let x = contiguous(x);
        if x.numel() == 0 {
            return x.clone();
        }
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
        let mut out = pool::take::<T>(x.numel());
        let sc = T::from_f64(scale);
        read(&x, |xs: &[T]| {
            cpu::softmax::causal_softmax(xs, &mut out, t, s, sc)
        });
        new(out, x.shape())
    }
    dispatch!("causal_softmax", x.device(), x.dtype(), go(x, scale))
}

/// Gradient of [`causal_softmax`] from its output `y` and `g`.
pub fn causal_softmax_backward(y: &Tensor, g: &Tensor, scale: f64) -> Tensor {
    fn go<T: Element>(y: &Tensor, g: &Tensor, scale: f64) -> Tensor {
        let (y, g) = (contiguous(y), contiguous(g));
        let nd = y.ndim();
        let (t, s) = (y.shape()[nd - 2], y.shape()[nd - 1]);
        let mut dx = pool::take::<T>(y.numel());
        let sc = T::from_f64(scale);
        read(&y, |ys: &[T]| {
            read(&g, |gs: &[T]| {
                cpu::softmax::causal_softmax_backward(ys, gs, &mut dx, t, s, sc)
            })
        });
        new(dx, y.shape())
    }
    dispatch!(
        "causal_softmax_backward",
        y.device(),
        y.dtype(),
        go(y, g, scale)
    )
}

/// LayerNorm over the last axis: returns `(y, mean, rstd)`, the last two of shape `[rows]`.
pub fn layernorm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> (Tensor, Tensor, Tensor) {
    fn go<T: Element>(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> (Tensor, Tensor, Tensor) {
        let (x, w, b) = (contiguous(x), contiguous(w), contiguous(b));
        let cols = x.shape().last().copied().unwrap_or(1);
        let rows = x.numel() / cols.max(1);
        let mut y = pool::take::<T>(x.numel());
        let (mut mean, mut rstd) = (pool::take::<T>(rows), pool::take::<T>(rows));
        read(&x, |xs: &[T]| {
            read(&w, |ws: &[T]| {
                read(&b, |bs: &[T]| {
                    let e = T::from_f64(eps);
                    cpu::layernorm::layernorm(xs, ws, bs, e, cols, &mut y, &mut mean, &mut rstd)
                })
            })
        });
        (new(y, x.shape()), new(mean, &[rows]), new(rstd, &[rows]))
    }
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
    dispatch!("layernorm", x.device(), x.dtype(), go(x, w, b, eps))
}

/// LayerNorm gradients `(dx, dw, db)`.
pub fn layernorm_backward(
    x: &Tensor,
    w: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
    g: &Tensor,
) -> (Tensor, Tensor, Tensor) {
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
        read(&x, |xs: &[T]| {
            read(&w, |ws: &[T]| {
                read(mean, |ms: &[T]| {
                    read(rstd, |rs: &[T]| {
                        read(&g, |gs: &[T]| {
                            cpu::layernorm::layernorm_backward(
                                xs, ws, ms, rs, gs, cols, &mut dx, &mut dw, &mut db,
                            )
                        })
                    })
                })
            })
        });
        (new(dx, x.shape()), new(dw, &[cols]), new(db, &[cols]))
    }
    dispatch!(
        "layernorm_backward",
        x.device(),
        x.dtype(),
        go(x, w, mean, rstd, g)
    )
}

/// Rows of `w` (`[vocab, dim]`) gathered by `ids`; the result has shape `shape + [dim]`.
pub fn embedding(w: &Tensor, ids: &[u32], shape: &[usize]) -> Tensor {
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
    dispatch!("embedding", w.device(), w.dtype(), go(w, ids, shape))
}

/// Scatter-add of `g` (`[.., dim]`) into a zero `[vocab, dim]` table at rows `ids`.
pub fn embedding_backward(g: &Tensor, ids: &[u32], vocab: usize) -> Tensor {
    fn go<T: Element>(g: &Tensor, ids: &[u32], vocab: usize) -> Tensor {
        let g = contiguous(g);
        let dim = g.shape().last().copied().unwrap_or(1);
        let mut dw = pool::take_zeroed::<T>(vocab * dim);
        read(&g, |gs: &[T]| {
            cpu::embedding::embedding_backward(gs, dim, ids, &mut dw)
        });
        new(dw, &[vocab, dim])
    }
    dispatch!(
        "embedding_backward",
        g.device(),
        g.dtype(),
        go(g, ids, vocab)
    )
}

/// Mean cross-entropy of rows of `x` (`[rows, classes]`) against `targets`: returns the scalar
/// loss, the per-row log-sum-exp `[rows]`, and how many rows counted.
pub fn cross_entropy(x: &Tensor, targets: &[u32], ignore: Option<u32>) -> (Tensor, Tensor, usize) {
    fn go<T: Element>(x: &Tensor, targets: &[u32], ignore: Option<u32>) -> (Tensor, Tensor, usize) {
        let x = contiguous(x);
        let cols = x.shape()[1];
        let mut lse = pool::take::<T>(targets.len());
        let (total, count) = read(&x, |xs: &[T]| {
            cpu::cross_entropy::cross_entropy(xs, targets, ignore, cols, &mut lse)
        });
        let loss = new(vec![T::from_f64(total / count as f64)], &[]);
        (loss, new(lse, &[targets.len()]), count)
    }
    dispatch!(
        "cross_entropy",
        x.device(),
        x.dtype(),
        go(x, targets, ignore)
    )
}

/// Gradient of the mean cross-entropy with respect to the logits, scaled by the scalar `g`.
pub fn cross_entropy_backward(
    x: &Tensor,
    lse: &Tensor,
    targets: &[u32],
    ignore: Option<u32>,
    count: usize,
    g: &Tensor,
) -> Tensor {
    fn go<T: Element>(
        x: &Tensor,
        lse: &Tensor,
        targets: &[u32],
        ignore: Option<u32>,
        count: usize,
        g: &Tensor,
    ) -> Tensor {
        let x = contiguous(x);
        let cols = x.shape()[1];
        let scale = T::from_f64(g.item_f64() / count.max(1) as f64);
        let mut dx = pool::take::<T>(x.numel());
        read(&x, |xs: &[T]| {
            read(lse, |ls: &[T]| {
                cpu::cross_entropy::cross_entropy_backward(
                    xs, ls, targets, ignore, cols, scale, &mut dx,
                )
            })
        });
        new(dx, x.shape())
    }
    dispatch!(
        "cross_entropy_backward",
        x.device(),
        x.dtype(),
        go(x, lse, targets, ignore, count, g)
    )
}

// ---- layout -------------------------------------------------------------------------------

/// Concatenation along axis `a` (all other axes equal).
pub fn cat(xs: &[&Tensor], a: usize) -> Tensor {
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
    dispatch!("cat", xs[0].device(), xs[0].dtype(), go(xs, a))
}

// ---- attention ----------------------------------------------------------------------------

/// Fused causal attention of `q`, `k`, `v` (`[BH, T, D]`): returns `(y, lse)`, `lse` `[BH, T]`.
pub fn causal_attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> (Tensor, Tensor) {
    fn go<T: Element>(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> (Tensor, Tensor) {
        let (q, k, v) = (contiguous(q), contiguous(k), contiguous(v));
        let (bh, t, d) = (q.shape()[0], q.shape()[1], q.shape()[2]);
        let mut y = pool::take::<T>(q.numel());
        let mut lse = pool::take::<T>(bh * t);
        read(&q, |qs: &[T]| {
            read(&k, |ks: &[T]| {
                read(&v, |vs: &[T]| {
                    let s = T::from_f64(scale);
                    cpu::attention::causal_attention_forward(qs, ks, vs, &mut y, &mut lse, t, d, s)
                })
            })
        });
        (new(y, q.shape()), new(lse, &[bh, t]))
    }
    same("causal_attention", q, k);
    same("causal_attention", q, v);
    assert!(
        q.ndim() == 3 && q.shape() == k.shape() && q.shape() == v.shape(),
        "causal_attention: q {:?}, k {:?}, v {:?} must all be [BH, T, D]",
        q.shape(),
        k.shape(),
        v.shape()
    );
    dispatch!(
        "causal_attention",
        q.device(),
        q.dtype(),
        go(q, k, v, scale)
    )
}

/// Gradients `(dq, dk, dv)` of fused causal attention.
#[allow(clippy::too_many_arguments)]
pub fn causal_attention_backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    y: &Tensor,
    lse: &Tensor,
    g: &Tensor,
    scale: f64,
) -> (Tensor, Tensor, Tensor) {
    fn go<T: Element>(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        y: &Tensor,
        lse: &Tensor,
        g: &Tensor,
        scale: f64,
    ) -> (Tensor, Tensor, Tensor) {
        let (q, k, v, y, g) = (
            contiguous(q),
            contiguous(k),
            contiguous(v),
            contiguous(y),
            contiguous(g),
        );
        let (t, d) = (q.shape()[1], q.shape()[2]);
        let n = q.numel();
        // Every element is overwritten by the kernel's gemm calls.
        let (mut dq, mut dk, mut dv) = (pool::take::<T>(n), pool::take::<T>(n), pool::take::<T>(n));
        read(&q, |qs: &[T]| {
            read(&k, |ks: &[T]| {
                read(&v, |vs: &[T]| {
                    read(&y, |ys: &[T]| {
                        read(lse, |ls: &[T]| {
                            read(&g, |gs: &[T]| {
                                cpu::attention::causal_attention_backward(
                                    qs,
                                    ks,
                                    vs,
                                    ys,
                                    ls,
                                    gs,
                                    &mut dq,
                                    &mut dk,
                                    &mut dv,
                                    t,
                                    d,
                                    T::from_f64(scale),
                                )
                            })
                        })
                    })
                })
            })
        });
        (new(dq, q.shape()), new(dk, q.shape()), new(dv, q.shape()))
    }
    dispatch!(
        "causal_attention_backward",
        q.device(),
        q.dtype(),
        go(q, k, v, y, lse, g, scale)
    )
}
