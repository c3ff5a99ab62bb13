//! The memory `--shape MxKxN` asks for, checked before any matrix is allocated.
//!
//! Rows run one after the other and free their buffers, so what counts is the largest row:
//! - a CPU matmul holds A, B and C in f32: 4·(MK + KN + MN) bytes;
//! - a memory-bound op on `[M, N]` holds its input in f32 and f64, its output in f32, the f64
//!   reference and the output widened to f64, and M targets: 32·MN + 4·M;
//! - a GPU matmul holds A, B and C on the GPU (4·(MK + KN + MN) in fp32, less in bf16) and, on
//!   the host, A and B in f32 plus one converted copy: 8·(MK + KN).

use super::{Entry, Shape};
use pretrain::model::memory::MemoryEstimate;
use pretrain::tensor::cuda::Gpu;
use pretrain::tensor::{Device, devices};

/// Host bytes of the row `kernel` on `shape` (see the module docs).
fn host_bytes(kernel: &str, s: Shape) -> f64 {
    let (m, k, n) = (s.m as f64, s.k as f64, s.n as f64);
    if kernel.starts_with("cuda") {
        8.0 * (m * k + k * n)
    } else if kernel.starts_with("matmul") {
        4.0 * (m * k + k * n + m * n)
    } else {
        32.0 * m * n + 4.0 * m
    }
}

/// Refuses a `--shape` whose largest selected row cannot fit in the host's available memory, or
/// whose GPU rows cannot fit in the GPU's memory.
pub(super) fn check(entries: &[Entry], shape: Shape, gpu: Option<&Gpu>) -> anyhow::Result<()> {
    let what = format!("--shape {shape}");
    let host = entries
        .iter()
        .map(|e| host_bytes(e.kernel, shape))
        .fold(0.0, f64::max);
    let need = MemoryEstimate {
        parts: vec![("matrices", host)],
    };
    need.check(&what, "the CPU", devices::available_memory(Device::Cpu))?;
    let Some(gpu) = gpu.filter(|_| entries.iter().any(|e| e.kernel.starts_with("cuda"))) else {
        return Ok(());
    };
    let (m, k, n) = (shape.m as f64, shape.k as f64, shape.n as f64);
    let need = MemoryEstimate {
        parts: vec![("matrices", 4.0 * (m * k + k * n + m * n))],
    };
    need.check(&what, &gpu.describe(), gpu.total_memory())
}
