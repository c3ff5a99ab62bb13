//! Every integration test of pretrain, as modules of one test crate, so `cargo test` links one
//! binary for them all. Each module is one area: run one with `cargo test --release NAME`
//! (e.g. `cargo test --release device_train`). Fixtures live in `tests/fixtures/`.

mod common;
mod attention;
mod checkpoint_fixture;
mod clean_accounting;
mod clean_cli;
mod clean_datatrove;
mod clean_lib;
mod cuda_attention;
mod cuda_compile;
mod cuda_emulated;
mod cuda_generic;
mod cuda_matmul;
mod cuda_ops;
mod dataset_outputs;
mod dataset_shards;
mod device_train;
mod dist_comm;
mod dist_dp;
mod dist_pp;
mod dist_tp;
mod dist_util;
mod dist_zero;
mod fuzz;
mod gpt2_reference;
mod layers;
mod lessons;
mod matmul;
mod memory_check;
mod plan_cli;
mod tensor_core;
mod tensor_forward;
mod tensor_gradcheck;
mod tensor_mlp;
mod tokenizer_cli;
mod tokenizer_limits;
mod tokenizer_split;
mod tokenizer_tiktoken;
mod tokenizer_train;
mod tokenizer_unicode;
mod train_faults;
mod train_loop;
