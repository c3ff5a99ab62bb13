//! Launchers for the generic element-wise ops of the tensor engine: strided copies and adds
//! (`kernels/copy.cu`), unary ops forward and backward, broadcasting binary ops, `masked_fill`
//! and `causal_fill` (`kernels/elementwise.cu`). Their CPU counterparts are in
//! `crate::tensor::cpu::elementwise`.
//!
//! A strided operand is a [`DevPtr`] to the view's first element plus its strides in a
//! [`Strided`] layout (operand 0 the output, 1 and 2 the inputs); the launchers check that every
//! buffer holds what its layout spans.

use super::device::{Arg, launch_config};
use super::ops::{int, packed_grid};
use super::strided::Strided;
use super::{DevPtr, Gpu, GpuFloat};
use crate::kargs;
use anyhow::Result;

/// A unary op of `kernels/elementwise.cu`, with its parameter (GELU has its own kernels,
/// `kernels/gelu.cu`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Tanh,
    Relu,
    Powf(f32),
    AddScalar(f32),
    MulScalar(f32),
}

impl UnaryOp {
    /// The kernel's op code (`UNARY_*` in `kernels/elementwise.cu`).
    pub fn code(self) -> i32 {
        match self {
            UnaryOp::Neg => 0,
            UnaryOp::Exp => 1,
            UnaryOp::Log => 2,
            UnaryOp::Sqrt => 3,
            UnaryOp::Tanh => 4,
            UnaryOp::Relu => 5,
            UnaryOp::Powf(_) => 6,
            UnaryOp::AddScalar(_) => 7,
            UnaryOp::MulScalar(_) => 8,
        }
    }

    /// The kernel's float parameter (0 for ops without one).
    pub fn param(self) -> f32 {
        match self {
            UnaryOp::Powf(p) | UnaryOp::AddScalar(p) | UnaryOp::MulScalar(p) => p,
            _ => 0.0,
        }
    }
}

/// A binary op of `kernels/elementwise.cu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinaryOp {
    /// The kernel's op code (`BINARY_*` in `kernels/elementwise.cu`).
    pub fn code(self) -> i32 {
        match self {
            BinaryOp::Add => 0,
            BinaryOp::Sub => 1,
            BinaryOp::Mul => 2,
            BinaryOp::Div => 3,
        }
    }
}

/// Checks that each operand's buffer holds what `layout` spans for it (operands in order:
/// output first), and that the output visits distinct elements (one writer per element).
fn check_layout<X>(what: &str, layout: &Strided, ptrs: &[DevPtr<X>]) {
    const NAMES: [&str; 3] = ["operand 0 (out)", "operand 1", "operand 2"];
    for (k, p) in ptrs.iter().enumerate() {
        p.expect(&format!("{what}: {}", NAMES[k]), layout.span(k));
    }
    assert!(
        layout.distinct(0),
        "{what}: the output layout {:?} / {:?} visits an element twice",
        layout.shape(),
        layout.strides(0)
    );
}

/// Launches a strided kernel of `file` whose arguments end with (Strided, size_t n, extra...).
///
/// # Safety
/// `ptrs` are the kernel's pointer arguments, operand k's buffer holding `layout.span(k)`
/// elements (the callers check it with [`check_layout`]).
unsafe fn strided_launch<X: GpuFloat>(
    gpu: &Gpu,
    (file, name): (&'static str, &'static str),
    ptrs: &[Arg],
    layout: &Strided,
    extra: &[Arg],
) -> Result<()> {
    let n = layout.numel();
    if n == 0 {
        return Ok(());
    }
    let args = [ptrs, &kargs![*layout, n as u64], extra].concat();
    let cfg = launch_config(gpu.grid_for(n, 256), 256, 0);
    // SAFETY: the caller's promise; the kernel visits the n indices of `layout` only.
    unsafe { gpu.launch(file, X::PRECISION, name, cfg, &args) }
}

/// `out[i] = inp[i]` for every index `i` of `layout` (operand 0 = out, 1 = inp;
/// `kernels/copy.cu`): `contiguous()`, `cat` into a slice, materialising an `expand`. `out` and
/// `inp` point at the views' first elements and must not overlap.
pub fn copy_strided<X: GpuFloat>(
    gpu: &Gpu,
    out: DevPtr<X>,
    inp: DevPtr<X>,
    layout: &Strided,
) -> Result<()> {
    check_layout("copy_strided", layout, &[out, inp]);
    // SAFETY: out and inp hold what the layout spans for them (checked above).
    unsafe {
        strided_launch::<X>(
            gpu,
            ("copy.cu", "strided_copy"),
            &kargs![out, inp],
            layout,
            &[],
        )
    }
}

/// `out[i] += inp[i]` for every index `i` of `layout` (operand 0 = out, 1 = inp;
/// `kernels/copy.cu`), summed in fp32 and rounded once: a gradient added into a strided window.
pub fn add_strided<X: GpuFloat>(
    gpu: &Gpu,
    out: DevPtr<X>,
    inp: DevPtr<X>,
    layout: &Strided,
) -> Result<()> {
    check_layout("add_strided", layout, &[out, inp]);
    // SAFETY: out and inp hold what the layout spans for them (checked above).
    unsafe {
        strided_launch::<X>(
            gpu,
            ("copy.cu", "strided_add"),
            &kargs![out, inp],
            layout,
            &[],
        )
    }
}

