#!/usr/bin/env bash
# Fetches what compiling our CUDA kernels needs on a machine with no CUDA toolkit and no GPU:
# NVRTC (the run-time compiler), the CUDA headers it includes, and ptxas for `kernels --ptx-report`.
# All three come from NVIDIA's PyPI wheels, unpacked into target/cuda-toolchain/:
#   lib/      libnvrtc.so.12 + libnvrtc-builtins.so.12.9 (they must sit in one folder)
#   include/  cuda_fp16.h, cuda_bf16.h, ... (passed to NVRTC as an include path)
#   bin/      ptxas
# The code finds this folder by itself (src/tensor/cuda/nvrtc.rs). Run again: it does nothing when done.
set -euo pipefail
cd "$(dirname "$0")/.."
NVRTC=12.9.86 RUNTIME=12.9.79 NVCC=12.9.86
dest=target/cuda-toolchain
stamp="$dest/.done-$NVRTC-$RUNTIME-$NVCC"
if [[ -f $stamp ]]; then echo "cuda-toolchain: ready in $dest"; exit 0; fi
PY=${PYTHON:-python3}
rm -rf "$dest" && mkdir -p "$dest/wheels" "$dest/lib" "$dest/include" "$dest/bin"
"$PY" -m pip download -q --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux_2_12_x86_64 --platform manylinux2010_x86_64 \
    -d "$dest/wheels" "nvidia-cuda-nvrtc-cu12==$NVRTC" "nvidia-cuda-runtime-cu12==$RUNTIME" \
    "nvidia-cuda-nvcc-cu12==$NVCC"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for w in "$dest"/wheels/*.whl; do
    "$PY" -m zipfile -e "$w" "$tmp"
done
cp -a "$tmp"/nvidia/cuda_nvrtc/lib/libnvrtc.so.12 "$tmp"/nvidia/cuda_nvrtc/lib/libnvrtc-builtins.so.* "$dest/lib/"
cp -a "$tmp"/nvidia/cuda_runtime/include/. "$tmp"/nvidia/cuda_nvcc/include/. "$dest/include/"
cp -a "$tmp"/nvidia/cuda_nvcc/bin/ptxas "$dest/bin/" && chmod +x "$dest/bin/ptxas"
rm -rf "$dest/wheels"
touch "$stamp"
echo "cuda-toolchain: NVRTC $NVRTC, headers $RUNTIME, ptxas $NVCC in $dest"
