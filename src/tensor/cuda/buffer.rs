//! GPU memory for the kernels: owned [`Buffer`]s and the [`DevPtr`] views that launches take.
//!
//! A `DevPtr` is a device address plus a length, like a slice without a lifetime: the model
//! keeps every buffer alive for as long as it launches kernels on it (they are allocated once,
//! up front, as in llm.c). Taking sub-ranges is checked on the host, so a kernel is never handed
//! a range past the end of its buffer; what it does inside the range is the kernel's business.

use super::{Gpu, Precision};
use anyhow::{Context, Result};
use cudarc::driver::{CudaSlice, DevicePtr, DeviceRepr, ValidAsZeroBits};
use std::marker::PhantomData;

/// A storage type a kernel file can be compiled for: `f32` or `half::bf16` (`floatX`).
pub trait GpuFloat: DeviceRepr + ValidAsZeroBits + Copy + Default + Send + Sync + 'static {
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

/// An owned allocation of `len` elements on the GPU (or, on the emulator, in host memory).
pub struct Buffer<T> {
    mem: Mem<T>,
    /// Elements in use (a zero-length buffer still allocates one, as CUDA has no empty allocation).
    len: usize,
}

enum Mem<T> {
    Cuda(CudaSlice<T>),
    Host(HostMem<T>),
}

impl<T: DeviceRepr + ValidAsZeroBits + Copy + Default> Buffer<T> {
    /// `len` zeros.
    pub fn zeros(gpu: &Gpu, len: usize) -> Result<Buffer<T>> {
        let mem = if gpu.is_emulated() {
            Mem::Host(HostMem::zeros(len.max(1)))
        } else {
            let slice = gpu
                .cuda()?
                .stream
                .alloc_zeros::<T>(len.max(1))
                .with_context(|| format!("allocating {len} elements on the GPU"))?;
            Mem::Cuda(slice)
        };
        Ok(Buffer { mem, len })
    }

    /// A copy of `data`.
    pub fn from_host(gpu: &Gpu, data: &[T]) -> Result<Buffer<T>> {
        let mut b = Buffer::zeros(gpu, data.len())?;
        b.upload(gpu, data)?;
        Ok(b)
    }

    /// Overwrites the first `data.len()` elements.
    pub fn upload(&mut self, gpu: &Gpu, data: &[T]) -> Result<()> {
        assert!(
            data.len() <= self.len,
            "upload of {} into {}",
            data.len(),
            self.len
        );
        match &mut self.mem {
            Mem::Host(h) => h.as_mut_slice()[..data.len()].copy_from_slice(data),
            Mem::Cuda(slice) if !data.is_empty() => {
                let mut dst = slice.slice_mut(0..data.len());
                gpu.cuda()?
                    .stream
                    .memcpy_htod(data, &mut dst)
                    .context("copy to GPU")?;
            }
            Mem::Cuda(_) => {}
        }
        Ok(())
    }

    /// The contents, copied to the host (waits for the work queued before).
    pub fn to_host(&self, gpu: &Gpu) -> Result<Vec<T>> {
        let mut v = match &self.mem {
            Mem::Host(h) => h.as_slice().to_vec(),
            Mem::Cuda(slice) => gpu
                .cuda()?
                .stream
                .clone_dtoh(slice)
                .context("copy from GPU")?,
        };
        v.truncate(self.len);
        Ok(v)
    }

    /// Elements `offset .. offset + len`, copied to the host (waits for the work queued before).
    pub fn range_to_host(&self, gpu: &Gpu, offset: usize, len: usize) -> Result<Vec<T>> {
        assert!(
            offset + len <= self.len,
            "range_to_host: {offset}..{} of {}",
            offset + len,
            self.len
        );
        match &self.mem {
            Mem::Host(h) => Ok(h.as_slice()[offset..offset + len].to_vec()),
            Mem::Cuda(slice) => {
                let view = slice.slice(offset..offset + len);
                gpu.cuda()?
                    .stream
                    .clone_dtoh(&view)
                    .context("copy from GPU")
            }
        }
    }

    /// Sets every element to zero (queued on the stream).
    pub fn zero(&mut self, gpu: &Gpu) -> Result<()> {
        match &mut self.mem {
            Mem::Host(h) => h.as_mut_slice().fill(T::default()),
            Mem::Cuda(slice) => {
                gpu.cuda()?.stream.memset_zeros(slice).context("memset")?;
            }
        }
        Ok(())
    }
}

impl<T> Buffer<T> {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// A view of the whole buffer for kernel launches.
    pub fn ptr(&self) -> DevPtr<T> {
        let addr = match &self.mem {
            Mem::Cuda(slice) => slice.device_ptr(slice.stream()).0,
            Mem::Host(h) => h.ptr as u64,
        };
        DevPtr {
            addr,
            len: self.len,
            _t: PhantomData,
        }
    }
}

/// The emulator's "device memory": a zeroed host allocation aligned like `cudaMalloc`'s (256
/// bytes), so the kernels' aligned vector loads behave as on a GPU.
pub(crate) struct HostMem<T> {
    pub(crate) ptr: *mut T,
    len: usize,
}

// SAFETY: HostMem owns its allocation exclusively, like a Vec<T>.
unsafe impl<T: Send> Send for HostMem<T> {}
// SAFETY: shared access only reads (the emulator writes through addresses handed to launches,
// which the launchers' callers sequence, as on a GPU stream).
unsafe impl<T: Sync> Sync for HostMem<T> {}

impl<T> HostMem<T> {
    fn layout(len: usize) -> std::alloc::Layout {
        std::alloc::Layout::from_size_align(len * std::mem::size_of::<T>(), 256).unwrap()
    }
    pub(crate) fn zeros(len: usize) -> HostMem<T> {
        let layout = Self::layout(len);
        // SAFETY: the layout has a non-zero size (len ≥ 1, T not zero-sized here: floats and
        // ints); the all-zero bit pattern is valid for T (`ValidAsZeroBits` at the call site).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) } as *mut T;
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        HostMem { ptr, len }
    }
    fn as_slice(&self) -> &[T] {
        // SAFETY: ptr points to len initialised elements owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
    fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as above, and &mut self gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl<T> Drop for HostMem<T> {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeros` with this same layout.
        unsafe { std::alloc::dealloc(self.ptr as *mut u8, Self::layout(self.len)) }
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
