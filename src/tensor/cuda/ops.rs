//! Host-side launchers, one per kernel: check the sizes, pick the compiled function for the
//! storage type, choose the launch shape, launch. Each says which `kernels/*.cu` it runs.

use super::device::{Arg, launch_config};
use super::{DevPtr, Gpu, GpuFloat};
use crate::kargs;
use anyhow::Result;
use cudarc::driver::LaunchConfig;

/// `out[i] = inp[i]` converted to the working precision (`kernels/cast.cu`).
pub fn cast_to_floatx<X: GpuFloat>(gpu: &Gpu, out: DevPtr<X>, inp: DevPtr<f32>) -> Result<()> {
    let n = inp.len;
    out.expect("cast_to_floatx: out", n);
    // SAFETY: `out` and `inp` hold at least n elements (checked above), and the kernel's
    // grid-stride loop touches indices below n only.
    unsafe {
        gpu.launch(
            "cast.cu",
            X::PRECISION,
            "cast_to_floatx",
            launch_config(gpu.grid_for(n, 256), 256, 0),
            &kargs![out, inp, n as u64],
        )
    }?;
    Ok(())
}

/// `out[i] = inp[i]` as fp32 (`kernels/cast.cu`).
pub fn cast_to_float<X: GpuFloat>(gpu: &Gpu, out: DevPtr<f32>, inp: DevPtr<X>) -> Result<()> {
    let n = inp.len;
    out.expect("cast_to_float: out", n);
    // SAFETY: as in `cast_to_floatx`.
    unsafe {
        gpu.launch(
            "cast.cu",
            X::PRECISION,
            "cast_to_float",
            launch_config(gpu.grid_for(n, 256), 256, 0),
            &kargs![out, inp, n as u64],
        )
    }?;
    Ok(())
}

/// A shape argument as the kernels' `int`. Panics if it does not fit.
pub(crate) fn int(x: usize, what: &str) -> i32 {
    i32::try_from(x).unwrap_or_else(|_| panic!("{what} = {x} does not fit in a kernel's int"))
}

