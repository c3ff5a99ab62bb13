//! The CUDA backend (lesson 08): our own kernels, written in CUDA C++ in `kernels/*.cu`,
//! compiled at run time by NVRTC for the GPU at hand, launched through cudarc's driver API.
//!
//! - [`nvrtc`]: finds and calls the run-time compiler (no CUDA toolkit needed to build pretrain).
//! - [`sources`]: every kernel file, embedded in the binary with `include_str!`, and how each is
//!   compiled (architecture, fp32 or bf16 storage); [`ptxas`] reads the compiler's report of
//!   registers, shared memory and spills per kernel.
//! - [`device`]: opens the GPU (checking first that the driver library exists, because cudarc
//!   panics without it), caches compiled modules per process, launches kernels, and picks CPU or
//!   GPU for `--device cpu|cuda|auto`. [`emu`] stands in for a GPU in tests: the same launches
//!   run on the CPU emulator of `tools/cuda-emu`.
//! - [`alloc`]: the caching allocator every piece of GPU memory comes from; [`buffer`]: typed
//!   buffers over its blocks ([`Buffer`]) and the checked views ([`DevPtr`]) kernels take.
//! - [`matmul`]: the matmul progression (naive, tiled, register-blocked, tensor cores) and cuBLAS.
//! - [`ops`]: one host launcher per kernel (sizes checked, launch shape chosen): layernorm,
//!   GELU, fill, AdamW, gradient norm, casts.
//! - [`attention`]: the fused causal attention (forward, backward).
//! - The generic ops of the tensor engine, each checked against its CPU arm: [`strided`]
//!   (layouts of strided operands, one by-value kernel argument), [`elementwise`] (strided
//!   copies and adds, unary, broadcasting binary, masks), [`reduce`] (sums and maxima over an
//!   axis, a sum to one scalar), [`softmax`] (row and causal softmax), [`embedding`] (lookup and
//!   a deterministic backward), [`cross_entropy`] (per-row losses and the logits' gradient).
//!
//! Nothing here is needed to run on the CPU: with no driver, every binary says so in one line
//! and carries on with `crate::tensor::cpu`.

pub mod alloc;
pub mod attention;
pub mod buffer;
pub mod cross_entropy;
pub mod device;
pub mod elementwise;
pub mod embedding;
pub mod emu;
pub mod matmul;
pub mod nvrtc;
pub mod ops;
pub mod ptxas;
pub mod reduce;
pub mod softmax;
pub mod sources;
pub mod strided;

pub use buffer::{Buffer, DevPtr, GpuFloat};
pub use device::{DeviceArg, Gpu, select};
pub use reduce::Axis;
pub use softmax::Rows;
pub use strided::Strided;

/// The storage type of activations, weights and gradients on the GPU (`floatX` in the kernels).
/// Arithmetic is always fp32; `Bf16` halves the bytes moved and lets matmuls use tensor cores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// fp32 everywhere: the mode that must match the CPU.
    #[default]
    F32,
    /// bf16 activations and weights for compute, fp32 master weights and optimizer state.
    Bf16,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }
}
