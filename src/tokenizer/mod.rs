//! Stage 2, tokenizer: byte-level BPE, GPT-2 and GPT-4 split patterns, file formats.
