//! The caching allocator: where every tensor's GPU memory comes from.
//!
//! Asking the driver for memory (`cuMemAlloc`) is slow and may synchronise the device, and a
//! training step frees and re-creates the same activations and gradients every step. So, like
//! PyTorch's CUDA caching allocator, a freed block is not returned to the driver: it goes on a
//! free list keyed by its size class, and the next request of that class takes it back. After
//! the first step, a step calls the driver not at all.
//!
//! Size classes: requests are rounded up to 512 bytes, and above 4 KiB to a quarter of their
//! power of two (4 KiB, 5 KiB, 6 KiB, 7 KiB, 8 KiB, 10 KiB, …), so at most a fifth of a block is
//! slack and blocks of nearby sizes are shared. When the driver is out of memory, the cached
//! blocks are released and the request is tried once more.
//!
//! [`MemoryStats`] counts the bytes held by live blocks (`in_use`), its high-water mark (`peak`,
//! what `train` reports) and everything taken from the driver (`reserved` = in use + cached).

use super::device::Gpu;
use anyhow::{Result, anyhow};
use cudarc::driver::CudaSlice;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Memory taken from the driver (or, on the emulator, from the host allocator).
enum Raw {
    Cuda(CudaSlice<u8>),
    Host(HostMem),
}

impl Raw {
    fn addr(&self) -> u64 {
        use cudarc::driver::DevicePtr;
        match self {
            Raw::Cuda(s) => s.device_ptr(s.stream()).0,
            Raw::Host(h) => h.ptr as u64,
        }
    }
}

/// Bytes in use, their peak, and bytes reserved from the driver, for one GPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Bytes of the blocks tensors hold now (size classes, so slightly above what was asked).
    pub in_use: usize,
    /// The most `in_use` has been since the start (or [`Gpu::reset_peak_memory`]).
    pub peak: usize,
    /// Bytes taken from the driver: in use plus cached for reuse.
    pub reserved: usize,
    /// How many times the driver's allocator was called.
    pub driver_allocs: u64,
}

/// The free lists and the counters of one GPU.
#[derive(Default)]
pub struct Allocator {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    free: HashMap<usize, Vec<Raw>>,
    stats: MemoryStats,
}

/// The size class of a request of `bytes`: what is actually reserved for it.
pub fn size_class(bytes: usize) -> usize {
    let b = bytes.max(1).next_multiple_of(512);
    if b <= 4096 {
        return b;
    }
    let step = (1usize << (usize::BITS - 1 - b.leading_zeros())) / 4;
    b.next_multiple_of(step)
}

impl Allocator {
    pub fn stats(&self) -> MemoryStats {
        self.state.lock().unwrap().stats
    }

    pub fn reset_peak(&self) {
        let mut s = self.state.lock().unwrap();
        s.stats.peak = s.stats.in_use;
    }

    /// A cached block of this class, if one is free.
    fn reuse(&self, class: usize) -> Option<Raw> {
        let mut s = self.state.lock().unwrap();
        let raw = s.free.get_mut(&class)?.pop()?;
        s.stats.in_use += class;
        s.stats.peak = s.stats.peak.max(s.stats.in_use);
        Some(raw)
    }

    /// Counts a block fresh from the driver.
    fn fresh(&self, class: usize) {
        let mut s = self.state.lock().unwrap();
        s.stats.in_use += class;
        s.stats.reserved += class;
        s.stats.driver_allocs += 1;
        s.stats.peak = s.stats.peak.max(s.stats.in_use);
    }

    fn give_back(&self, class: usize, raw: Raw) {
        let mut s = self.state.lock().unwrap();
        s.stats.in_use -= class;
        s.free.entry(class).or_default().push(raw);
    }

    /// Returns every cached block to the driver.
    pub fn release_cached(&self) {
        let mut s = self.state.lock().unwrap();
        let cached: usize = s.free.iter().map(|(c, v)| c * v.len()).sum();
        s.stats.reserved -= cached;
        s.free.clear();
    }
}

/// A block of GPU memory held by a tensor; back to its GPU's free list when dropped.
pub struct Block {
    raw: Option<Raw>,
    class: usize,
    addr: u64,
    gpu: Arc<Gpu>,
}

