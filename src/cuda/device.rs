//! Opening the GPU, caching compiled kernels, and choosing between CPU and GPU.
//!
//! cudarc loads `libcuda` lazily and panics if it is missing, so [`Gpu::open`] first asks
//! whether the library can be loaded at all, and turns every failure into a plain error. The
//! binaries call [`select`], which falls back to the CPU with one line on stderr.

use super::{Precision, sources};
use anyhow::{Context, Result, anyhow, bail};
use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream, sys};
use cudarc::nvrtc::Ptx;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// `--device`: where the numbers are computed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceArg {
    /// The CPU kernels of `crate::cpu`.
    Cpu,
    /// The first CUDA GPU; falls back to the CPU, with a message, when there is none.
    Cuda,
    /// The GPU when there is one, else the CPU.
    #[default]
    Auto,
}

/// One open GPU: its context, the stream every launch goes to, and the kernels compiled so far.
pub struct Gpu {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    /// The device's name, e.g. "NVIDIA H200".
    pub name: String,
    /// Compute capability as one number: 90 for sm_90 (Hopper), 80 for sm_80 (Ampere).
    pub arch: u32,
    /// Number of streaming multiprocessors (132 on an H200).
    pub sms: u32,
    modules: Mutex<HashMap<(&'static str, Precision), Arc<CudaModule>>>,
    functions: Mutex<HashMap<(&'static str, Precision, &'static str), CudaFunction>>,
    blas: OnceLock<std::result::Result<CudaBlas, String>>,
}

/// Whether the CUDA driver library (`libcuda.so`) can be loaded. Safe to call anywhere.
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the library by its usual names; no CUDA call is made.
    unsafe { sys::is_culib_present() }
}

impl Gpu {
    /// Opens GPU `ordinal`. Errors (no driver, no device, NVRTC missing) are one line each.
    pub fn open(ordinal: usize) -> Result<Arc<Gpu>> {
        if !driver_present() {
            bail!("no CUDA driver (libcuda.so not found)");
        }
        let count = CudaContext::device_count().map_err(|e| anyhow!("CUDA driver: {e}"))?;
        if count as usize <= ordinal {
            bail!("no CUDA device {ordinal} ({count} found)");
        }
        super::nvrtc::get().map_err(|e| anyhow!(e))?;
        let ctx = CudaContext::new(ordinal).map_err(|e| anyhow!("opening CUDA device: {e}"))?;
        let (major, minor) = ctx.compute_capability().map_err(|e| anyhow!("{e}"))?;
        let sms = ctx
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(|e| anyhow!("{e}"))?;
        let name = ctx.name().unwrap_or_else(|_| "CUDA device".into());
        // One stream, in order: cudarc's per-buffer event tracking (for many streams) is
        // pure overhead here.
        // SAFETY: every buffer of this context is used from this one stream only.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        Ok(Arc::new(Gpu {
            ctx,
            stream,
            name,
            arch: (major * 10 + minor) as u32,
            sms: sms as u32,
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
            blas: OnceLock::new(),
        }))
    }

    /// The module compiled from `kernels/{file}` with `precision`, compiled on first use.
    pub fn module(&self, file: &'static str, precision: Precision) -> Result<Arc<CudaModule>> {
        let mut cache = self.modules.lock().unwrap();
        if let Some(m) = cache.get(&(file, precision)) {
            return Ok(m.clone());
        }
        let compiled =
            sources::compile(file, self.arch, precision, false).map_err(|e| anyhow!(e))?;
        let module = self
            .ctx
            .load_module(Ptx::from_binary(compiled.cubin))
            .with_context(|| format!("loading kernels/{file}"))?;
        cache.insert((file, precision), module.clone());
        Ok(module)
    }

    /// The kernel `name` from `kernels/{file}` (looked up once, then cached).
    pub fn function(
        &self,
        file: &'static str,
        precision: Precision,
        name: &'static str,
    ) -> Result<CudaFunction> {
        let key = (file, precision, name);
        if let Some(f) = self.functions.lock().unwrap().get(&key) {
            return Ok(f.clone());
        }
        let f = self
            .module(file, precision)?
            .load_function(name)
            .with_context(|| format!("kernel {name} in kernels/{file}"))?;
        self.functions.lock().unwrap().insert(key, f.clone());
        Ok(f)
    }

    /// A grid for a grid-stride loop over `n` elements with `block` threads per block: enough
    /// blocks to cover `n`, at most 32 per multiprocessor.
    pub fn grid_for(&self, n: usize, block: u32) -> u32 {
        let want = n.div_ceil(block as usize).max(1);
        want.min(self.sms as usize * 32) as u32
    }

    /// The cuBLAS handle (the reference our matmuls are timed against), created on first use.
    pub fn blas(&self) -> Result<&CudaBlas> {
        let r = self.blas.get_or_init(|| {
            // SAFETY: only tries to dlopen libcublas by its usual names.
            if !unsafe { cudarc::cublas::sys::is_culib_present() } {
                return Err("cuBLAS not found (libcublas.so)".to_string());
            }
            CudaBlas::new(self.stream.clone()).map_err(|e| format!("cuBLAS: {e}"))
        });
        r.as_ref().map_err(|e| anyhow!(e.clone()))
    }

    /// Waits until all launched work is done; reports any error a kernel raised.
    pub fn sync(&self) -> Result<()> {
        self.stream.synchronize().context("CUDA")
    }

    /// One line describing the device, e.g. "NVIDIA H200 (sm_90, 132 SMs)".
    pub fn describe(&self) -> String {
        format!("{} (sm_{}, {} SMs)", self.name, self.arch, self.sms)
    }
}

/// Resolves `--device`: `Some(gpu)` to run on the GPU, `None` for the CPU. When a GPU was asked
/// for (or `auto`) and none can be opened, prints one line saying why and returns `None`.
pub fn select(arg: DeviceArg) -> Option<Arc<Gpu>> {
    if arg == DeviceArg::Cpu {
        return None;
    }
    match Gpu::open(0) {
        Ok(gpu) => {
            crate::info!("device: {}", gpu.describe());
            Some(gpu)
        }
        Err(e) => {
            crate::info!("device: {e:#}; running on the CPU");
            None
        }
    }
}

/// The GPU for tests: `None`, with a message saying why the test skips, when there is none.
pub fn for_tests(test: &str) -> Option<Arc<Gpu>> {
    match Gpu::open(0) {
        Ok(gpu) => Some(gpu),
        Err(e) => {
            eprintln!("{test}: skipped, no GPU: {e:#}");
            None
        }
    }
}

/// A launch shape: `grid` blocks of `block` threads, with `smem` bytes of dynamic shared memory.
pub fn launch_config(grid: u32, block: u32, smem: u32) -> cudarc::driver::LaunchConfig {
    cudarc::driver::LaunchConfig {
        grid_dim: (grid, 1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: smem,
    }
}
