#!/usr/bin/env bash
# Compare pretrain's matmul with numpy's sgemm (OpenBLAS), side by side in one run.
# Usage: benches/compare/run.sh [--threads 1,2] [--rounds 2] [--quick]
# Makes benches/compare/.venv (numpy, threadpoolctl) on first use. Needs network for pip once.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=benches/compare/.venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q numpy threadpoolctl
fi
cargo build --release --bin kernels
# OpenBLAS reads these at load time; set, they can pin it to an older (AVX2) kernel.
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
    "$venv/bin/python" benches/compare/matmul_numpy.py --kernels target/release/kernels "$@"
