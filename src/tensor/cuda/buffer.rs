//! GPU memory for the kernels: typed [`Buffer`]s over the caching allocator's blocks, and the
//! [`DevPtr`] views that launches take.
//!
//! A `DevPtr` is a device address plus a length, like a slice without a lifetime: whoever
//! launches kernels on it keeps the memory (a [`Buffer`], a tensor's block) alive meanwhile.
//! Taking sub-ranges is checked on the host, so a kernel is never handed a range past the end of
//! its buffer; what it does inside the range is the kernel's business.

use super::Precision;
use super::alloc::{self, Block};
use super::device::Gpu;
use anyhow::Result;
use bytemuck::Pod;
use std::marker::PhantomData;
use std::sync::Arc;

/// A storage type a kernel file can be compiled for: `f32` or `half::bf16` (`floatX`).
pub trait GpuFloat: Pod + Default + Send + Sync {
    const PRECISION: Precision;
    fn from_f32(x: f32) -> Self;
    fn to_f32(self) -> f32;
}

impl GpuFloat for f32 {
    const PRECISION: Precision = Precision::F32;
    fn from_f32(x: f32) -> f32 {
        x
    }
    fn to_f32(self) -> f32 {
        self
    }
}

impl GpuFloat for half::bf16 {
    const PRECISION: Precision = Precision::Bf16;
    fn from_f32(x: f32) -> half::bf16 {
        half::bf16::from_f32(x)
    }
    fn to_f32(self) -> f32 {
        half::bf16::to_f32(self)
    }
}

/// `len` elements of `T` in one block of the caching allocator ([`alloc::alloc`]), for code that
/// launches kernels on memory of its own (tests, benchmarks, the `kernels` table). The block
/// goes back to its GPU's cache when the buffer is dropped.
pub struct Buffer<T> {
    block: Block,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Pod> Buffer<T> {
    /// `len` zeros. (The cache hands out used blocks, so the zeros are uploaded.)
    pub fn zeros(gpu: &Arc<Gpu>, len: usize) -> Result<Buffer<T>> {
        let (block, _) = alloc::upload(gpu, &vec![0u8; len * size_of::<T>()])?;
        Ok(Buffer {
            block,
            len,
            _t: PhantomData,
        })
    }

    /// A copy of `data`.
    pub fn from_host(gpu: &Arc<Gpu>, data: &[T]) -> Result<Buffer<T>> {
        let (block, _) = alloc::upload(gpu, data)?;
        Ok(Buffer {
            block,
            len: data.len(),
            _t: PhantomData,
        })
    }

    /// The contents, copied to the host (waits for the work queued before).
    pub fn to_host(&self) -> Result<Vec<T>> {
        self.range_to_host(0, self.len)
    }

    /// Elements `offset .. offset + len`, copied to the host (waits for the work queued before).
    /// Panics if that is past the end.
    pub fn range_to_host(&self, offset: usize, len: usize) -> Result<Vec<T>> {
        let range = self.ptr().slice(offset, len);
        let mut out = vec![T::zeroed(); len];
        // SAFETY: `range` lies inside this buffer's block (checked by `slice`), which `self`
        // keeps alive on its GPU.
        unsafe {
            self.block
                .gpu()
                .download(bytemuck::cast_slice_mut(&mut out), range.addr)
        }?;
        Ok(out)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A view of the whole buffer for kernel launches.
    pub fn ptr(&self) -> DevPtr<T> {
        DevPtr::from_raw_parts(self.block.addr(), self.len)
    }
}

/// A device address and a length: what a kernel launch receives for a `T*` argument.
pub struct DevPtr<T> {
    /// The address, passed to the kernel as its pointer argument.
    pub addr: u64,
    pub len: usize,
    _t: PhantomData<T>,
}

impl<T> Clone for DevPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for DevPtr<T> {}

impl<T> std::fmt::Debug for DevPtr<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DevPtr({:#x}, {})", self.addr, self.len)
    }
}

impl<T> DevPtr<T> {
    /// A view of `len` elements at `addr`. Making one is harmless; launching a kernel on it is
    /// what must be right (the launchers' `unsafe` blocks rely on the length being true).
    pub fn from_raw_parts(addr: u64, len: usize) -> DevPtr<T> {
        DevPtr {
            addr,
            len,
            _t: PhantomData,
        }
    }

    /// Elements `offset .. offset + len`. Panics, naming both ranges, if that is past the end.
    pub fn slice(self, offset: usize, len: usize) -> DevPtr<T> {
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= self.len),
            "DevPtr::slice: {offset}..{} is outside a buffer of {}",
            offset.saturating_add(len),
            self.len
        );
        DevPtr {
            addr: self.addr + (offset * std::mem::size_of::<T>()) as u64,
            len,
            _t: PhantomData,
        }
    }

    /// Checks that this view holds at least `need` elements; `what` names the argument.
    pub fn expect(self, what: &str, need: usize) -> DevPtr<T> {
        assert!(
            self.len >= need,
            "{what}: needs {need} elements, buffer has {}",
            self.len
        );
        self
    }
}