/// `out = op(inp)` over `inp.len` contiguous elements (`kernels/elementwise.cu`); `out` may be
/// `inp`.
pub fn unary_forward<X: GpuFloat>(
    gpu: &Gpu,
    op: UnaryOp,
    out: DevPtr<X>,
    inp: DevPtr<X>,
) -> Result<()> {
    let n = inp.len;
    out.expect("unary_forward: out", n);
    // SAFETY: out and inp hold n elements (checked above); the kernel's trailing parameters
    // after `size_t n` are (int op, float p).
    unsafe {
        elementwise_then::<X>(
            gpu,
            "unary_forward",
            n,
            &kargs![out, inp],
            &kargs![op.code(), op.param()],
        )
    }
}

/// `dx = dL/dx` of `y = op(x)` given `g = dL/dy`, over `x.len` contiguous elements, with the
/// backend's derivatives (`kernels/elementwise.cu`); `dx` may be any of the inputs.
pub fn unary_backward<X: GpuFloat>(
    gpu: &Gpu,
    op: UnaryOp,
    dx: DevPtr<X>,
    x: DevPtr<X>,
    y: DevPtr<X>,
    g: DevPtr<X>,
) -> Result<()> {
    let n = x.len;
    dx.expect("unary_backward: dx", n);
    y.expect("unary_backward: y", n);
    g.expect("unary_backward: g", n);
    // SAFETY: all four hold n elements (checked above).
    unsafe {
        elementwise_then::<X>(
            gpu,
            "unary_backward",
            n,
            &kargs![dx, x, y, g],
            &kargs![op.code(), op.param()],
        )
    }
}

/// Launches `name` of `kernels/elementwise.cu`, a grid-stride loop over `n` contiguous elements
/// with arguments `args`, then `size_t n`, then `after`; the grid is sized for 16-byte packs.
///
/// # Safety
/// Every pointer in `args` must hold at least `n` elements of the kernel's type.
unsafe fn elementwise_then<X: GpuFloat>(
    gpu: &Gpu,
    name: &'static str,
    n: usize,
    args: &[Arg],
    after: &[Arg],
) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let cfg = launch_config(packed_grid::<X>(gpu, n), 256, 0);
    let all = [args, &kargs![n as u64], after].concat();
    // SAFETY: the caller's promise; the kernel touches indices below n only.
    unsafe { gpu.launch("elementwise.cu", X::PRECISION, name, cfg, &all) }
}

/// `out[i] = a[i] op b[i]` for every index `i` of `layout` (operand 0 = out, 1 = a, 2 = b;
/// `kernels/elementwise.cu`): numpy broadcasting is stride 0 on the broadcast axes of a or b.
/// `out` is usually contiguous; any layout whose elements are distinct works.
pub fn binary<X: GpuFloat>(
    gpu: &Gpu,
    op: BinaryOp,
    out: DevPtr<X>,
    a: DevPtr<X>,
    b: DevPtr<X>,
    layout: &Strided,
) -> Result<()> {
    check_layout("binary", layout, &[out, a, b]);
    // SAFETY: the three buffers hold what the layout spans for them (checked above).
    unsafe {
        strided_launch::<X>(
            gpu,
            ("elementwise.cu", "binary"),
            &kargs![out, a, b],
            layout,
            &kargs![op.code()],
        )
    }
}

/// `out[i] = mask[i] != 0 ? value : x[i]` for every index `i` of `layout` (operand 0 = out,
/// 1 = x, 2 = mask, which usually broadcasts; `kernels/elementwise.cu`).
pub fn masked_fill<X: GpuFloat>(
    gpu: &Gpu,
    out: DevPtr<X>,
    x: DevPtr<X>,
    mask: DevPtr<X>,
    layout: &Strided,
    value: f32,
) -> Result<()> {
    check_layout("masked_fill", layout, &[out, x, mask]);
    // SAFETY: the three buffers hold what the layout spans for them (checked above).
    unsafe {
        strided_launch::<X>(
            gpu,
            ("elementwise.cu", "masked_fill"),
            &kargs![out, x, mask],
            layout,
            &kargs![value],
        )
    }
}

/// The causal mask over the last two axes `[t, s]` of the contiguous `inp` (`inp.len` elements,
/// a multiple of t·s): `out` is `inp` with every key `j > i + s − t` of query `i` set to `value`
/// (`kernels/elementwise.cu`). `out` may be `inp` (in place). Needs `s >= t >= 1`.
pub fn causal_fill<X: GpuFloat>(
    gpu: &Gpu,
    out: DevPtr<X>,
    inp: DevPtr<X>,
    t: usize,
    s: usize,
    value: f32,
) -> Result<()> {
    let n = inp.len;
    assert!(
        t >= 1 && s >= t && n.is_multiple_of(t * s),
        "causal_fill: {n} elements are not [.., t={t}, s={s}] with s >= t >= 1"
    );
    out.expect("causal_fill: out", n);
    if n == 0 {
        return Ok(());
    }
    let (ti, si) = (int(t, "t"), int(s, "s"));
    // SAFETY: out and inp hold n elements (checked above); the grid-stride loop stays below n.
    unsafe {
        gpu.launch(
            "elementwise.cu",
            X::PRECISION,
            "causal_fill",
            launch_config(gpu.grid_for(n, 256), 256, 0),
            &kargs![out, inp, ti, si, n as u64, value],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_codes_and_parameters() {
        assert_eq!(UnaryOp::Powf(2.5).param(), 2.5);
        assert_eq!(UnaryOp::Neg.param(), 0.0);
        assert_eq!(UnaryOp::MulScalar(3.0).code(), 8);
        assert_eq!(BinaryOp::Div.code(), 3);
    }
}
