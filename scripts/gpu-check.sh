#!/usr/bin/env bash
# The GPU check (issue 6, lesson 08): every CUDA test, the `kernels` table (our CUDA kernels beside
# the CPU rows, cuBLAS as the bar), and GPT-2 124M training beside PyTorch — in under 5 minutes,
# with every log in one folder.
#
#   scripts/gpu-check.sh bundle          here, on any machine (no GPU needed): builds the binaries
#                                        and test executables into target/gpu-bundle/ (about 26 MB)
#   scripts/gpu-check.sh run [LOGDIR]    on the GPU machine (about 5 minutes; steps past 420 s,
#                                        GPU_CHECK_BUDGET, are skipped): runs the bundle if there is one,
#                                        else builds with cargo first; logs go to LOGDIR
#                                        (default runs/gpu-check): summary.txt and
#                                        gpu-check-logs.tar.gz
#
# The GPU machines lent to this project have CUDA, PyTorch and Python but no Rust toolchain and
# no network, so the usual way is: `scripts/gpu-check.sh bundle` here, then on the GPU machine
# `scripts/gpu-check.sh run "$OUT"` with target/gpu-bundle carried along.
#
# The binaries find NVRTC, the CUDA headers and cuBLAS by themselves in the usual places
# (/usr/local/cuda); `locate_cuda` below also looks inside Python's nvidia-* packages and points
# the binaries at what it found (PRETRAIN_NVRTC, PRETRAIN_CUDA_INCLUDE, LD_LIBRARY_PATH).
set -uo pipefail
cd "$(dirname "$0")/.."
bundle=target/gpu-bundle

# The test executables that talk to a GPU (each skips, saying why, when there is none).
CUDA_TESTS="cuda_ops cuda_matmul cuda_attention cuda_train"
# Steps that would start after this many seconds are skipped, so that one device call of at
# most 10 minutes always comes back with its logs.
BUDGET=${GPU_CHECK_BUDGET:-420}

build_bundle() {
    set -e
    cargo build --release --bins --examples
    rm -rf "$bundle" && mkdir -p "$bundle/bin" "$bundle/tests"
    for b in kernels train sample pipeline; do
        strip -o "$bundle/bin/$b" "target/release/$b"
    done
    for e in train_bench cuda_attention_bench; do
        strip -o "$bundle/bin/$e" "target/release/examples/$e"
    done
    local t exe
    for t in $CUDA_TESTS; do
        [[ -f tests/$t.rs ]] || continue
        exe=$(cargo test --release --no-run --test "$t" --message-format=json 2>/dev/null |
            grep -o '"executable":"[^"]*"' | tail -1 | cut -d'"' -f4)
        strip -o "$bundle/tests/$t" "$exe"
    done
    git rev-parse HEAD >"$bundle/commit"
    du -sh "$bundle"
    set +e
}

# Finds libnvrtc, cuda_bf16.h and libcublas wherever this machine has them. A toolkit in
# /usr/local/cuda is used as it is (the binaries look there themselves); otherwise the search
# takes them from wherever they are, Python's nvidia-* packages included.
locate_cuda() {
    local cuda=${CUDA_HOME:-/usr/local/cuda} roots="/usr/local /opt /usr/lib"
    if [[ -z ${PRETRAIN_NVRTC:-} ]] && ! ls "$cuda"/lib64/libnvrtc.so* >/dev/null 2>&1; then
        PRETRAIN_NVRTC=$(find $roots -name 'libnvrtc.so*' ! -name '*builtins*' ! -name '*alt*' \
            2>/dev/null | sort | tail -1)
        export PRETRAIN_NVRTC
    fi
    if [[ -z ${PRETRAIN_CUDA_INCLUDE:-} && ! -f $cuda/include/cuda_bf16.h ]]; then
        local h
        h=$(find $roots -name cuda_bf16.h -path '*include*' 2>/dev/null | head -1)
        [[ -n $h ]] && export PRETRAIN_CUDA_INCLUDE=${h%/cuda_bf16.h}
    fi
    # cuBLAS: cudarc asks the loader for libcublas.so / libcublas.so.12; give it whatever
    # version is installed under those names.
    # Their folders join the search path too, for the libraries cuBLAS itself needs (cublasLt).
    local libs=/tmp/pretrain-cuda-libs lib name path=/tmp/pretrain-cuda-libs
    mkdir -p "$libs"
    for name in cublas cublasLt; do
        lib=$(find "$cuda"/lib64 $roots -name "lib$name.so*" 2>/dev/null | sort | tail -1)
        [[ -n $lib ]] || continue
        ln -sf "$lib" "$libs/lib$name.so" && ln -sf "$lib" "$libs/lib$name.so.12"
        path="$path:$(dirname "$lib")"
    done
    export LD_LIBRARY_PATH="$path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "nvrtc: ${PRETRAIN_NVRTC:-$cuda/lib64}; headers: ${PRETRAIN_CUDA_INCLUDE:-$cuda/include}; cublas: $(readlink "$libs/libcublas.so" || echo none)"
}

# step NAME SECONDS COMMAND...: runs one step under a time limit, logging to LOGDIR/NAME.log.
step() {
    local name=$1 limit=$2
    shift 2
    if ((SECONDS > BUDGET)); then
        printf '%-14s skipped: over the %ss budget\n' "$name" "$BUDGET" | tee -a "$log/summary.txt"
        return
    fi
    local t0=$SECONDS
    echo "== $name: $*"
    timeout "$limit" "$@" >"$log/$name.log" 2>&1
    local rc=$?
    tail -n 40 "$log/$name.log"
    printf '%-14s rc=%-3s %4ss\n' "$name" "$rc" "$((SECONDS - t0))" >>"$log/summary.txt"
}

run_checks() {
    # Every log goes to a scratch folder, and comes out as two files: summary.txt and
    # gpu-check-logs.tar.gz (the device tool returns at most 8 files).
    dest=${1:-runs/gpu-check}
    mkdir -p "$dest"
    log=$(mktemp -d)
    trap 'tar czf "$dest/gpu-check-logs.tar.gz" -C "$log" . && cp "$log/summary.txt" "$dest/"' EXIT
    : >"$log/summary.txt"
    if [[ ! -d $bundle ]]; then
        command -v cargo >/dev/null || { echo "no $bundle and no cargo: run 'scripts/gpu-check.sh bundle' first"; exit 2; }
        build_bundle >"$log/build.log" 2>&1 || { tail -30 "$log/build.log"; exit 2; }
    fi
    echo "bundle built from $(cat "$bundle/commit" 2>/dev/null)"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv | tee "$log/gpu.txt"
    locate_cuda | tee -a "$log/gpu.txt"
    local t
    # On this machine a test must find the GPU: no skipping, no falling back to the emulator.
    for t in $CUDA_TESTS; do
        [[ -x $bundle/tests/$t ]] && PRETRAIN_REQUIRE_GPU=1 step "test-$t" 90 "$bundle/tests/$t" --test-threads=1
    done
    step train-ours 90 "$bundle/bin/train_bench" --device cuda --preset gpt2 --steps 20
    step train-torch 120 python3 benches/compare/train_torch_gpu.py --steps 20
    step kernels 150 "$bundle/bin/kernels" --device cuda
    step attention 45 "$bundle/bin/cuda_attention_bench"
    step kernels-ptx 60 "$bundle/bin/kernels" --ptx-report --arch 90
    echo "== summary (all logs: $dest/gpu-check-logs.tar.gz)"
    cat "$log/summary.txt"
}

case ${1:-} in
bundle) build_bundle ;;
run) run_checks "${2:-}" ;;
*) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
