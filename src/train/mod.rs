//! Stage 4: training: the optimizer, the learning-rate schedule and the metrics a run records.

pub mod metrics;
pub mod optim;
pub mod run_dir;
pub mod schedule;
pub mod trainer;
