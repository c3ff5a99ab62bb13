#!/usr/bin/env bash
# Training-step speed, pretrain vs PyTorch (CPU, 2 threads), side by side in one run.
# Needs Debian's python3-torch and libopenblas0-pthread (apt-get install python3-torch
# libopenblas0-pthread); uses /usr/bin/python3, where Debian installs torch.
# Usage: benches/compare/train_vs_torch.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-2}
cargo build --release --example train_bench
configs=("4 256 4 256 8 8192 5" "12 768 12 64 4 50257 3")
for round in $(seq "$rounds"); do
  for c in "${configs[@]}"; do
    # shellcheck disable=SC2086
    target/release/examples/train_bench $c
    # shellcheck disable=SC2086
    THREADS=2 /usr/bin/python3 benches/compare/train_torch.py $c
  done
done | tee /dev/stderr | /usr/bin/python3 benches/compare/train_table.py
