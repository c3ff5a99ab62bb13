//! pretrain: LLM pre-training from scratch, one lesson per stage.
//!
//! The modules follow the data as it flows through the pipeline:
//! raw text → clean JSONL → tokenizer → token shards → model + trainer → checkpoint → samples.

pub mod cli;
pub mod cpu;
pub mod tensor;
