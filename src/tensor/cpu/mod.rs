//! CPU kernels: plain loops over `&[f32]` slices, kept apart from the tensor bookkeeping so each
//! can be read, tested and timed on its own. The tensor ops in `crate::tensor` call these.
//! Most are generic over [`Float`](crate::tensor::cpu::float::Float) so gradient checks can run the same code in `f64`.

pub mod adamw;
pub mod attention;
pub mod classifier;
pub mod cross_entropy;
pub mod elementwise;
pub mod embedding;
pub mod fastmath;
pub mod float;
pub mod gelu;
pub mod layernorm;
pub mod matmul;
pub mod reduce;
pub mod softmax;
