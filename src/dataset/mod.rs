//! Stage 2, dataset: token-id shards on disk and the batch loader that reads them.