impl Block {
    /// The device address of the first byte (256-byte aligned, as `cudaMalloc`'s).
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// Bytes reserved for this block (its size class).
    pub fn bytes(&self) -> usize {
        self.class
    }

    /// The GPU this block lives on.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        if let Some(raw) = self.raw.take() {
            self.gpu.allocator().give_back(self.class, raw);
        }
    }
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Block({:#x}, {} bytes)", self.addr, self.class)
    }
}

/// A block of at least `bytes` bytes on `gpu`, from the cache when one is free. The contents
/// are whatever the last user left: every op writes its whole output.
pub fn alloc(gpu: &Arc<Gpu>, bytes: usize) -> Result<Block> {
    let class = size_class(bytes);
    let alloc = gpu.allocator();
    let raw = match alloc.reuse(class) {
        Some(raw) => raw,
        None => {
            let raw = match driver_alloc(gpu, class) {
                Ok(raw) => raw,
                Err(_) => {
                    // Out of memory with blocks cached: give them back and try once more.
                    alloc.release_cached();
                    driver_alloc(gpu, class).map_err(|e| {
                        let s = alloc.stats();
                        anyhow!(
                            "GPU out of memory: {} MiB asked for, {} MiB in use ({e:#})",
                            class >> 20,
                            s.in_use >> 20
                        )
                    })?
                }
            };
            alloc.fresh(class);
            raw
        }
    };
    let addr = raw.addr();
    Ok(Block {
        raw: Some(raw),
        class,
        addr,
        gpu: gpu.clone(),
    })
}

/// A block holding a copy of `data`, and the view of it a kernel takes: small host arrays a
/// launch needs on the device (token ids, targets), through the cache like everything else.
pub fn upload<T: bytemuck::Pod>(gpu: &Arc<Gpu>, data: &[T]) -> Result<(Block, super::DevPtr<T>)> {
    let bytes: &[u8] = bytemuck::cast_slice(data);
    let block = alloc(gpu, bytes.len())?;
    // SAFETY: the block was just reserved for at least `bytes.len()` bytes.
    unsafe { gpu.upload(block.addr(), bytes) }?;
    let ptr = super::DevPtr::from_raw_parts(block.addr(), data.len());
    Ok((block, ptr))
}

fn driver_alloc(gpu: &Gpu, bytes: usize) -> Result<Raw> {
    if gpu.is_emulated() {
        return Ok(Raw::Host(HostMem::zeros(bytes)));
    }
    let slice = gpu.cuda()?.stream.alloc_zeros::<u8>(bytes)?;
    Ok(Raw::Cuda(slice))
}

/// The emulator's "device memory": a zeroed host allocation aligned like `cudaMalloc`'s (256
/// bytes), so the kernels' aligned vector loads behave as on a GPU.
struct HostMem {
    ptr: *mut u8,
    bytes: usize,
}

// SAFETY: HostMem owns its allocation exclusively, like a Vec<u8>.
unsafe impl Send for HostMem {}
// SAFETY: HostMem itself never reads or writes its bytes; the emulator does, through addresses
// handed to launches, which the launchers' callers sequence, as on a GPU stream.
unsafe impl Sync for HostMem {}

impl HostMem {
    fn layout(bytes: usize) -> std::alloc::Layout {
        std::alloc::Layout::from_size_align(bytes, 256).unwrap()
    }

    fn zeros(bytes: usize) -> HostMem {
        let layout = Self::layout(bytes);
        // SAFETY: the layout has a non-zero size (a size class is at least 512 bytes).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        HostMem { ptr, bytes }
    }
}

impl Drop for HostMem {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeros` with this same layout.
        unsafe { std::alloc::dealloc(self.ptr, Self::layout(self.bytes)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_waste_at_most_a_fifth() {
        assert_eq!(size_class(1), 512);
        assert_eq!(size_class(4096), 4096);
        assert_eq!(size_class(4097), 5120);
        assert_eq!(size_class(1 << 20), 1 << 20);
        for b in (1..1 << 22).step_by(9973) {
            let c = size_class(b);
            assert!(c >= b && (c - b) * 5 <= c.max(2560), "{b} -> {c}");
        }
    }
}
