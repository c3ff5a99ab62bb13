//! Launchers for softmax and log-softmax over the last axis and the causal attention softmax,
//! forward and backward (`kernels/softmax.cu`); the CPU arms are `crate::tensor::cpu::softmax`.

use super::device::launch_config;
use super::ops::int;
use super::{DevPtr, Gpu, GpuFloat};
use crate::kargs;
use anyhow::Result;
use cudarc::driver::LaunchConfig;

/// `rows` contiguous rows of `cols` values (the last axis of a contiguous tensor is `cols`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rows {
    pub rows: usize,
    pub cols: usize,
}

impl Rows {
    /// A contiguous tensor of `shape` as rows of its last axis.
    pub fn of(shape: &[usize]) -> Rows {
        let cols = shape.last().copied().unwrap_or(1);
        let rows = shape
            .iter()
            .product::<usize>()
            .checked_div(cols)
            .unwrap_or(0);
        Rows { rows, cols }
    }

    /// Elements: rows · cols.
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One block per row (grid-stride over rows): about 4 values per thread, 32 to 512 threads.
pub(crate) fn row_config(gpu: &Gpu, r: Rows) -> LaunchConfig {
    let threads = r.cols.div_ceil(4).next_multiple_of(32).clamp(32, 512);
    launch_config(gpu.grid_for(r.rows, 1), threads as u32, 0)
}

/// `out = softmax(inp)` (or `log_softmax` when `log`) over each row (`kernels/softmax.cu`);
/// `out` may be `inp`.
pub fn softmax_forward<X: GpuFloat>(
    gpu: &Gpu,
    out: DevPtr<X>,
    inp: DevPtr<X>,
    shape: Rows,
    log: bool,
) -> Result<()> {
    out.expect("softmax_forward: out", shape.len());
    inp.expect("softmax_forward: inp", shape.len());
    if shape.is_empty() {
        return Ok(());
    }
    let (rows, cols) = (shape.rows as u64, int(shape.cols, "cols"));
    // SAFETY: out and inp hold rows·cols elements (checked above); block r touches row r only.
    unsafe {
        gpu.launch(
            "softmax.cu",
            X::PRECISION,
            "softmax_forward",
            row_config(gpu, shape),
            &kargs![out, inp, rows, cols, log as i32],
        )
    }
}

/// The gradient of [`softmax_forward`] from its output `y` and `g = dL/dy`:
/// `dx = y ⊙ (g − Σ g⊙y)`, or for log-softmax `dx = g − exp(y) · Σ g` (`kernels/softmax.cu`);
/// `dx` may be `g`.
pub fn softmax_backward<X: GpuFloat>(
    gpu: &Gpu,
    dx: DevPtr<X>,
    y: DevPtr<X>,
    g: DevPtr<X>,
    shape: Rows,
    log: bool,
) -> Result<()> {
    dx.expect("softmax_backward: dx", shape.len());
    y.expect("softmax_backward: y", shape.len());
    g.expect("softmax_backward: g", shape.len());
    if shape.is_empty() {
        return Ok(());
    }
    let (rows, cols) = (shape.rows as u64, int(shape.cols, "cols"));
    // SAFETY: the three buffers hold rows·cols elements (checked above); block r touches row r.
    unsafe {
        gpu.launch(
            "softmax.cu",
            X::PRECISION,
            "softmax_backward",
            row_config(gpu, shape),
            &kargs![dx, y, g, rows, cols, log as i32],
        )
    }
}

/// The shape of a causal softmax: `rows` rows of `s` keys, rows being `[.., t]` queries
/// (`rows` a multiple of `t`), `s >= t`: query `i` sees keys `j <= i + s − t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Causal {
    pub rows: usize,
    pub t: usize,
    pub s: usize,
}

impl Causal {
    /// A contiguous tensor of `shape` (`[.., t, s]`, at least 2 axes).
    pub fn of(shape: &[usize]) -> Causal {
        let nd = shape.len();
        assert!(
            nd >= 2,
            "causal softmax: needs at least 2 axes, got {shape:?}"
        );
        let (t, s) = (shape[nd - 2], shape[nd - 1]);
        Causal {
            rows: shape[..nd - 1].iter().product(),
            t,
            s,
        }
    }

    fn check(&self, what: &str) -> (u64, i32, i32) {
        let Causal { rows, t, s } = *self;
        assert!(
            t >= 1 && s >= t && rows.is_multiple_of(t),
            "{what}: {rows} rows of {s} keys are not [.., t={t}, s={s}] with s >= t >= 1"
        );
        (rows as u64, int(t, "t"), int(s, "s"))
    }
}

/// `y = softmax(scale·x)` over the keys each query may see, 0 after them (`kernels/softmax.cu`,
/// as `cpu::softmax::causal_softmax`); `out` may be `inp`.
pub fn causal_softmax_forward<X: GpuFloat>(
    gpu: &Gpu,
    out: DevPtr<X>,
    inp: DevPtr<X>,
    shape: Causal,
    scale: f32,
) -> Result<()> {
    let (rows, t, s) = shape.check("causal_softmax_forward");
    let len = shape.rows * shape.s;
    out.expect("causal_softmax_forward: out", len);
    inp.expect("causal_softmax_forward: inp", len);
    if len == 0 {
        return Ok(());
    }
    let cfg = row_config(gpu, Rows::of(&[shape.rows, shape.s]));
    // SAFETY: out and inp hold rows·s elements (checked above); block r touches row r only.
    unsafe {
        gpu.launch(
            "softmax.cu",
            X::PRECISION,
            "causal_softmax_forward",
            cfg,
            &kargs![out, inp, rows, t, s, scale],
        )
    }
}

/// The gradient of [`causal_softmax_forward`] from its output `y`:
/// `dx = scale · y ⊙ (g − Σ g⊙y)` on the visible keys, 0 after (`kernels/softmax.cu`); `dx` may
/// be `g`.
pub fn causal_softmax_backward<X: GpuFloat>(
    gpu: &Gpu,
    dx: DevPtr<X>,
    y: DevPtr<X>,
    g: DevPtr<X>,
    shape: Causal,
    scale: f32,
) -> Result<()> {
    let (rows, t, s) = shape.check("causal_softmax_backward");
    let len = shape.rows * shape.s;
    dx.expect("causal_softmax_backward: dx", len);
    y.expect("causal_softmax_backward: y", len);
    g.expect("causal_softmax_backward: g", len);
    if len == 0 {
        return Ok(());
    }
    let cfg = row_config(gpu, Rows::of(&[shape.rows, shape.s]));
    // SAFETY: the three buffers hold rows·s elements (checked above); block r touches row r.
    unsafe {
        gpu.launch(
            "softmax.cu",
            X::PRECISION,
            "causal_softmax_backward",
            cfg,
            &kargs![dx, y, g, rows, t, s, scale],
        )
    }
}
