//! Stage 1, data cleaning: raw text → normalize → filter → dedup → PII scrub → clean JSONL.
