//! Where a tensor's numbers live: a flat buffer on a device, shared by every view of it.

use crate::tensor::cpu::float::Float;
use crate::tensor::cuda::alloc::Block;
use half::bf16;

/// The element type of a tensor. Training computes in `F32`; gradient checks use `F64`; on a
/// GPU, mixed precision keeps weights and activations in `BF16` (8 bits of mantissa, fp32's
/// range) while the statistics and the optimizer stay in `F32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DType {
    F32,
    F64,
    BF16,
}

impl DType {
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
            DType::BF16 => 2,
        }
    }

    /// "f32", "f64", "bf16".
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::BF16 => "bf16",
        }
    }
}

/// Where a tensor's storage lives: host memory, or the memory of CUDA device `i` (see
/// `cuda::device::get`). Every op dispatches on this in `tensor::backend`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    #[default]
    Cpu,
    Cuda(usize),
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// A flat buffer of elements. Views (reshape, transpose, narrow) share one `Storage`.
/// When dropped, a large host buffer goes back to the [`pool`](super::pool) for reuse, and a
/// GPU block to its GPU's caching allocator.
#[derive(Debug)]
pub enum Storage {
    F32(Vec<f32>),
    F64(Vec<f64>),
    /// bf16 in host memory: only converted or copied (the CPU kernels compute in f32 or f64).
    Bf16(Vec<bf16>),
    /// `len` elements of `dtype` in GPU memory.
    Cuda {
        block: Block,
        dtype: DType,
        len: usize,
    },
}

impl Drop for Storage {
    fn drop(&mut self) {
        match self {
            Storage::F32(v) => super::pool::give(std::mem::take(v)),
            Storage::F64(v) => super::pool::give(std::mem::take(v)),
            Storage::Bf16(_) | Storage::Cuda { .. } => {}
        }
    }
}

impl Storage {
    pub fn dtype(&self) -> DType {
        match self {
            Storage::F32(_) => DType::F32,
            Storage::F64(_) => DType::F64,
            Storage::Bf16(_) => DType::BF16,
            Storage::Cuda { dtype, .. } => *dtype,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Storage::F32(v) => v.len(),
            Storage::F64(v) => v.len(),
            Storage::Bf16(v) => v.len(),
            Storage::Cuda { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// "f32 on the CPU", "bf16 on a GPU": for error messages.
    pub fn describe(&self) -> String {
        let place = match self {
            Storage::Cuda { .. } => "a GPU",
            _ => "the CPU",
        };
        format!("{} on {place}", self.dtype().name())
    }
}

/// An element type a CPU storage can hold: connects a Rust type to its [`DType`] and [`Storage`]
/// variant so kernels can be written once, generically.
pub trait Element: Float {
    const DTYPE: DType;
    fn slice(s: &Storage) -> &[Self];
    fn slice_mut(s: &mut Storage) -> &mut [Self];
    fn into_storage(v: Vec<Self>) -> Storage;
    /// Free buffers of this type (see `tensor::pool`).
    fn pool() -> &'static super::pool::Pool<Self>;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    fn slice(s: &Storage) -> &[f32] {
        match s {
            Storage::F32(v) => v,
            other => panic!("expected f32 host storage, found {}", other.describe()),
        }
    }
    fn slice_mut(s: &mut Storage) -> &mut [f32] {
        match s {
            Storage::F32(v) => v,
            other => panic!("expected f32 host storage, found {}", other.describe()),
        }
    }
    fn into_storage(v: Vec<f32>) -> Storage {
        Storage::F32(v)
    }
    fn pool() -> &'static super::pool::Pool<f32> {
        static POOL: super::pool::Pool<f32> = super::pool::Pool::new();
        &POOL
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;
    fn slice(s: &Storage) -> &[f64] {
        match s {
            Storage::F64(v) => v,
            other => panic!("expected f64 host storage, found {}", other.describe()),
        }
    }
    fn slice_mut(s: &mut Storage) -> &mut [f64] {
        match s {
            Storage::F64(v) => v,
            other => panic!("expected f64 host storage, found {}", other.describe()),
        }
    }
    fn into_storage(v: Vec<f64>) -> Storage {
        Storage::F64(v)
    }
    fn pool() -> &'static super::pool::Pool<f64> {
        static POOL: super::pool::Pool<f64> = super::pool::Pool::new();
        &POOL
    }
}
