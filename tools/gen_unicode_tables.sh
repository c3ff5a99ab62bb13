#!/usr/bin/env bash
# Regenerate src/tokenizer/unicode_tables.rs from regex-syntax (the Unicode data tiktoken uses).
set -euo pipefail
cd "$(dirname "$0")/.."
touch src/tokenizer/unicode_tables.rs
UPDATE_UNICODE_TABLES=1 cargo test --release tokenizer_unicode::
