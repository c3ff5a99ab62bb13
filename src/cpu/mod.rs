//! CPU kernels: plain loops over `&[f32]` slices, kept apart from the tensor bookkeeping so each
//! can be read, tested and timed on its own. The tensor ops in `crate::tensor` call these.

pub mod matmul;
