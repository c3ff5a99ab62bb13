//! Launchers for cross-entropy from logits, forward and backward as two kernels
//! (`kernels/cross_entropy.cu`); the CPU arm is `crate::tensor::cpu::cross_entropy`. The mean
//! loss is then [`super::reduce::sum_to_scalar`] over the per-row losses with scale 1 / count.
//!
//! Targets are `i32` on the device: the CPU's `u32` targets with an ignore index map to `-1`
//! where `t == ignore` and `t as i32` elsewhere ([`device_targets`]).

use super::device::launch_config;
use super::ops::int;
use super::{DevPtr, Gpu, GpuFloat};
use crate::kargs;
use anyhow::Result;

/// Threads per block (one block per row, grid-stride over rows).
const THREADS: u32 = 256;

/// The logits and targets of a cross-entropy: `logits` is `[rows, cols]`, `targets` `[rows]`
/// (`< 0`: ignored; `>= cols`: a bug upstream, NaN).
#[derive(Clone, Copy, Debug)]
pub struct Logits<X> {
    pub logits: DevPtr<X>,
    pub targets: DevPtr<i32>,
    pub rows: usize,
    pub cols: usize,
}

impl<X> Logits<X> {
    fn check(&self, what: &str) -> (u64, i32) {
        self.logits.expect(what, self.rows * self.cols);
        self.targets.expect(what, self.rows);
        (self.rows as u64, int(self.cols, "cols"))
    }
}

/// The CPU's targets as the kernels take them: `-1` where `t == ignore`, else `t`.
pub fn device_targets(targets: &[u32], ignore: Option<u32>) -> Vec<i32> {
    targets
        .iter()
        .map(|&t| {
            if Some(t) == ignore {
                -1
            } else {
                i32::try_from(t).unwrap_or(i32::MAX)
            }
        })
        .collect()
}

/// Per row: `lse[r] = log Σ_j exp(x[r, j])` and `losses[r] = lse[r] − x[r, t]` (0 for an
/// ignored row, NaN for a target `>= cols`), both fp32 (`kernels/cross_entropy.cu`).
pub fn cross_entropy_forward<X: GpuFloat>(
    gpu: &Gpu,
    losses: DevPtr<f32>,
    lse: DevPtr<f32>,
    x: Logits<X>,
) -> Result<()> {
    let (rows, cols) = x.check("cross_entropy_forward: logits/targets");
    losses.expect("cross_entropy_forward: losses", x.rows);
    lse.expect("cross_entropy_forward: lse", x.rows);
    if x.rows == 0 || x.cols == 0 {
        return Ok(());
    }
    let (logits, targets) = (x.logits, x.targets);
    // SAFETY: logits hold rows·cols elements, targets, losses and lse rows (checked above); the
    // kernel reads a row's target column only when it is within 0..cols.
    unsafe {
        gpu.launch(
            "cross_entropy.cu",
            X::PRECISION,
            "cross_entropy_forward",
            launch_config(gpu.grid_for(x.rows, 1), THREADS, 0),
            &kargs![losses, lse, logits, targets, rows, cols],
        )
    }
}

/// `dlogits[r, j] = s · exp(x[r, j] − lse[r]) − (j == t ? s : 0)` with `s = (*dloss) · scale`,
/// zero rows where ignored (NaN rows where `t >= cols`) (`kernels/cross_entropy.cu`). `dloss`
/// is one fp32 value on the device (the upstream gradient of the mean loss), `scale` the host's
/// 1 / count. `dlogits` may be `x.logits` itself (in place).
pub fn cross_entropy_backward<X: GpuFloat>(
    gpu: &Gpu,
    dlogits: DevPtr<X>,
    x: Logits<X>,
    lse: DevPtr<f32>,
    dloss: DevPtr<f32>,
    scale: f32,
) -> Result<()> {
    let (rows, cols) = x.check("cross_entropy_backward: logits/targets");
    dlogits.expect("cross_entropy_backward: dlogits", x.rows * x.cols);
    lse.expect("cross_entropy_backward: lse", x.rows);
    dloss.expect("cross_entropy_backward: dloss", 1);
    if x.rows == 0 || x.cols == 0 {
        return Ok(());
    }
    let (logits, targets) = (x.logits, x.targets);
    // SAFETY: dlogits and logits hold rows·cols elements, lse and targets rows, dloss 1
    // (checked above); each element is read and written by one thread, so in place is fine.
    unsafe {
        gpu.launch(
            "cross_entropy.cu",
            X::PRECISION,
            "cross_entropy_backward",
            launch_config(gpu.grid_for(x.rows, 1), THREADS, 0),
            &kargs![dlogits, logits, lse, targets, dloss, scale, rows, cols],
        )
    }
}
