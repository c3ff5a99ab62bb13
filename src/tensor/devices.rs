//! Choosing and describing the device tensors live on: what the layers above the tensor engine
//! need to know about CPUs and GPUs, without reaching into the backends.

use super::cuda::{self, Precision};
use super::storage::{DType, Device};
use std::time::Instant;

pub use super::cpu::classifier::CHUNK_FLOATS as CPU_CLASSIFIER_CHUNK_FLOATS;
pub use super::cuda::DeviceArg;
pub use super::cuda::alloc::MemoryStats;

/// Resolves `--device cpu|cuda|auto`: `Device::Cuda(0)` when a GPU was asked for (or `auto`)
/// and one opens, else `Device::Cpu`, after one line saying why (see `cuda::device::select`).
/// With `PRETRAIN_GPU_EMU=1`, `--device cuda` runs on the CPU emulator of the GPU.
pub fn select(arg: DeviceArg) -> Device {
    match cuda::select(arg) {
        Some(_) => Device::Cuda(0),
        None => Device::Cpu,
    }
}

/// "the CPU", or the GPU's name, architecture and SM count.
pub fn describe(device: Device) -> String {
    match device {
        Device::Cpu => "the CPU".to_string(),
        Device::Cuda(i) => match cuda::device::get(i) {
            Ok(g) => g.describe(),
            Err(_) => device.to_string(),
        },
    }
}

/// The device's peak matmul throughput in GFLOP/s for `dtype`, the denominator of MFU: measured
/// on the CPU ([`measured_cpu_peak_gflops`]), the datasheet's on a GPU.
pub fn peak_gflops(device: Device, dtype: DType) -> f64 {
    match device {
        Device::Cpu => measured_cpu_peak_gflops(),
        Device::Cuda(i) => {
            let p = match dtype {
                DType::BF16 => Precision::Bf16,
                _ => Precision::F32,
            };
            cuda::device::get(i).map_or(0.0, |g| g.peak_gflops(p))
        }
    }
}

/// Waits until all work queued on `device` is done (nothing to wait for on the CPU).
pub fn synchronize(device: Device) {
    if let Device::Cuda(i) = device
        && let Ok(g) = cuda::device::get(i)
    {
        g.sync().unwrap_or_else(|e| panic!("{device}: {e:#}"));
    }
}

/// GPU memory in use, its peak and what is reserved (`None` on the CPU).
pub fn memory(device: Device) -> Option<MemoryStats> {
    match device {
        Device::Cpu => None,
        Device::Cuda(i) => cuda::device::get(i).ok().map(|g| g.memory()),
    }
}

/// Bytes a run may use on `device`: the host's `MemAvailable` (from `/proc/meminfo`) for the
/// CPU, the total memory of a GPU; `None` where that is unknown (another OS, the emulator).
pub fn available_memory(device: Device) -> Option<u64> {
    match device {
        Device::Cpu => {
            let text = std::fs::read_to_string("/proc/meminfo").ok()?;
            mem_available(&text)
        }
        Device::Cuda(i) => cuda::device::get(i).ok()?.total_memory(),
    }
}

/// The `MemAvailable:  123456 kB` line of `/proc/meminfo`, in bytes.
pub fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut words = line["MemAvailable:".len()..].split_whitespace();
    let kb: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => kb.checked_mul(1024),
        _ => None,
    }
}

/// This machine's f32 matmul throughput (GFLOP/s) with our fastest CPU gemm on 1024³, best of
/// eight runs (the first warms the caches and the thread pool).
pub fn measured_cpu_peak_gflops() -> f64 {
    use super::cpu::matmul::{Layout, gemm};
    let n = 1024;
    let a = vec![0.5f32; n * n];
    let b = vec![0.25f32; n * n];
    let mut c = vec![0.0f32; n * n];
    let mut best = f64::INFINITY;
    for _ in 0..8 {
        let t = Instant::now();
        gemm(n, n, n, &a, Layout::N, &b, Layout::N, &mut c, false);
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (n * n * n) as f64 / best / 1e9
}

#[cfg(test)]
mod tests {
    #[test]
    fn mem_available_reads_the_meminfo_line() {
        let text = "MemTotal:       24000000 kB\nMemFree:  1 kB\nMemAvailable:   22559780 kB\n";
        assert_eq!(super::mem_available(text), Some(22_559_780 * 1024));
        assert_eq!(super::mem_available("MemTotal: 5 kB\n"), None);
        assert_eq!(super::mem_available("MemAvailable: lots\n"), None);
    }
}
