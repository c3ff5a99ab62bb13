//! TEMPORARY: the launchers `gpt.rs` calls, declared with the signatures of the API contract in
//! the CUDA brief, so the model compiles before the kernel branches land. Each body is a
//! `todo!` naming the branch that brings the real one. At merge, delete this file and point the
//! one `use` line at the top of `exec.rs` to `super::{attention, matmul, ops}`.

/// Lands with branch cuda-matmul (`src/cuda/matmul.rs`).
pub mod matmul {
    use crate::cuda::{DevPtr, Gpu, GpuFloat};
    use anyhow::Result;

    /// The matmul versions, slowest to fastest, and cuBLAS as the reference.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Version {
        V1Naive,
        V2Tiled,
        V3Register,
        V4TensorCore,
        Cublas,
    }

    /// `C[m,n] = (accumulate ? C : 0) + op(A)·op(B) (+ bias[n])`; `op(A)` is `[m,k]` (stored
    /// `[k,m]` when `ta`), `op(B)` is `[k,n]` (stored `[n,k]` when `tb`).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm<X: GpuFloat>(
        _gpu: &Gpu,
        _v: Version,
        _m: usize,
        _k: usize,
        _n: usize,
        _a: DevPtr<X>,
        _ta: bool,
        _b: DevPtr<X>,
        _tb: bool,
        _c: DevPtr<X>,
        _bias: Option<DevPtr<X>>,
        _accumulate: bool,
    ) -> Result<()> {
        todo!("lands with branch cuda-matmul")
    }

    /// The fastest of our versions for `X`.
    pub fn best<X: GpuFloat>() -> Version {
        // As on branch cuda-matmul.
        match X::PRECISION {
            crate::cuda::Precision::Bf16 => Version::V4TensorCore,
            crate::cuda::Precision::F32 => Version::V3Register,
        }
    }
}

/// Lands with branch cuda-ops (`src/cuda/ops.rs`).
pub mod ops {
    use crate::cuda::{DevPtr, Gpu, GpuFloat};
    use anyhow::Result;

    // Already on main.
    pub use crate::cuda::ops::{cast_to_float, cast_to_floatx};

    /// One AdamW step's settings for one parameter tensor (see `kernels/adamw.cu`).
    #[derive(Clone, Copy, Debug)]
    pub struct AdamwArgs {
        pub lr: f32,
        pub beta1: f32,
        pub beta2: f32,
        pub eps: f32,
        pub weight_decay: f32,
        pub grad_scale: f32,
        pub step: u32,
    }

    #[allow(clippy::too_many_arguments)]
    pub fn encoder_forward<X: GpuFloat>(
        _gpu: &Gpu,
        _out: DevPtr<X>,
        _tokens: DevPtr<i32>,
        _wte: DevPtr<X>,
        _wpe: DevPtr<X>,
        _b: usize,
        _t: usize,
        _c: usize,
    ) -> Result<()> {
        todo!("lands with branch cuda-ops")
    }

    /// fp32 scratch of `encoder_backward` (one per element of `wte`; zero on entry and exit).
    pub fn encoder_scratch_len(v: usize, c: usize) -> usize {
        v * c
    }

    /// Extended by cuda-ops with `scratch` ([`encoder_scratch_len`] fp32, kept zeroed).
    #[allow(clippy::too_many_arguments)]
    pub fn encoder_backward<X: GpuFloat>(
        _gpu: &Gpu,
        _dwte: DevPtr<X>,
        _dwpe: DevPtr<X>,
        _dout: DevPtr<X>,
        _tokens: DevPtr<i32>,
        _b: usize,
        _t: usize,
        _c: usize,
        _scratch: DevPtr<f32>,
    ) -> Result<()> {
        todo!("lands with branch cuda-ops")
    }

    #[allow(clippy::too_many_arguments)]
    pub fn layernorm_forward<X: GpuFloat>(
        _gpu: &Gpu,
        _out: DevPtr<X>,
        _mean: DevPtr<f32>,
        _rstd: DevPtr<f32>,
        _inp: DevPtr<X>,
        _weight: DevPtr<X>,
        _bias: DevPtr<X>,
        _n: usize,
        _c: usize,
    ) -> Result<()> {
        todo!("lands with branch cuda-ops")
    }

