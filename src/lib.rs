//! pretrain: LLM pre-training from scratch, one lesson per stage.
//!
//! The modules follow the data as it flows through the pipeline:
//! raw text → clean JSONL → tokenizer → token shards → model + trainer → checkpoint → samples.

/// Shared command-line conventions: errors, verbosity, progress bars, atomic writes.
pub mod cli;
/// Stage 1: raw text → clean, deduplicated JSONL (lesson 01).
pub mod data;
/// Stage 2: byte-level BPE training, encoding and decoding (lesson 02).
pub mod tokenizer;
/// Stage 2: token-id shards and the batch loader that training reads (lesson 03).
pub mod dataset;
/// Stage 3: the tensor engine with autograd (lessons 04, 05).
pub mod tensor;
/// Stage 3: the GPT-2 model, its configuration and its checkpoints (lesson 06).
pub mod model;
/// Stage 4: training: AdamW, the schedule, metrics (lesson 07).
pub mod train;
/// Stage 5: the base model continues text (lesson 10).
pub mod sample;
