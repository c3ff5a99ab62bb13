//! [`Comm`] over MPI, through rsmpi (the `mpi` crate): each call is the MPI collective of the
//! same name on `MPI_COMM_WORLD`.
//!
//! rsmpi's all-reduce reads one buffer and writes another (no `MPI_IN_PLACE`), so the input is
//! copied first. Only the main thread calls MPI (`MPI_THREAD_SINGLE`); rayon's threads compute.

use super::Comm;
use anyhow::{Result, anyhow};
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Root};

/// The MPI world: every rank `mpirun` started.
pub struct Mpi {
    world: SimpleCommunicator,
    /// Finalises MPI when dropped, so it lives as long as the communicator.
    _universe: Universe,
}

impl Mpi {
    /// Initialises MPI (once per process).
    pub fn init() -> Result<Mpi> {
        let universe = mpi::initialize().ok_or_else(|| anyhow!("MPI was already initialised"))?;
        Ok(Mpi {
            world: universe.world(),
            _universe: universe,
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
    fn broadcast_f32(&self, buf: &mut [f32], root: usize) {
        self.world.process_at_rank(root as i32).broadcast_into(buf);
    }
    fn barrier(&self) {
        self.world.barrier();
    }
    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}