    #[allow(clippy::too_many_arguments)]
    pub fn layernorm_backward<X: GpuFloat>(
        _gpu: &Gpu,
        _dinp: DevPtr<X>,
        _dweight: DevPtr<X>,
        _dbias: DevPtr<X>,
        _dout: DevPtr<X>,
        _inp: DevPtr<X>,
        _weight: DevPtr<X>,
        _mean: DevPtr<f32>,
        _rstd: DevPtr<f32>,
        _n: usize,
        _c: usize,
    ) -> Result<()> {
        todo!("lands with branch cuda-ops")
    }

    pub fn gelu_forward<X: GpuFloat>(_gpu: &Gpu, _out: DevPtr<X>, _inp: DevPtr<X>) -> Result<()> {
        todo!("lands with branch cuda-ops")
    }

    pub fn gelu_backward<X: GpuFloat>(
        _gpu: &Gpu,
        _dinp: DevPtr<X>,
        _inp: DevPtr<X>,
        _dout: DevPtr<X>,
    ) -> Result<()> {
        todo!("lands with branch cuda-ops")
    }

    pub fn residual_forward<X: GpuFloat>(
        _gpu: &Gpu,
        _out: DevPtr<X>,
        _a: DevPtr<X>,
        _b: DevPtr<X>,
    ) -> Result<()> {
        todo!("lands with branch cuda-ops")
    }

    pub fn add_into<X: GpuFloat>(_gpu: &Gpu, _dst: DevPtr<X>, _src: DevPtr<X>) -> Result<()> {
        todo!("lands with branch cuda-ops")
    }

    pub fn bias_backward<X: GpuFloat>(
        _gpu: &Gpu,
        _dbias: DevPtr<X>,
        _dout: DevPtr<X>,
        _n: usize,
        _oc: usize,
    ) -> Result<()> {
        todo!("lands with branch cuda-ops")
    }

    pub fn adamw_update<X: GpuFloat>(
        _gpu: &Gpu,
        _params: DevPtr<X>,
        _master: DevPtr<f32>,
        _grads: DevPtr<X>,
        _m: DevPtr<f32>,
        _v: DevPtr<f32>,
        _h: &AdamwArgs,
    ) -> Result<()> {
        todo!("lands with branch cuda-ops")
    }

    pub fn grad_norm_squared<X: GpuFloat>(
        _gpu: &Gpu,
        _out: DevPtr<f32>,
        _grads: DevPtr<X>,
    ) -> Result<()> {
        todo!("lands with branch cuda-ops")
    }
}

/// Lands with branch cuda-attn (`src/cuda/attention.rs`).
pub mod attention {
    use crate::cuda::{DevPtr, Gpu, GpuFloat};
    use anyhow::Result;

    #[allow(clippy::too_many_arguments)]
    pub fn attention_forward<X: GpuFloat>(
        _gpu: &Gpu,
        _out: DevPtr<X>,
        _lse: DevPtr<f32>,
        _qkv: DevPtr<X>,
        _b: usize,
        _t: usize,
        _nh: usize,
        _hs: usize,
    ) -> Result<()> {
        todo!("lands with branch cuda-attn")
    }

    /// Elements of fp32 scratch `attention_backward` needs.
    pub fn attention_scratch_len(b: usize, t: usize, nh: usize, _hs: usize) -> usize {
        // As on branch cuda-attn: one float per (batch, head, row).
        b * nh * t
    }

    #[allow(clippy::too_many_arguments)]
    pub fn attention_backward<X: GpuFloat>(
        _gpu: &Gpu,
        _dqkv: DevPtr<X>,
        _dout: DevPtr<X>,
        _out: DevPtr<X>,
        _qkv: DevPtr<X>,
        _lse: DevPtr<f32>,
        _scratch: DevPtr<f32>,
        _b: usize,
        _t: usize,
        _nh: usize,
        _hs: usize,
    ) -> Result<()> {
        todo!("lands with branch cuda-attn")
    }

    #[allow(clippy::too_many_arguments)]
    pub fn classifier_forward_backward<X: GpuFloat>(
        _gpu: &Gpu,
        _logits: DevPtr<X>,
        _losses: DevPtr<f32>,
        _targets: DevPtr<i32>,
        _n: usize,
        _v: usize,
        _vp: usize,
        _dloss: f32,
    ) -> Result<()> {
        todo!("lands with branch cuda-attn")
    }
}
