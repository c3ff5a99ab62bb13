#!/usr/bin/env bash
# Compare pretrain's matmul with numpy's sgemm (OpenBLAS), side by side in one run.
# Usage: benches/compare/run.sh [--threads 1,2] [--rounds 2] [--quick]
# Installs numpy and threadpoolctl into benches/compare/.venv (venv.sh) on first use. Needs network for pip once.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=benches/compare/.venv
"$venv/bin/python" -c "import numpy, threadpoolctl" 2>/dev/null || benches/compare/venv.sh matmul
cargo build --release --bin kernels
# OpenBLAS reads these at load time; set, they can pin it to an older (AVX2) kernel.
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
    "$venv/bin/python" benches/compare/matmul_numpy.py --kernels target/release/kernels "$@"