/// Launch shape of the column-sum kernels (`kernels/colsum.cuh`): blocks of 1024 threads, one
/// per 32 columns and row chunk, with enough chunks for about two blocks per SM, each chunk at
/// least 32 rows (one per warp), and chunks × cols within the kernels' room for partial sums.
pub(crate) fn colsum_config(gpu: &Gpu, rows: usize, cols: usize) -> LaunchConfig {
    const CAPACITY: usize = 1 << 20; // COLSUM_CAPACITY in kernels/colsum.cuh
    assert!(
        cols <= CAPACITY,
        "column sums over {cols} columns: at most {CAPACITY}"
    );
    let tiles = cols.div_ceil(32);
    let chunks = (2 * gpu.sms as usize)
        .div_ceil(tiles)
        .min(rows.div_ceil(32))
        .min(CAPACITY / cols)
        .max(1);
    LaunchConfig {
        grid_dim: (tiles as u32, chunks as u32, 1),
        block_dim: (1024, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Grid for the element-wise kernels, which move 16 bytes (a `Vec<PACK>`) per thread and step.
pub(crate) fn packed_grid<X: GpuFloat>(gpu: &Gpu, n: usize) -> u32 {
    gpu.grid_for(n.div_ceil(16 / std::mem::size_of::<X>()), 256)
}

/// The shape of a LayerNorm: `n` rows of `c` values, and the `eps` added to the variance
/// (GPT-2: 1e-5; the backward pass does not use it: it reads the saved `rstd`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNormShape {
    pub n: usize,
    pub c: usize,
    pub eps: f32,
}

/// The per-row statistics a LayerNorm forward pass saves for its backward pass (fp32, `n` each).
#[derive(Clone, Copy, Debug)]
pub struct RowStats {
    pub mean: DevPtr<f32>,
    pub rstd: DevPtr<f32>,
}

/// The gradients a LayerNorm backward pass adds into.
#[derive(Clone, Copy, Debug)]
pub struct LayerNormGrads<X> {
    /// `[n, c]`, must not be the `dout` it is computed from.
    pub dinp: DevPtr<X>,
    /// `[c]`.
    pub dweight: DevPtr<X>,
    /// `[c]`.
    pub dbias: DevPtr<X>,
}

/// LayerNorm of `n` rows of `c` (`kernels/layernorm.cu`), as on the CPU:
/// `out = (inp − mean)·rstd·weight + bias` with `rstd = 1/√(var + eps)`, saving `mean` and
/// `rstd` (fp32) per row in `stats`.
pub fn layernorm_forward<X: GpuFloat>(
    gpu: &Gpu,
    out: DevPtr<X>,
    stats: RowStats,
    inp: DevPtr<X>,
    weight: DevPtr<X>,
    bias: DevPtr<X>,
    shape: LayerNormShape,
) -> Result<()> {
    let LayerNormShape { n, c, eps } = shape;
    out.expect("layernorm_forward: out", n * c);
    inp.expect("layernorm_forward: inp", n * c);
    stats.mean.expect("layernorm_forward: mean", n);
    stats.rstd.expect("layernorm_forward: rstd", n);
    weight.expect("layernorm_forward: weight", c);
    bias.expect("layernorm_forward: bias", c);
    if n == 0 || c == 0 {
        return Ok(());
    }
    let (ni, ci) = (int(n, "n"), int(c, "c"));
    let (mean, rstd) = (stats.mean, stats.rstd);
    // SAFETY: sizes checked above; one warp per row, rows past n return at once.
    unsafe {
        gpu.launch(
            "layernorm.cu",
            X::PRECISION,
            "layernorm_forward",
            launch_config(n.div_ceil(8) as u32, 256, 0),
            &kargs![out, mean, rstd, inp, weight, bias, ni, ci, eps],
        )
    }?;
    Ok(())
}

/// LayerNorm backward (`kernels/layernorm.cu`): `dinp += …`, `dweight += Σ_rows dout·x̂`,
/// `dbias += Σ_rows dout`, from the `mean` and `rstd` the forward pass saved. Deterministic.
/// `grads.dinp` must not be `dout` (the second kernel reads dout after the first has written
/// dinp).
pub fn layernorm_backward<X: GpuFloat>(
    gpu: &Gpu,
    grads: LayerNormGrads<X>,
    dout: DevPtr<X>,
    inp: DevPtr<X>,
    weight: DevPtr<X>,
    stats: RowStats,
    shape: LayerNormShape,
) -> Result<()> {
    let LayerNormShape { n, c, .. } = shape;
    let LayerNormGrads {
        dinp,
        dweight,
        dbias,
    } = grads;
    let RowStats { mean, rstd } = stats;
    assert_ne!(
        dinp.addr, dout.addr,
        "layernorm_backward: dinp must not be dout"
    );
    dinp.expect("layernorm_backward: dinp", n * c);
    dout.expect("layernorm_backward: dout", n * c);
    inp.expect("layernorm_backward: inp", n * c);
    dweight.expect("layernorm_backward: dweight", c);
    dbias.expect("layernorm_backward: dbias", c);
    weight.expect("layernorm_backward: weight", c);
    mean.expect("layernorm_backward: mean", n);
    rstd.expect("layernorm_backward: rstd", n);
    if n == 0 || c == 0 {
        return Ok(());
    }
    let (ni, ci) = (int(n, "n"), int(c, "c"));

    // SAFETY: sizes checked above; one warp per row, rows past n return at once.
    unsafe {
        gpu.launch(
            "layernorm.cu",
            X::PRECISION,
            "layernorm_backward_dinp",
            launch_config(n.div_ceil(8) as u32, 256, 0),
            &kargs![dinp, dout, inp, weight, mean, rstd, ni, ci],
        )
    }?;

    // SAFETY: sizes checked above; one block per 32 columns and row chunk, columns past c and
    // rows past n do nothing.
    unsafe {
        gpu.launch(
            "layernorm.cu",
            X::PRECISION,
            "layernorm_backward_params",
            colsum_config(gpu, n, c),
            &kargs![dweight, dbias, dout, inp, mean, rstd, ni, ci],
        )
    }?;
    Ok(())
}

/// Launches `name` of `kernels/{file}`, a grid-stride loop over `n` elements whose last
/// parameter is `size_t n`, after `args`; the grid is sized for the kernel's 16-byte packs.
///
/// # Safety
/// Every pointer in `args` must hold at least `n` elements of the kernel's type.
pub(crate) unsafe fn elementwise<X: GpuFloat>(
    gpu: &Gpu,
    file: &'static str,
    name: &'static str,
    n: usize,
    args: &[Arg],
) -> Result<()> {
    let all = [args, &kargs![n as u64]].concat();
    let cfg = launch_config(packed_grid::<X>(gpu, n), 256, 0);
    // SAFETY: the caller's promise; the kernel touches indices below n only.
    unsafe { gpu.launch(file, X::PRECISION, name, cfg, &all) }
}

/// `out = gelu(inp)`, tanh form (`kernels/gelu.cu`), over `inp.len` elements.
pub fn gelu_forward<X: GpuFloat>(gpu: &Gpu, out: DevPtr<X>, inp: DevPtr<X>) -> Result<()> {
    let n = inp.len;
    out.expect("gelu_forward: out", n);
    // SAFETY: out and inp hold n elements (checked above).
    unsafe { elementwise::<X>(gpu, "gelu.cu", "gelu_forward", n, &kargs![out, inp]) }
}

/// `dinp = dout · gelu'(inp)` (`kernels/gelu.cu`), overwriting dinp, over `inp.len` elements.
/// `dinp` may be `dout` itself.
pub fn gelu_backward<X: GpuFloat>(
    gpu: &Gpu,
    dinp: DevPtr<X>,
    inp: DevPtr<X>,
    dout: DevPtr<X>,
) -> Result<()> {
    let n = inp.len;
    dinp.expect("gelu_backward: dinp", n);
    dout.expect("gelu_backward: dout", n);
    // SAFETY: all three hold n elements (checked above).
    unsafe { elementwise::<X>(gpu, "gelu.cu", "gelu_backward", n, &kargs![dinp, inp, dout]) }
}

/// `dst = value` over all of `dst` (`kernels/fill.cu`).
pub fn fill<X: GpuFloat>(gpu: &Gpu, dst: DevPtr<X>, value: f32) -> Result<()> {
    let n = dst.len;
    // SAFETY: n is dst's own length.
    unsafe { elementwise::<X>(gpu, "fill.cu", "fill", n, &kargs![dst, value]) }
}

/// The hyper-parameters of one AdamW step on one tensor (see `src/train/optim.rs`).
#[derive(Clone, Copy, Debug)]
pub struct AdamwArgs {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// 0 for tensors without decay (biases, LayerNorm).
    pub weight_decay: f32,
    /// Every gradient is multiplied by this first (the clipping factor; 1 when not clipping).
    pub grad_scale: f32,
    /// The step being taken, from 1 (for the bias corrections).
    pub step: u32,
}

/// One AdamW step over one parameter tensor of `params.len` elements (`kernels/adamw.cu`):
/// updates `master` (fp32), the moments `m` and `v`, and writes `params = floatX(master)`.
pub fn adamw_update<X: GpuFloat>(
    gpu: &Gpu,
    params: DevPtr<X>,
    master: DevPtr<f32>,
    grads: DevPtr<X>,
    m: DevPtr<f32>,
    v: DevPtr<f32>,
    h: &AdamwArgs,
) -> Result<()> {
    let n = params.len;
    master.expect("adamw_update: master", n);
    grads.expect("adamw_update: grads", n);
    m.expect("adamw_update: m", n);
    v.expect("adamw_update: v", n);
    assert!(h.step >= 1, "adamw_update: step counts from 1");
    // The same f32 arithmetic as the CPU's adamw_step.
    let bc1 = 1.0 - h.beta1.powi(h.step as i32);
    let bc2 = 1.0 - h.beta2.powi(h.step as i32);
    // SAFETY: all five buffers hold n elements; the grid-stride loop stays below n.
    unsafe {
        gpu.launch(
            "adamw.cu",
            X::PRECISION,
            "adamw_update",
            launch_config(gpu.grid_for(n, 256), 256, 0),
            &kargs![
                params,
                master,
                grads,
                m,
                v,
                n as u64,
                h.lr,
                h.beta1,
                h.beta2,
                bc1,
                bc2,
                h.eps,
                h.weight_decay,
                h.grad_scale
            ],
        )
    }?;
    Ok(())
}

/// `out[0] += Σ grads²` over `grads.len` elements, in fp32 (`kernels/norm.cu`). Deterministic
/// (for a given GPU: the number of blocks depends on its number of SMs).
pub fn grad_norm_squared<X: GpuFloat>(gpu: &Gpu, out: DevPtr<f32>, grads: DevPtr<X>) -> Result<()> {
    out.expect("grad_norm_squared: out", 1);
    let n = grads.len;
    let grid = packed_grid::<X>(gpu, n).min(4 * gpu.sms).min(1024); // NORM_MAX_BLOCKS
    // SAFETY: out holds 1 element, grads n; the grid-stride loops stay below n.
    unsafe {
        gpu.launch(
            "norm.cu",
            X::PRECISION,
            "grad_norm_squared",
            launch_config(grid, 256, 0),
            &kargs![out, grads, n as u64],
        )
    }?;
    Ok(())
}
