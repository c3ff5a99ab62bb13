//! Launchers for the reductions over one axis and the sum to one scalar (`kernels/reduce.cu`);
//! the CPU arms are `crate::tensor::cpu::reduce` (and the sum of losses in
//! `crate::tensor::backend::cross_entropy`). All deterministic: no float atomics.

use super::device::launch_config;
use super::ops::{colsum_config, int};
use super::{DevPtr, Gpu, GpuFloat};
use crate::kargs;
use anyhow::Result;

/// A contiguous tensor seen as `[outer, n, inner]` around the axis being reduced (of size `n`);
/// the result is `[outer, inner]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Axis {
    pub outer: usize,
    pub n: usize,
    pub inner: usize,
}

impl Axis {
    /// The view of `shape` around axis `a`.
    pub fn of(shape: &[usize], a: usize) -> Axis {
        Axis {
            outer: shape[..a].iter().product(),
            n: shape[a],
            inner: shape[a + 1..].iter().product(),
        }
    }

    fn len(&self) -> usize {
        self.outer * self.n * self.inner
    }

    fn lanes(&self) -> usize {
        self.outer * self.inner
    }

    fn args(&self) -> [u64; 3] {
        [self.outer, self.n, self.inner].map(|x| x as u64)
    }
}

/// Rows at least this long, when there are few of them, get a block each instead of a warp.
const LONG_ROW: usize = 8192;
/// Rows at least this many (with one outer slice) use the multi-block column sums.
const MANY_ROWS: usize = 64;

/// `out[o, i] = Σ_j inp[o, j, i]` (`kernels/reduce.cu`), fp32 sums, `out` overwritten. Picks a
/// kernel by shape: per row (inner = 1: a warp per row, or a block per row for few long rows),
/// column sums over many blocks (outer = 1, many rows), else one thread per output. The choice
/// depends only on the shape and the GPU, so a result is the same bits every run.
pub fn sum_axis<X: GpuFloat>(gpu: &Gpu, out: DevPtr<X>, inp: DevPtr<X>, axis: Axis) -> Result<()> {
    inp.expect("sum_axis: inp", axis.len());
    out.expect("sum_axis: out", axis.lanes());
    if axis.lanes() == 0 {
        return Ok(());
    }
    let Axis { outer, n, inner } = axis;
    let sms = gpu.sms as usize;
    let (name, cfg, args) = if inner == 1 {
        let (rows, n64) = (outer as u64, n as u64);
        if outer < 2 * sms && n >= LONG_ROW {
            let cfg = launch_config(outer as u32, 256, 0);
            ("sum_rows_block", cfg, kargs![out, inp, rows, n64].to_vec())
        } else {
            let cfg = launch_config(gpu.grid_for(outer, 8), 256, 0);
            ("sum_rows_warp", cfg, kargs![out, inp, rows, n64].to_vec())
        }
    } else if outer == 1 && n >= MANY_ROWS {
        let cfg = colsum_config(gpu, n, inner);
        let (ni, ci) = (int(n, "rows"), int(inner, "columns"));
        ("sum_columns", cfg, kargs![out, inp, ni, ci].to_vec())
    } else {
        let [o, nn, i] = axis.args();
        let cfg = launch_config(gpu.grid_for(axis.lanes(), 256), 256, 0);
        ("sum_axis", cfg, kargs![out, inp, o, nn, i].to_vec())
    };
    // SAFETY: inp holds outer·n·inner elements and out outer·inner (checked above); every kernel
    // reads inside [outer, n, inner] and writes each output once (rows / columns / lanes past
    // the end do nothing).
    unsafe { gpu.launch("reduce.cu", X::PRECISION, name, cfg, &args) }
}

/// `out[o, i] = max_j inp[o, j, i]` (`kernels/reduce.cu`; NaN-free inputs, as on the CPU);
/// `out` overwritten. Needs `n >= 1`.
pub fn max_axis<X: GpuFloat>(gpu: &Gpu, out: DevPtr<X>, inp: DevPtr<X>, axis: Axis) -> Result<()> {
    assert!(axis.n > 0, "max_axis: cannot reduce an empty axis");
    inp.expect("max_axis: inp", axis.len());
    out.expect("max_axis: out", axis.lanes());
    if axis.lanes() == 0 {
        return Ok(());
    }
    let (name, cfg, args) = if axis.inner == 1 {
        let cfg = launch_config(gpu.grid_for(axis.outer, 8), 256, 0);
        let (rows, n64) = (axis.outer as u64, axis.n as u64);
        ("max_rows", cfg, kargs![out, inp, rows, n64].to_vec())
    } else {
        let [o, n, i] = axis.args();
        let cfg = launch_config(gpu.grid_for(axis.lanes(), 256), 256, 0);
        ("max_axis", cfg, kargs![out, inp, o, n, i].to_vec())
    };
    // SAFETY: sizes checked above; the kernels read inside [outer, n, inner] and write each
    // output once.
    unsafe { gpu.launch("reduce.cu", X::PRECISION, name, cfg, &args) }
}

/// The gradient of `y = max_axis(x)`: `dx[o, j, i] = g[o, i]` at the first `j` where
/// `x[o, j, i] == y[o, i]`, 0 elsewhere (`kernels/reduce.cu`, as `cpu::reduce`); `dx`
/// overwritten.
pub fn max_axis_backward<X: GpuFloat>(
    gpu: &Gpu,
    dx: DevPtr<X>,
    x: DevPtr<X>,
    y: DevPtr<X>,
    g: DevPtr<X>,
    axis: Axis,
) -> Result<()> {
    dx.expect("max_axis_backward: dx", axis.len());
    x.expect("max_axis_backward: x", axis.len());
    y.expect("max_axis_backward: y", axis.lanes());
    g.expect("max_axis_backward: g", axis.lanes());
    if axis.len() == 0 {
        return Ok(());
    }
    let [o, n, i] = axis.args();
    let cfg = launch_config(gpu.grid_for(axis.lanes(), 256), 256, 0);
    // SAFETY: sizes checked above; one thread per (o, i) lane reads and writes inside it.
    unsafe {
        gpu.launch(
            "reduce.cu",
            X::PRECISION,
            "max_axis_backward",
            cfg,
            &kargs![dx, x, y, g, o, n, i],
        )
    }
}

/// `out[0] = scale · Σ inp` over `inp.len` fp32 values (`kernels/reduce.cu`), deterministic,
/// in one block: the mean loss from per-row losses (`scale` = 1 / count), or a total from
/// per-tensor partial sums (e.g. of [`super::ops::grad_norm_squared`] into one slot per
/// tensor). For a sum over a whole large tensor use [`sum_axis`] or `grad_norm_squared`.
pub fn sum_to_scalar(gpu: &Gpu, out: DevPtr<f32>, inp: DevPtr<f32>, scale: f32) -> Result<()> {
    out.expect("sum_to_scalar: out", 1);
    let n = inp.len as u64;
    // SAFETY: out holds 1 element and inp n; the block's loop stays below n.
    unsafe {
        gpu.launch(
            "reduce.cu",
            f32::PRECISION,
            "sum_to_scalar",
            launch_config(1, 1024, 0),
            &kargs![out, inp, n, scale],
        )
    }
}
