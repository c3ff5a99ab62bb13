#!/usr/bin/env bash
# Training-step speed on the CPU, pretrain vs PyTorch 2.x (torch.compile, SDPA, foreach AdamW),
# both on 2 threads, side by side: each round runs both sides back to back on each config
# (alternating which goes first), and the table reports each side's median over the rounds and
# the median of the per-round ratios.
#
# Usage: benches/compare/train_vs_torch.sh [ROUNDS]        (default 3)
# Environment: THREADS (2), WAIT_IDLE=PCT (before each pair, wait up to 60 s until PCT% of the
# CPUs are idle: for a shared machine), CONFIGS (the "L D H T B V STEPS" lines, ';'-separated),
# BEFORE=path/to/an/older/train_bench (also runs it in each round, as "pretrain-before", to
# measure a change against the same PyTorch runs), LOG=file (the raw JSON lines; default stderr).
#
# PyTorch comes from PyPI into the gitignored benches/compare/.venv (benches/compare/venv.sh
# torch, run on first use). Its Linux wheel pulls NVIDIA's CUDA libraries (about 5 GB in all);
# they are loaded but unused on a CPU-only machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
threads=${THREADS:-2}
py=benches/compare/.venv/bin/python
"$py" -c "import torch" 2>/dev/null || benches/compare/venv.sh torch
cargo build --release --example train_bench
IFS=';' read -r -a configs <<< "${CONFIGS:-4 256 4 256 8 8192 10;12 768 12 64 4 50257 5}"
ours() {  # ours never inherits PRETRAIN_QUICK (the quick sizes of the binaries)
  # shellcheck disable=SC2086
  env -u PRETRAIN_QUICK RAYON_NUM_THREADS="$threads" target/release/examples/train_bench $1
}
before() {
  [ -n "${BEFORE:-}" ] || return 0
  # shellcheck disable=SC2086
  env -u PRETRAIN_QUICK RAYON_NUM_THREADS="$threads" "$BEFORE" $1 | sed 's/"impl":"pretrain"/"impl":"pretrain-before"/'
}
theirs() {
  # shellcheck disable=SC2086
  THREADS="$threads" "$py" benches/compare/train_torch.py $1
}
wait_idle() {
  [ -n "${WAIT_IDLE:-}" ] && "$py" benches/compare/wait_idle.py "$WAIT_IDLE" 60 || true
}
{
  echo "{\"machine\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs\", \"date\": \"$(date -u '+%Y-%m-%d %H:%M UTC')\", \"load_start\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
  for round in $(seq "$rounds"); do
    for c in "${configs[@]}"; do
      wait_idle
      if [ $((round % 2)) = 1 ]; then before "$c"; ours "$c"; theirs "$c"; else theirs "$c"; ours "$c"; before "$c"; fi
    done
  done
  echo "{\"load_end\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
} | tee "${LOG:-/dev/stderr}" | "$py" benches/compare/train_table.py
