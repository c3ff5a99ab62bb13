//! Opening the GPU, caching compiled kernels, launching them, and choosing CPU or GPU.
//!
//! cudarc loads `libcuda` lazily and panics if it is missing, so [`Gpu::open`] first asks
//! whether the library can be loaded at all, and turns every failure into a plain error. The
//! binaries call [`select`], which falls back to the CPU with one line on stderr.
//!
//! Every kernel launch goes through [`Gpu::launch`], with its arguments as a list of [`Arg`]s.
//! That one entry point lets the same launchers run on a real GPU or on the CPU emulator of
//! `tools/cuda-emu` ([`Gpu::emulated`], for tests), which also checks each argument's type
//! against the kernel's parameter list.

use super::alloc::{Allocator, MemoryStats};
use super::emu::Emulator;
use super::strided::Strided;
use super::{Precision, sources};
use anyhow::{Context, Result, anyhow, bail};
use cudarc::cublas::CudaBlas;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaStream, LaunchConfig, PushKernelArg, sys,
};
use cudarc::nvrtc::Ptx;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// `--device`: where the numbers are computed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceArg {
    /// The CPU kernels of `crate::tensor::cpu`.
    Cpu,
    /// The first CUDA GPU; falls back to the CPU, with a message, when there is none.
    Cuda,
    /// The GPU when there is one, else the CPU.
    #[default]
    Auto,
}

/// One kernel argument, typed as the kernel's parameter is: a device pointer (`T*`), `int`,
/// `unsigned`, a 64-bit integer (`size_t`), `float`, or a strided layout (`Strided`, by value).
// A `Strided` makes the enum 272 bytes: argument lists live on the stack for one launch, and
// boxing the layout would cost an allocation per launch (and `Copy`) for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arg {
    Ptr(u64),
    I32(i32),
    U32(u32),
    U64(u64),
    F32(f32),
    Strided(Strided),
}

impl Arg {
    /// A scalar's bytes, little-endian in the low bytes of a u64 (how the emulator reads it);
    /// `None` for a struct, which the emulator reads in place.
    pub fn scalar_bits(&self) -> Option<u64> {
        match *self {
            Arg::Ptr(p) | Arg::U64(p) => Some(p),
            Arg::I32(v) => Some(v as u32 as u64),
            Arg::U32(v) => Some(v as u64),
            Arg::F32(v) => Some(v.to_bits() as u64),
            Arg::Strided(_) => None,
        }
    }
    /// One letter per type, matching the emulator's check: p i u l f s.
    pub fn letter(&self) -> u8 {
        match self {
            Arg::Ptr(_) => b'p',
            Arg::I32(_) => b'i',
            Arg::U32(_) => b'u',
            Arg::U64(_) => b'l',
            Arg::F32(_) => b'f',
            Arg::Strided(_) => b's',
        }
    }
}

impl From<i32> for Arg {
    fn from(v: i32) -> Arg {
        Arg::I32(v)
    }
}
impl From<u32> for Arg {
    fn from(v: u32) -> Arg {
        Arg::U32(v)
    }
}
/// A `size_t` parameter.
impl From<u64> for Arg {
    fn from(v: u64) -> Arg {
        Arg::U64(v)
    }
}
impl From<f32> for Arg {
    fn from(v: f32) -> Arg {
        Arg::F32(v)
    }
}
/// A `Strided` parameter (`kernels/strided.cuh`), passed by value.
impl From<Strided> for Arg {
    fn from(s: Strided) -> Arg {
        Arg::Strided(s)
    }
}
/// A `T*` parameter: the view's device address.
impl<T> From<super::DevPtr<T>> for Arg {
    fn from(p: super::DevPtr<T>) -> Arg {
        Arg::Ptr(p.addr)
    }
}

