//! Tokenizer files: GPT-2's `vocab.json` + `merges.txt` (also its original `encoder.json` +
//! `vocab.bpe`), HF `tokenizer.json`, and tiktoken's `.tiktoken` rank files.
pub mod gpt2;
pub mod hf_json;
pub mod tiktoken;
