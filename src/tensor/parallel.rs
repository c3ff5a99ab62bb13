//! The two autograd ops of tensor parallelism, Megatron-LM's *f* and *g*
//! (`core/tensor_parallel/mappings.py`), over a [`Group`] of ranks that each hold a slice of a
//! layer's weights:
//!
//! ```text
//!   f  (copy_to_tensor_parallel):    forward  y = x             backward  dx = Σ_ranks dy
//!   g  (reduce_from_tensor_parallel): forward  y = Σ_ranks x     backward  dx = dy
//! ```
//!
//! A column-parallel matmul (each rank keeps some output columns) reads the whole input, so
//! every rank's part of the loss depends on `x`: its gradient is the sum of the ranks' partial
//! gradients, which is what *f* adds in backward. A row-parallel matmul (each rank keeps some
//! input rows) leaves each rank with a partial sum of the output, which *g* completes in forward.
//!
//! The tensor engine knows nothing of MPI (the trainer, which does, sits above it). A group is a
//! [`GroupSum`], "add this `f32` buffer over the ranks", that the trainer registers here from
//! its communicator; the ops capture only the group's number. Registered groups live in a
//! thread-local table, because an MPI communicator may only be used from the thread that made
//! it; backward runs on the thread that called it, the one that ran forward. A group also
//! counts the bytes it all-reduces, forward and backward, for the lesson's measurements.

use super::autograd::record;
use super::backend;
use super::tensor::Tensor;
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The one collective tensor parallelism needs: an element-wise sum over the group's ranks.
pub trait GroupSum {
    /// This rank's number in the group, `0..size()`.
    fn rank(&self) -> usize;
    /// How many ranks share each layer.
    fn size(&self) -> usize;
    /// Replaces `buf` on every rank of the group by the element-wise sum over them.
    fn sum_f32(&self, buf: &mut [f32]);
}

thread_local! {
    static GROUPS: RefCell<Vec<Box<dyn GroupSum>>> = const { RefCell::new(Vec::new()) };
}

/// Bytes of the buffers this group has all-reduced.
#[derive(Debug, Default)]
struct Traffic {
    forward: AtomicUsize,
    backward: AtomicUsize,
}

/// A registered tensor-parallel group: cheap to clone, safe to capture in a backward closure.
#[derive(Clone, Debug)]
pub struct Group {
    id: usize,
    rank: usize,
    size: usize,
    traffic: Arc<Traffic>,
}

impl Group {
    /// Registers `sum` on this thread (for as long as the thread lives) and returns its handle.
    pub fn register(sum: Box<dyn GroupSum>) -> Group {
        let (rank, size) = (sum.rank(), sum.size());
        let id = GROUPS.with(|g| {
            let mut g = g.borrow_mut();
            g.push(sum);
            g.len() - 1
        });
        Group {
            id,
            rank,
            size,
            traffic: Arc::default(),
        }
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Bytes all-reduced so far in forward passes (by *g*) and backward passes (by *f*): the
    /// size of each summed buffer, not what the transport sends on the wire.
    pub fn bytes_reduced(&self) -> (usize, usize) {
        let t = &self.traffic;
        (
            t.forward.load(Ordering::Relaxed),
            t.backward.load(Ordering::Relaxed),
        )
    }

    /// `x` summed over the group (through an `f32` host buffer, like the gradient all-reduce);
    /// the result has `x`'s shape, dtype and device.
    /// A group of one returns `x` as it is (any dtype: the gradient checks run in `f64`).
    fn all_reduce(&self, x: &Tensor, counter: &AtomicUsize) -> Tensor {
        counter.fetch_add(x.numel() * 4, Ordering::Relaxed);
        if self.size == 1 {
            return x.detach();
        }
        let mut buf = x.to_vec();
        GROUPS.with(|g| {
            let g = g.borrow();
            let sum = g.get(self.id).unwrap_or_else(|| {
                panic!(
                    "tensor parallel group {} is not registered on this thread",
                    self.id
                )
            });
            sum.sum_f32(&mut buf);
        });
        let host = Tensor::from_vec(buf, x.shape());
        backend::cast(&backend::to_device(&host, x.device()), x.dtype())
    }
}

impl Tensor {
    /// Megatron's *f*: the identity forward, the gradient summed over `group` in backward. Put
    /// it before a column-parallel matmul.
    pub fn tp_copy(&self, group: &Group) -> Tensor {
        let g2 = group.clone();
        record(self.detach(), "tp_copy", &[self], move |g| {
            vec![Some(g2.all_reduce(g, &g2.traffic.backward))]
        })
    }

    /// Megatron's *g*: the sum over `group` forward, the identity in backward. Put it after a
    /// row-parallel matmul, before its bias.
    pub fn tp_reduce(&self, group: &Group) -> Tensor {
        let out = group.all_reduce(self, &group.traffic.forward);
        record(out, "tp_reduce", &[self], |g| vec![Some(g.clone())])
    }
}
