//! Stage 3: the GPT-2 model: its configuration, its parameters and their checkpoint format, and
//! the memory a run of it needs.

pub mod checkpoint;
pub mod config;
pub mod gpt;
pub mod memory;
pub mod tp;
