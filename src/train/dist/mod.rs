//! Communication between the processes of a distributed run: the [`Comm`] interface, one process
//! ([`Single`], the default, which costs nothing) or many over MPI (`mpi`, behind the cargo
//! feature of that name).
//!
//! Every parallel strategy is built from a few collective operations. Each process (a *rank*,
//! numbered `0..world_size`) calls the same operation in the same order, and MPI moves the bytes:
//!
//! - **all-reduce (sum)**: every rank ends with the element-wise sum of every rank's buffer. Data
//!   parallel training uses it to add up the gradients that each rank computed on its own batch.
//! - **broadcast**: every rank ends with the root's buffer (e.g. the initial weights).
//! - **barrier**: nobody continues until everyone has arrived.
//!
//! We never write a transport of our own: on CPUs the messages go through MPI (Open MPI here),
//! the library clusters have used for thirty years. A program started by `mpirun -np N` finds its
//! rank in the environment; [`connect`] picks MPI then, and [`Single`] otherwise.

#[cfg(feature = "mpi")]
mod mpi;
pub mod launch;

use crate::tensor::Tensor;
use anyhow::Result;

/// The collective operations a distributed strategy needs. Buffers are host memory; the
/// provided methods move tensors (on any device) through them.
pub trait Comm {
    /// This process's number, `0..world_size()`. Rank 0 writes the run's files.
    fn rank(&self) -> usize;
    /// How many processes take part.
    fn world_size(&self) -> usize;
    /// Replaces `buf` on every rank by the element-wise sum over all ranks.
    fn all_reduce_sum_f32(&self, buf: &mut [f32]);
    /// [`Comm::all_reduce_sum_f32`] for `f64` (losses and counters).
    fn all_reduce_sum_f64(&self, buf: &mut [f64]);
    /// Replaces `buf` on every rank by rank `root`'s.
    fn broadcast_f32(&self, buf: &mut [f32], root: usize);
    /// Returns once every rank has called it.
    fn barrier(&self);
    /// Ends every rank of the run at once with exit code `code` (after an error on one rank,
    /// so that the others do not wait forever in their next collective).
    fn abort(&self, code: i32) -> !;

    /// True on the rank that writes metrics, samples and checkpoints.
    fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// Sums `t` over all ranks, in place (through an `f32` host buffer: MPI has no in-place
    /// all-reduce in rsmpi, and a GPU tensor is copied to the host first).
    fn all_reduce_sum(&self, t: &Tensor) {
        if self.world_size() > 1 {
            let mut buf = t.to_vec();
            self.all_reduce_sum_f32(&mut buf);
            t.copy_from(&Tensor::from_vec(buf, t.shape()));
        }
    }

    /// Overwrites `t` on every rank with rank `root`'s values.
    fn broadcast(&self, t: &Tensor, root: usize) {
        if self.world_size() > 1 {
            let mut buf = t.to_vec();
            self.broadcast_f32(&mut buf, root);
            t.copy_from(&Tensor::from_vec(buf, t.shape()));
        }
    }
}

/// World size 1: every collective is the identity, and nothing is sent.
#[derive(Clone, Copy, Debug, Default)]
pub struct Single;

impl Comm for Single {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    fn all_reduce_sum_f32(&self, _: &mut [f32]) {}
    fn all_reduce_sum_f64(&self, _: &mut [f64]) {}
    fn broadcast_f32(&self, _: &mut [f32], _: usize) {}
    fn barrier(&self) {}
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// Sums the gradients of `params` over all ranks in one flat buffer: one message per step
/// rather than one per tensor. A parameter that got no gradient counts as zeros. (Splitting the
/// buffer into buckets sent while backward still runs, to hide the communication, is the next
/// step and not done yet.)
pub fn all_reduce_grads(comm: &dyn Comm, params: &[Tensor]) {
    if comm.world_size() == 1 {
        return;
    }
    let mut flat = Vec::with_capacity(params.iter().map(Tensor::numel).sum());
    for p in params {
        match p.grad() {
            Some(g) => flat.extend(g.to_vec()),
            None => flat.resize(flat.len() + p.numel(), 0.0),
        }
    }
    comm.all_reduce_sum_f32(&mut flat);
    let mut rest = flat.as_slice();
    for p in params {
        let (mine, tail) = rest.split_at(p.numel());
        rest = tail;
        let summed = Tensor::from_vec(mine.to_vec(), p.shape());
        match p.grad() {
            Some(g) => g.copy_from(&summed),
            None => p.set_grad(Some(summed.to(p.device()))),
        }
    }
}

/// The environment variable `mpirun` (Open MPI) sets to the world size in every rank it starts.
pub const MPI_WORLD_SIZE_VAR: &str = "OMPI_COMM_WORLD_SIZE";

/// The communicator for this process: MPI when `mpirun` started it (and the binary was built
/// with the `mpi` feature), else [`Single`]. Call once, at the start of `main`; MPI stays
/// initialised for as long as the returned value lives.
pub fn connect() -> Result<Box<dyn Comm>> {
    let launched = std::env::var(MPI_WORLD_SIZE_VAR)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1);
    if launched <= 1 {
        return Ok(Box::new(Single));
    }
    connect_mpi(launched)
}

#[cfg(feature = "mpi")]
fn connect_mpi(_launched: usize) -> Result<Box<dyn Comm>> {
    Ok(Box::new(mpi::Mpi::init()?))
}

#[cfg(not(feature = "mpi"))]
fn connect_mpi(launched: usize) -> Result<Box<dyn Comm>> {
    anyhow::bail!(
        "started by mpirun as one of {launched} ranks, but this binary was built without MPI; \
         rebuild with `cargo build --release --features mpi`"
    )
}

/// True when this binary can talk MPI (built with the `mpi` feature).
pub const HAS_MPI: bool = cfg!(feature = "mpi");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_is_the_identity() {
        let c = Single;
        let t = Tensor::from_vec(vec![1.0, 2.0], &[2]);
        c.all_reduce_sum(&t);
        c.broadcast(&t, 0);
        assert_eq!(t.to_vec(), vec![1.0, 2.0]);
        assert!(c.is_root());
        assert_eq!(c.world_size(), 1);
    }
}
