//! The tensor engine: N-d tensors over shared storage on the CPU or a CUDA GPU, ops that
//! dispatch on the device, and a define-by-run autograd tape (lessons 04, 05 and 08).
//!
//! - [`Tensor`](crate::tensor::Tensor): shape + strides + offset over an `Arc`-shared [`Storage`](crate::tensor::Storage). Views (reshape of a
//!   contiguous tensor, `permute`/`transpose`/`t`, `narrow`, `expand`, `split`) share memory;
//!   `contiguous()` copies only when needed. Cloning a tensor is an `Arc` clone.
//! - Creation: `zeros`, `ones`, `full`, `arange`, `from_vec`, `randn`/`uniform` from a seeded
//!   [`Rng`](crate::tensor::Rng) whose state can be saved; bf16/f16 conversion through `half`.
//! - Ops compute in `f32` (`f64` for gradient checks; `bf16` storage with f32 arithmetic on a
//!   GPU) and go through `backend`, the one place that dispatches on
//!   [`Device`](crate::tensor::Device): its CPU arm calls the kernels of `crate::tensor::cpu`,
//!   its CUDA arm our kernels through `crate::tensor::cuda`. [`Tensor::to`] moves a tensor;
//!   [`devices`](crate::tensor::devices) picks and describes devices.
//! - Autograd: ops on tensors that require grad record a node; `loss.backward()` fills `grad()` of
//!   every leaf; [`no_grad`](crate::tensor::no_grad) turns recording off; `update_` changes a parameter in place.
//! - Ops (each differentiable): `add/sub/mul/div` with broadcasting (also `+ - * /` on `&Tensor`
//!   and `f64`), `add_scalar`, `mul_scalar`, `neg`, `exp`, `log`, `sqrt`, `tanh`, `relu`, `powf`,
//!   `gelu`; `sum/mean/max(axis, keepdim)`, `sum_all`, `mean_all`; `matmul` (2-d, batched,
//!   broadcast batch), `linear(w, b)`; `softmax`, `log_softmax`, `causal_softmax(scale)`,
//!   `layer_norm`, `embedding`, `cross_entropy[_ignore]`, `masked_fill`, `causal_mask`; views
//!   `reshape`, `permute`, `transpose`, `t`, `narrow`, `expand`, `split`, `chunk`; `cat`;
//!   `contiguous`, `to_dtype`; fused: `causal_self_attention(n_head)` (from a `[B, T, 3C]` qkv),
//!   `classifier_loss` (the LM head with its loss), and the optimizer's `adamw_`; tensor
//!   parallel's `tp_copy` and `tp_reduce` ([`parallel`](crate::tensor::parallel)). A shape
//!   mismatch panics naming the op and both shapes; so do operands on two devices.
//! - [`gradcheck`](crate::tensor::gradcheck) checks every op's backward against finite differences in `f64`
//!   (`|analytic − numeric| ≤ 1e-6·(1 + |numeric|)`, eps 1e-6).
//! - [`profile`](crate::tensor::profile) times every backend op (forward and backward) when
//!   enabled (on a GPU: the host's time to queue it); [`pool`](crate::tensor::pool) recycles
//!   large host buffers between steps, as the GPU's caching allocator does its memory.

mod attention;
mod fused;
mod autograd;
pub mod backend;
/// The CPU backend: kernels on slices, matmul from naive to SIMD (lesson 04).
pub mod cpu;
/// The CUDA backend: our kernels compiled by NVRTC, launched through cudarc (lesson 08).
pub mod cuda;
pub mod devices;
pub mod gradcheck;
mod ops;
/// Megatron's f and g ops over a group of ranks (tensor parallel, lesson 09).
pub mod parallel;
pub mod pool;
pub mod profile;
pub mod rng;
pub mod shape;
pub mod storage;
#[allow(clippy::module_inception)]
mod tensor;

pub use autograd::{NoGradGuard, is_grad_enabled, no_grad};
pub use backend::AdamwHyper;
pub use rng::Rng;
pub use storage::{DType, Device, Element, Storage};
pub use tensor::Tensor;
