//! Every kernel file, embedded in the binary, and how it is compiled.
//!
//! A file is compiled once per (architecture, [`Precision`]) it is used with: the precision
//! decides what `floatX` means inside it (see `kernels/common.cuh`).

use super::Precision;
use super::nvrtc::{self, Compiled};

/// One `.cu` file from `kernels/`.
pub struct Source {
    pub file: &'static str,
    pub code: &'static str,
}

macro_rules! kernel {
    ($file:literal) => {
        Source {
            file: $file,
            code: include_str!(concat!("../../../kernels/", $file)),
        }
    };
}

/// Every kernel file, in lesson order.
pub const SOURCES: &[Source] = &[
    kernel!("cast.cu"),
    kernel!("matmul_v1_naive.cu"),
    kernel!("matmul_v2_tiled.cu"),
    kernel!("matmul_v3_register.cu"),
    kernel!("matmul_v4_tensorcore.cu"),
    kernel!("layernorm.cu"),
    kernel!("gelu.cu"),
    kernel!("fill.cu"),
    kernel!("adamw.cu"),
    kernel!("norm.cu"),
    kernel!("attention.cu"),
    kernel!("attention_v2.cu"),
    kernel!("copy.cu"),
    kernel!("elementwise.cu"),
    kernel!("reduce.cu"),
    kernel!("softmax.cu"),
    kernel!("embedding.cu"),
    kernel!("cross_entropy.cu"),
];

/// Headers a kernel may `#include "..."`.
pub const HEADERS: &[(&str, &str)] = &[
    ("common.cuh", include_str!("../../../kernels/common.cuh")),
    ("pack.cuh", include_str!("../../../kernels/pack.cuh")),
    ("colsum.cuh", include_str!("../../../kernels/colsum.cuh")),
    ("strided.cuh", include_str!("../../../kernels/strided.cuh")),
];

/// The source of `file`, if there is one.
pub fn source(file: &str) -> Option<&'static Source> {
    SOURCES.iter().find(|s| s.file == file)
}

/// NVRTC options for compute capability `arch` (90 for sm_90 = Hopper, 80 = Ampere).
pub fn options(arch: u32, precision: Precision, resource_report: bool) -> Vec<String> {
    let mut opts = vec![
        format!("--gpu-architecture=sm_{arch}"),
        "--std=c++17".to_string(),
        "--generate-line-info".to_string(),
    ];
    for dir in nvrtc::include_dirs() {
        opts.push(format!("--include-path={}", dir.display()));
    }
    if precision == Precision::Bf16 {
        opts.push("-DPRETRAIN_BF16".to_string());
    }
    if resource_report {
        opts.push("--ptxas-options=-v".to_string());
    }
    opts
}

/// Compiles `file` for `arch` with `precision`. The error names the file and carries the log.
pub fn compile(
    file: &str,
    arch: u32,
    precision: Precision,
    resource_report: bool,
) -> Result<Compiled, String> {
    let src = source(file).ok_or_else(|| format!("no kernel file {file}"))?;
    let nvrtc = nvrtc::get()?;
    nvrtc
        .compile(
            src.code,
            file,
            HEADERS,
            &options(arch, precision, resource_report),
        )
        .map_err(|e| {
            format!(
                "compiling kernels/{file} for sm_{arch} ({}): {e}",
                precision.name()
            )
        })
}
