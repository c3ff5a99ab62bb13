#!/usr/bin/env bash
# Tokenizer comparison: rustbpe, HF tokenizers, tiktoken and ours side by side.
# Installs the peers from PyPI into benches/compare/.venv (gitignored, venv.sh) on first use.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=benches/compare/.venv
"$VENV/bin/python" -c "import rustbpe, tokenizers, tiktoken" 2>/dev/null || benches/compare/venv.sh tokenizer
cargo build --release --quiet --bin train-tokenizer --bin tokenize
"$VENV/bin/python" benches/compare/tokenizer_compare.py "$@"
