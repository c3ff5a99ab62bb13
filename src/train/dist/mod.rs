//! Communication between the processes of a distributed run: the [`Comm`] interface, one process
//! ([`Single`], the default, which costs nothing) or many over MPI (`mpi`, behind the cargo
//! feature of that name).
//!
//! Every parallel strategy is built from a few collective operations. Each process (a *rank*,
//! numbered `0..world_size`) calls the same operation in the same order, and MPI moves the bytes:
//!
//! - **all-reduce (sum)**: every rank ends with the element-wise sum of every rank's buffer. Data
//!   parallel training uses it to add up the gradients that each rank computed on its own batch.
//! - **reduce-scatter (sum)**: the same sum, but rank `r` keeps only the `r`-th of `N` equal
//!   blocks of it. ZeRO-2 uses it: each rank needs only the gradients of the weights it updates.
//! - **all-gather**: every rank contributes one block and ends with all `N` of them, in rank
//!   order. ZeRO uses it to give every rank the weights that the others updated. An all-reduce
//!   *is* a reduce-scatter followed by an all-gather, which is why it costs twice as much.
//! - **broadcast**: every rank ends with the root's buffer (e.g. the initial weights).
//! - **send / receive**: one rank to one other; pipeline stages pass activations this way.
//! - **barrier**: nobody continues until everyone has arrived.
//!
//! A [`Comm`] can be [split](Comm::split) into sub-groups: with tensor parallelism inside data
//! parallelism, for example, the ranks that share a layer's shards all-reduce among themselves.
//!
//! We never write a transport of our own: on CPUs the messages go through MPI (Open MPI here),
//! the library clusters have used for thirty years. A program started by `mpirun -np N` finds its
//! rank in the environment; [`connect`] picks MPI then, and [`Single`] otherwise.

#[cfg(feature = "mpi")]
mod mpi;
pub mod launch;
pub mod layout;
pub mod pipeline;
pub mod relay;
pub mod tp;
pub mod zero;

pub use layout::{Layout, PipeSchedule};

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
    /// Sums `send` (`world_size()` equal blocks) over all ranks and leaves block `rank()` of the
    /// sum in `recv`; `send.len()` must be `recv.len() × world_size()`.
    fn reduce_scatter_sum_f32(&self, send: &[f32], recv: &mut [f32]);
    /// Concatenates every rank's `send`, in rank order, into `recv` on every rank;
    /// `recv.len()` must be `send.len() × world_size()`.
    fn all_gather_f32(&self, send: &[f32], recv: &mut [f32]);
    /// Replaces `buf` on every rank by rank `root`'s.
    fn broadcast_f32(&self, buf: &mut [f32], root: usize);
    /// Sends `buf` to rank `to`, which must call [`Comm::recv_f32`] with a buffer of the same
    /// length. Returns once `buf` may be reused (it may or may not have arrived yet).
    fn send_f32(&self, buf: &[f32], to: usize);
    /// Fills `buf` with what rank `from` sends next.
    fn recv_f32(&self, buf: &mut [f32], from: usize);
    /// Sends `send` to rank `to` while receiving `recv` from rank `from`, in one call, so that
    /// two ranks can exchange buffers without each waiting for the other to receive first.
    fn send_recv_f32(&self, send: &[f32], to: usize, recv: &mut [f32], from: usize);
    /// The sub-group of the ranks that pass the same `color`, numbered in the order of their
    /// ranks here. Every rank must call it (it is a collective).
    fn split(&self, color: usize) -> Box<dyn Comm>;
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
    fn reduce_scatter_sum_f32(&self, send: &[f32], recv: &mut [f32]) {
        recv.copy_from_slice(send);
    }
    fn all_gather_f32(&self, send: &[f32], recv: &mut [f32]) {
        recv.copy_from_slice(send);
    }
    fn broadcast_f32(&self, _: &mut [f32], _: usize) {}
    fn send_f32(&self, _: &[f32], to: usize) {
        panic!("a single process has no rank {to} to send to");
    }
    fn recv_f32(&self, _: &mut [f32], from: usize) {
        panic!("a single process has no rank {from} to receive from");
    }
    fn send_recv_f32(&self, send: &[f32], to: usize, recv: &mut [f32], from: usize) {
        assert!(to == 0 && from == 0, "a single process has only rank 0");
        recv.copy_from_slice(send);
    }
    fn split(&self, _: usize) -> Box<dyn Comm> {
        Box::new(Single)
    }
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

/// All-reduce (sum) written out from [`Comm::send_recv_f32`], the way NCCL and most MPI
/// libraries do it for large buffers: the *ring*. The buffer is cut into `N` chunks. In `N − 1`
/// reduce-scatter steps each rank sends one chunk to its right neighbour and adds the chunk it
/// gets from its left one, so that after them rank `r` holds chunk `r + 1` summed over all
/// ranks; in `N − 1` all-gather steps the finished chunks travel once more around the ring.
/// Each rank sends `2(N − 1)/N` of the buffer in all, however many ranks there are: that is why
/// data parallelism scales. Returns the bytes this rank sent. (Summation order differs from
/// MPI's own all-reduce, so the last bits can too.)
pub fn ring_all_reduce(comm: &dyn Comm, buf: &mut [f32]) -> usize {
    let (n, r) = (comm.world_size(), comm.rank());
    if n == 1 {
        return 0;
    }
    let len = buf.len();
    let chunk = |i: usize| {
        let i = i % n;
        (i * len / n)..((i + 1) * len / n)
    };
    let (right, left) = ((r + 1) % n, (r + n - 1) % n);
    let mut sent = 0;
    let mut incoming = vec![0.0f32; buf.len().div_ceil(n)];
    // Step s: send chunk r − s (partly summed), receive chunk r − s − 1 and add ours to it.
    for s in 0..n - 1 {
        let (out, inc) = (chunk(r + n - s), chunk(r + n - s - 1));
        let got = &mut incoming[..inc.len()];
        comm.send_recv_f32(&buf[out.clone()], right, got, left);
        sent += out.len() * 4;
        buf[inc]
            .iter_mut()
            .zip(got.iter())
            .for_each(|(b, g)| *b += g);
    }
    // Now rank r holds chunk r + 1 complete; pass the complete chunks around.
    for s in 0..n - 1 {
        let (out, inc) = (chunk(r + 1 + n - s), chunk(r + n - s));
        let got = &mut incoming[..inc.len()];
        comm.send_recv_f32(&buf[out.clone()], right, got, left);
        sent += out.len() * 4;
        buf[inc].copy_from_slice(got);
    }
    sent
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
        let mut out = [0.0; 2];
        c.reduce_scatter_sum_f32(&[3.0, 4.0], &mut out);
        assert_eq!(out, [3.0, 4.0]);
        c.split(7).all_gather_f32(&[5.0, 6.0], &mut out);
        assert_eq!(out, [5.0, 6.0]);
        assert!(c.is_root());
        assert_eq!(c.world_size(), 1);
    }
}
