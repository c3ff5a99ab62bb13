//! Where a tensor's numbers live: a flat buffer on a device, shared by every view of it.

use crate::tensor::cpu::float::Float;

/// The element type of a tensor. Training computes in `F32`; gradient checks use `F64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F64,
}

impl DType {
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }
}

/// Where a tensor's storage lives. Every op dispatches on this in `tensor::backend`; the CUDA
/// backend adds a variant here and a match arm there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    #[default]
    Cpu,
}

/// A flat buffer of elements. Views (reshape, transpose, narrow) share one `Storage`.
/// When dropped, a large buffer goes back to the [`pool`](super::pool) for reuse.
#[derive(Clone, Debug)]
pub enum Storage {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Drop for Storage {
    fn drop(&mut self) {
        match self {
            Storage::F32(v) => super::pool::give(std::mem::take(v)),
            Storage::F64(v) => super::pool::give(std::mem::take(v)),
        }
    }
}

impl Storage {
    pub fn dtype(&self) -> DType {
        match self {
            Storage::F32(_) => DType::F32,
            Storage::F64(_) => DType::F64,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Storage::F32(v) => v.len(),
            Storage::F64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
            other => panic!("expected f32 storage, found {:?}", other.dtype()),
        }
    }
    fn slice_mut(s: &mut Storage) -> &mut [f32] {
        match s {
            Storage::F32(v) => v,
            other => panic!("expected f32 storage, found {:?}", other.dtype()),
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
            other => panic!("expected f64 storage, found {:?}", other.dtype()),
        }
    }
    fn slice_mut(s: &mut Storage) -> &mut [f64] {
        match s {
            Storage::F64(v) => v,
            other => panic!("expected f64 storage, found {:?}", other.dtype()),
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
