#!/usr/bin/env bash
# Tokenizer comparison: rustbpe, HF tokenizers, tiktoken and ours side by side.
# Creates benches/compare/.venv (gitignored) with the peers from PyPI on first use.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=benches/compare/.venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet rustbpe==0.1.0 tokenizers==0.23.3 tiktoken==0.14.0
fi
cargo build --release --quiet --bin train-tokenizer --bin tokenize
"$VENV/bin/python" benches/compare/tokenizer_compare.py "$@"
