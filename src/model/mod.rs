//! Stage 3: the GPT-2 model: its configuration, its parameters and their checkpoint format.

pub mod checkpoint;
pub mod config;
pub mod gpt;