/// A kernel's argument list from values that convert into [`Arg`]: `kargs![out, inp, n as u64]`.
/// Sizes are passed as the kernel declares them (`int` via `i32`, `size_t` via `u64`).
#[macro_export]
macro_rules! kargs {
    ($($a:expr),* $(,)?) => {
        [$($crate::tensor::cuda::device::Arg::from($a)),*]
    };
}

/// A real CUDA device: its context, the stream every launch goes to, the compiled kernels.
pub struct Cuda {
    pub ctx: Arc<CudaContext>,
    /// Compute capability (90 for sm_90): what the kernels are compiled for.
    arch: u32,
    pub stream: Arc<CudaStream>,
    modules: Mutex<HashMap<(&'static str, Precision), Arc<CudaModule>>>,
    functions: Mutex<HashMap<(&'static str, Precision, &'static str), CudaFunction>>,
    blas: OnceLock<std::result::Result<CudaBlas, String>>,
}

enum Backend {
    Cuda(Cuda),
    Emulated(Emulator),
}

/// A GPU: a real CUDA device, or (in tests) the CPU emulator behind the same API.
pub struct Gpu {
    /// The device's name, e.g. "NVIDIA H200".
    pub name: String,
    /// Compute capability as one number: 90 for sm_90 (Hopper), 80 for sm_80 (Ampere).
    pub arch: u32,
    /// Number of streaming multiprocessors (132 on an H200).
    pub sms: u32,
    backend: Backend,
    /// Where tensors' memory comes from (see [`super::alloc`]).
    alloc: Allocator,
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
        let arch = (major * 10 + minor) as u32;
        Ok(Arc::new(Gpu {
            name,
            arch,
            sms: sms as u32,
            backend: Backend::Cuda(Cuda {
                ctx,
                arch,
                stream,
                modules: Mutex::new(HashMap::new()),
                functions: Mutex::new(HashMap::new()),
                blas: OnceLock::new(),
            }),
            alloc: Allocator::default(),
        }))
    }

    /// The CPU emulator posing as a small GPU (4 SMs, sm_80): slow, synchronous, for tests.
    pub fn emulated() -> Result<Arc<Gpu>> {
        Ok(Arc::new(Gpu {
            name: "CPU emulator (tools/cuda-emu)".into(),
            arch: 80,
            sms: 4,
            backend: Backend::Emulated(Emulator::new()?),
            alloc: Allocator::default(),
        }))
    }

    /// Whether this is the emulator (no cuBLAS, no timing, tiny sizes only).
    pub fn is_emulated(&self) -> bool {
        matches!(self.backend, Backend::Emulated(_))
    }

    /// The real device, for what only it has: streams and events, cuBLAS, cudarc memory.
    pub fn cuda(&self) -> Result<&Cuda> {
        match &self.backend {
            Backend::Cuda(c) => Ok(c),
            Backend::Emulated(_) => bail!("not available on the CUDA emulator"),
        }
    }

    /// Runs kernel `name` of `kernels/{file}` (compiled for `precision`) on `cfg`'s grid with
    /// `args`. Queued on the stream; does not wait (the emulator runs it to completion).
    ///
    /// # Safety
    /// Every `Arg::Ptr` must point into live memory of this GPU large enough for everything the
    /// kernel touches with these arguments, and `args` must match the kernel's parameters in
    /// number and type (the emulator checks that; a real launch cannot).
    pub unsafe fn launch(
        &self,
        file: &'static str,
        precision: Precision,
        name: &'static str,
        cfg: LaunchConfig,
        args: &[Arg],
    ) -> Result<()> {
        match &self.backend {
            Backend::Emulated(e) => e.launch(file, precision, name, &cfg, args),
            Backend::Cuda(c) => {
                let f = c.function(file, precision, name)?;
                if cfg.shared_mem_bytes > 48 * 1024 {
                    // Above 48 KB a kernel must opt in to more dynamic shared memory.
                    f.set_attribute(
                        sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                        cfg.shared_mem_bytes as i32,
                    )
                    .context("raising the shared memory limit")?;
                }
                let mut b = c.stream.launch_builder(&f);
                for a in args {
                    match a {
                        Arg::Ptr(v) | Arg::U64(v) => b.arg(v),
                        Arg::I32(v) => b.arg(v),
                        Arg::U32(v) => b.arg(v),
                        Arg::F32(v) => b.arg(v),
                        Arg::Strided(v) => b.arg(v),
                    };
                }
                // SAFETY: the caller's promise (see above).
                unsafe { b.launch(cfg) }.with_context(|| format!("launching {name} ({file})"))?;
                Ok(())
            }
        }
    }

