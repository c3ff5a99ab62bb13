//! Stage 4: training: the optimizer, the learning-rate schedule and the metrics a run records.

pub mod dist;
pub mod inputs;
pub mod metrics;
pub mod optim;
pub mod plan;
pub mod run_config;
pub mod run_dir;
pub mod run_lock;
pub mod schedule;
pub mod trainer;
