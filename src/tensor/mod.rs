//! The tensor engine: N-d tensors over shared storage, ops that dispatch on the device, and a
//! define-by-run autograd tape.