    /// The caching allocator of this GPU's tensor memory.
    pub fn allocator(&self) -> &Allocator {
        &self.alloc
    }

    /// Bytes of tensor memory in use, their peak, and bytes reserved from the driver.
    pub fn memory(&self) -> MemoryStats {
        self.alloc.stats()
    }

    /// The device's total memory in bytes, as the driver reports it (`None` on the emulator,
    /// whose memory is the host's, or when the query fails).
    pub fn total_memory(&self) -> Option<u64> {
        match &self.backend {
            Backend::Emulated(_) => None,
            Backend::Cuda(c) => c.ctx.total_mem().ok().map(|b| b as u64),
        }
    }

    /// Starts counting the peak again from what is in use now.
    pub fn reset_peak_memory(&self) {
        self.alloc.reset_peak()
    }

    /// Copies `src` to device address `dst`. Ordered with the launches on the stream; returns
    /// once `src` may be reused.
    ///
    /// # Safety
    /// `dst .. dst + src.len()` must be live memory of this GPU.
    pub unsafe fn upload(&self, dst: u64, src: &[u8]) -> Result<()> {
        if src.is_empty() {
            return Ok(());
        }
        match &self.backend {
            // SAFETY: the caller's promise; on the emulator device addresses are host addresses.
            Backend::Emulated(_) => unsafe {
                std::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len())
            },
            Backend::Cuda(c) => {
                c.ctx.bind_to_thread()?;
                // SAFETY: the caller's promise; pageable host memory is staged by the driver
                // before this returns.
                unsafe {
                    cudarc::driver::result::memcpy_htod_async(dst, src, c.stream.cu_stream())
                }
                .context("copy to GPU")?;
            }
        }
        Ok(())
    }

    /// Copies device memory at `src` into `dst`, after every launch queued before (waits).
    ///
    /// # Safety
    /// `src .. src + dst.len()` must be live memory of this GPU.
    pub unsafe fn download(&self, dst: &mut [u8], src: u64) -> Result<()> {
        if dst.is_empty() {
            return Ok(());
        }
        match &self.backend {
            // SAFETY: the caller's promise.
            Backend::Emulated(_) => unsafe {
                std::ptr::copy_nonoverlapping(src as *const u8, dst.as_mut_ptr(), dst.len())
            },
            Backend::Cuda(c) => {
                c.ctx.bind_to_thread()?;
                // SAFETY: the caller's promise; a copy into pageable memory returns when done.
                unsafe {
                    cudarc::driver::result::memcpy_dtoh_async(dst, src, c.stream.cu_stream())
                }
                .context("copy from GPU")?;
                c.stream.synchronize().context("copy from GPU")?;
            }
        }
        Ok(())
    }

    /// Copies `bytes` bytes from device address `src` to `dst` (queued on the stream).
    ///
    /// # Safety
    /// Both ranges must be live memory of this GPU and must not overlap.
    pub unsafe fn copy_on_device(&self, dst: u64, src: u64, bytes: usize) -> Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        match &self.backend {
            // SAFETY: the caller's promise.
            Backend::Emulated(_) => unsafe {
                std::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, bytes)
            },
            Backend::Cuda(c) => {
                c.ctx.bind_to_thread()?;
                // SAFETY: the caller's promise.
                unsafe {
                    cudarc::driver::result::memcpy_dtod_async(dst, src, bytes, c.stream.cu_stream())
                }
                .context("copy on GPU")?;
            }
        }
        Ok(())
    }

    /// The cuBLAS handle (the reference our matmuls are timed against), created on first use.
    pub fn blas(&self) -> Result<&CudaBlas> {
        let c = self.cuda()?;
        let r = c.blas.get_or_init(|| {
            // SAFETY: only tries to dlopen libcublas by its usual names.
            if !unsafe { cudarc::cublas::sys::is_culib_present() } {
                return Err("cuBLAS not found (libcublas.so)".to_string());
            }
            CudaBlas::new(c.stream.clone()).map_err(|e| format!("cuBLAS: {e}"))
        });
        r.as_ref().map_err(|e| anyhow!(e.clone()))
    }

    /// Waits until all launched work is done; reports any error a kernel raised.
    pub fn sync(&self) -> Result<()> {
        match &self.backend {
            Backend::Cuda(c) => c.stream.synchronize().context("CUDA"),
            Backend::Emulated(_) => Ok(()),
        }
    }

    /// A grid for a grid-stride loop over `n` elements with `block` threads per block: enough
    /// blocks to cover `n`, at most 32 per multiprocessor.
    pub fn grid_for(&self, n: usize, block: u32) -> u32 {
        let want = n.div_ceil(block as usize).max(1);
        want.min(self.sms as usize * 32) as u32
    }

    /// The datasheet peak of dense matmuls in GFLOP/s for `precision` (bf16 on tensor cores;
    /// fp32 on the CUDA cores, no TF32), for the GPUs we know, else an H100's. MFU is quoted
    /// against these, as llm.c and nanoGPT do.
    pub fn peak_gflops(&self, precision: Precision) -> f64 {
        peak_gflops(&self.name, precision)
    }

    /// One line describing the device, e.g. "NVIDIA H200 (sm_90, 132 SMs)".
    pub fn describe(&self) -> String {
        format!("{} (sm_{}, {} SMs)", self.name, self.arch, self.sms)
    }
}

