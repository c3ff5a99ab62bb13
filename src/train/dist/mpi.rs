//! [`Comm`] over MPI, through rsmpi (the `mpi` crate): each call is the MPI operation of the
//! same name, on `MPI_COMM_WORLD` or on a sub-communicator split from it.
//!
//! rsmpi's all-reduce reads one buffer and writes another (no `MPI_IN_PLACE`), so the input is
//! copied first. Only the main thread calls MPI (`MPI_THREAD_SINGLE`); rayon's threads compute.

use super::Comm;
use anyhow::{Result, anyhow};
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::point_to_point::{Destination, Source};
use mpi::topology::{Color, SimpleCommunicator};
use mpi::traits::{Communicator, CommunicatorCollectives, Root};
use std::rc::Rc;

/// A group of MPI ranks: the world `mpirun` started, or a sub-group split from it.
pub struct Mpi {
    world: SimpleCommunicator,
    /// Finalises MPI when the last communicator that shares it is dropped (fields drop in
    /// order, so the communicator is freed first).
    _universe: Rc<Universe>,
}

impl Mpi {
    /// Initialises MPI (once per process).
    pub fn init() -> Result<Mpi> {
        let universe = mpi::initialize().ok_or_else(|| anyhow!("MPI was already initialised"))?;
        Ok(Mpi {
            world: universe.world(),
            _universe: Rc::new(universe),
        })
    }
}

impl Comm for Mpi {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }
    fn world_size(&self) -> usize {
        self.world.size() as usize
    }
    fn all_reduce_sum_f32(&self, buf: &mut [f32]) {
        let send = buf.to_vec();
        self.world
            .all_reduce_into(&send[..], buf, SystemOperation::sum());
    }
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) {
        let send = buf.to_vec();
        self.world
            .all_reduce_into(&send[..], buf, SystemOperation::sum());
    }
    fn reduce_scatter_sum_f32(&self, send: &[f32], recv: &mut [f32]) {
        self.world
            .reduce_scatter_block_into(send, recv, SystemOperation::sum());
    }
    fn all_gather_f32(&self, send: &[f32], recv: &mut [f32]) {
        self.world.all_gather_into(send, recv);
    }
    fn broadcast_f32(&self, buf: &mut [f32], root: usize) {
        self.world.process_at_rank(root as i32).broadcast_into(buf);
    }
    fn send_f32(&self, buf: &[f32], to: usize) {
        self.world.process_at_rank(to as i32).send(buf);
    }
    fn recv_f32(&self, buf: &mut [f32], from: usize) {
        self.world.process_at_rank(from as i32).receive_into(buf);
    }
    fn send_recv_f32(&self, send: &[f32], to: usize, recv: &mut [f32], from: usize) {
        let (to, from) = (
            self.world.process_at_rank(to as i32),
            self.world.process_at_rank(from as i32),
        );
        mpi::point_to_point::send_receive_into(send, &to, recv, &from);
    }
    fn split(&self, color: usize) -> Box<dyn Comm> {
        let color = Color::with_value(color as i32);
        let sub = self
            .world
            .split_by_color(color)
            .expect("a defined color always gives a communicator");
        Box::new(Mpi {
            world: sub,
            _universe: Rc::clone(&self._universe),
        })
    }
    fn barrier(&self) {
        self.world.barrier();
    }
    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}
