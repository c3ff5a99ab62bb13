//! Host-side launchers, one per kernel: check the sizes, pick the compiled function for the
//! storage type, choose the launch shape, launch. Each says which `kernels/*.cu` it runs.

use super::device::launch_config;
use super::{DevPtr, Gpu, GpuFloat};
use anyhow::Result;
use cudarc::driver::PushKernelArg;

/// `out[i] = inp[i]` converted to the working precision (`kernels/cast.cu`).
pub fn cast_to_floatx<X: GpuFloat>(gpu: &Gpu, out: DevPtr<X>, inp: DevPtr<f32>) -> Result<()> {
    let n = inp.len;
    out.expect("cast_to_floatx: out", n);
    let f = gpu.function("cast.cu", X::PRECISION, "cast_to_floatx")?;
    let (o, i, n64) = (out.addr, inp.addr, n as u64);
    let mut b = gpu.stream.launch_builder(&f);
    b.arg(&o).arg(&i).arg(&n64);
    // SAFETY: `out` and `inp` hold at least n elements (checked above), and the kernel's
    // grid-stride loop touches indices below n only.
    unsafe { b.launch(launch_config(gpu.grid_for(n, 256), 256, 0)) }?;
    Ok(())
}

/// `out[i] = inp[i]` as fp32 (`kernels/cast.cu`).
pub fn cast_to_float<X: GpuFloat>(gpu: &Gpu, out: DevPtr<f32>, inp: DevPtr<X>) -> Result<()> {
    let n = inp.len;
    out.expect("cast_to_float: out", n);
    let f = gpu.function("cast.cu", X::PRECISION, "cast_to_float")?;
    let (o, i, n64) = (out.addr, inp.addr, n as u64);
    let mut b = gpu.stream.launch_builder(&f);
    b.arg(&o).arg(&i).arg(&n64);
    // SAFETY: as in `cast_to_floatx`.
    unsafe { b.launch(launch_config(gpu.grid_for(n, 256), 256, 0)) }?;
    Ok(())
}