impl Cuda {
    fn module(&self, file: &'static str, precision: Precision) -> Result<Arc<CudaModule>> {
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
}

/// The GPUs this process has opened, by ordinal: what `Device::Cuda(i)` of the tensor engine
/// refers to.
static DEVICES: Mutex<Vec<Option<Arc<Gpu>>>> = Mutex::new(Vec::new());

/// Makes `gpu` the device with this ordinal (e.g. the emulator in tests).
pub fn install(ordinal: usize, gpu: Arc<Gpu>) {
    let mut d = DEVICES.lock().unwrap();
    if d.len() <= ordinal {
        d.resize(ordinal + 1, None);
    }
    d[ordinal] = Some(gpu);
}

/// The GPU with this ordinal: the one installed, else the real device opened now (or, with
/// `PRETRAIN_GPU_EMU=1` and no real one, the CPU emulator). An error says why there is none.
pub fn get(ordinal: usize) -> Result<Arc<Gpu>> {
    if let Some(Some(g)) = DEVICES.lock().unwrap().get(ordinal) {
        return Ok(g.clone());
    }
    let gpu = match Gpu::open(ordinal) {
        Ok(g) => g,
        Err(e) if emulator_requested() => {
            Gpu::emulated().with_context(|| format!("{e:#}; PRETRAIN_GPU_EMU=1"))?
        }
        Err(e) => return Err(e),
    };
    install(ordinal, gpu.clone());
    Ok(gpu)
}

/// `PRETRAIN_GPU_EMU=1`: without a GPU, run CUDA code on the CPU emulator (tiny sizes only).
pub fn emulator_requested() -> bool {
    std::env::var("PRETRAIN_GPU_EMU").is_ok_and(|v| v == "1")
}

/// Resolves `--device`: `Some(gpu)` to run on the GPU (installed as device 0), `None` for the
/// CPU. When a GPU was asked for (or `auto`) and none can be opened, prints one line saying why
/// and returns `None`. With `PRETRAIN_GPU_EMU=1`, `--device cuda` runs on the CPU emulator.
pub fn select(arg: DeviceArg) -> Option<Arc<Gpu>> {
    if arg == DeviceArg::Cpu {
        return None;
    }
    let emulate = arg == DeviceArg::Cuda && emulator_requested();
    match Gpu::open(0) {
        Ok(gpu) => {
            crate::info!("device: {}", gpu.describe());
            install(0, gpu.clone());
            Some(gpu)
        }
        Err(e) if emulate => match Gpu::emulated() {
            Ok(gpu) => {
                crate::info!("device: {e:#}; PRETRAIN_GPU_EMU=1: the CPU emulator stands in");
                install(0, gpu.clone());
                Some(gpu)
            }
            Err(e2) => {
                crate::info!("device: {e:#}; {e2:#}; running on the CPU");
                None
            }
        },
        Err(e) => {
            crate::info!("device: {e:#}; running on the CPU");
            None
        }
    }
}

/// The GPU for tests, installed as device 0: the real one when there is one; otherwise the CPU
/// emulator (unless `PRETRAIN_GPU_EMU=0`); otherwise `None`, with a message saying why the test
/// skips. `PRETRAIN_REQUIRE_GPU=1` (set by `scripts/gpu-check.sh`) makes a missing GPU a failure,
/// and under `CI=true` a missing emulator is a failure too.
pub fn for_tests(test: &str) -> Option<Arc<Gpu>> {
    if let Some(Some(g)) = DEVICES.lock().unwrap().first() {
        return Some(g.clone());
    }
    let real = match Gpu::open(0) {
        Ok(gpu) => {
            install(0, gpu.clone());
            return Some(gpu);
        }
        Err(e) => e,
    };
    if std::env::var("PRETRAIN_REQUIRE_GPU").is_ok_and(|v| v == "1") {
        panic!("{test}: PRETRAIN_REQUIRE_GPU=1 but no GPU: {real:#}");
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if std::env::var("PRETRAIN_GPU_EMU").is_ok_and(|v| v == "0") {
        assert!(
            !ci,
            "{test}: CI=true but PRETRAIN_GPU_EMU=0 turns the emulator off"
        );
        eprintln!("{test}: skipped, no GPU: {real:#} (PRETRAIN_GPU_EMU=0: no emulator)");
        return None;
    }
    match Gpu::emulated() {
        Ok(gpu) => {
            eprintln!("{test}: no GPU ({real:#}); running on the CPU emulator");
            install(0, gpu.clone());
            Some(gpu)
        }
        Err(e) => {
            assert!(!ci, "{test}: CI=true and no GPU and no emulator: {e:#}");
            eprintln!("{test}: skipped, no GPU: {real:#}; {e:#}");
            None
        }
    }
}

/// A launch shape: `grid` blocks of `block` threads, with `smem` bytes of dynamic shared memory.
pub fn launch_config(grid: u32, block: u32, smem: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (grid, 1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: smem,
    }
}

/// See [`Gpu::peak_gflops`].
pub fn peak_gflops(name: &str, precision: Precision) -> f64 {
    let table: [(&str, f64, f64); 5] = [
        // (name contains, bf16, fp32)
        ("H200", 989e3, 67e3),
        ("H100", 989e3, 67e3),
        ("A100", 312e3, 19.5e3),
        ("L4", 121e3, 30.3e3),
        ("4090", 165e3, 82.6e3),
    ];
    let (bf, fp) = table
        .iter()
        .find(|(k, _, _)| name.contains(k))
        .map_or((989e3, 67e3), |&(_, b, f)| (b, f));
    match precision {
        Precision::Bf16 => bf,
        Precision::F32 => fp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_by_name() {
        assert_eq!(peak_gflops("NVIDIA H200", Precision::Bf16), 989e3);
        assert_eq!(peak_gflops("NVIDIA A100-SXM4-80GB", Precision::F32), 19.5e3);
    }
}
