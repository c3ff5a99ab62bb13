//! pretrain: LLM pre-training from scratch, one lesson per stage.
//!
//! The modules follow the data as it flows through the pipeline:
//! raw text → clean JSONL → tokenizer → token shards → model + trainer → checkpoint → samples.

/// Shared command-line conventions: errors, verbosity, progress bars, atomic writes.
pub mod cli;
/// Stage 3: CPU kernels the tensor engine calls, matmul from naive to SIMD (lesson 04).
pub mod cpu;
/// Stage 1: raw text → clean, deduplicated JSONL (lesson 01).
pub mod data;
/// Stage 2: token-id shards and the batch loader that training reads (lesson 03).
pub mod dataset;
/// Stage 3: the tensor engine with autograd (lessons 04, 05).
pub mod tensor;
/// Stage 2: byte-level BPE training, encoding and decoding (lesson 02).
pub mod tokenizer;
