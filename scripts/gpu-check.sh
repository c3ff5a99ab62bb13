#!/usr/bin/env bash
# The GPU check (lesson 08): the CUDA tests of the tensor engine on a real GPU, the `kernels`
# table (our CUDA matmuls beside cuBLAS), GPT-2 124M bf16 training tokens/s and peak memory
# beside PyTorch on the same GPU, attention timings and the ptxas report — in under 7 minutes,
# with every log in one folder.
#
#   scripts/gpu-check.sh bundle          on any machine (no GPU needed): builds the binaries and
#                                        the test executable into target/gpu-bundle/
#   scripts/gpu-check.sh run [LOGDIR]    on the GPU machine: runs the bundle if there is one,
#                                        else builds with cargo first; steps that would start
#                                        after 420 s (GPU_CHECK_BUDGET) are skipped; logs go to
#                                        LOGDIR (default runs/gpu-check): summary.txt and
#                                        gpu-check-logs.tar.gz
#
# A GPU machine without a Rust toolchain needs only the repository and target/gpu-bundle/:
# `scripts/gpu-check.sh bundle` where cargo is, then `scripts/gpu-check.sh run LOGDIR` there.
#
# The binaries find NVRTC, the CUDA headers and cuBLAS by themselves in the usual places
# (/usr/local/cuda); `locate_cuda` below also looks inside Python's nvidia-* packages and points
# the binaries at what it found (PRETRAIN_NVRTC, PRETRAIN_CUDA_INCLUDE, LD_LIBRARY_PATH).
set -uo pipefail
cd "$(dirname "$0")/.."
bundle=target/gpu-bundle

# The test modules (of the one test crate, tests/suite/) that run on a GPU: every CUDA op and
# launcher, the GPT on the GPU against the CPU, and the allocator. On the GPU they must not skip.
CUDA_TESTS="cuda_ device_train"
# Steps that would start after this many seconds are skipped, so that one run of at most
# 10 minutes always comes back with its logs.
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
    local exe
    exe=$(cargo test --release --no-run --test suite --message-format=json 2>/dev/null |
        grep -o '"executable":"[^"]*"' | tail -1 | cut -d'"' -f4)
    [[ -x $exe ]] || { echo "gpu-check: could not build the test executable (tests/suite)" >&2; exit 2; }
    strip -o "$bundle/tests/suite" "$exe"
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
    if ((SECONDS + limit > BUDGET)); then
        printf '%-14s skipped: its %ss would end past the %ss budget\n' "$name" "$limit" "$BUDGET" |
            tee -a "$log/summary.txt"
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
    # The measurements first, then the tests (on this machine a test must find the GPU: no
    # skipping, no falling back to the emulator). Limits add up to the 420 s budget.
    step train-ours 60 "$bundle/bin/train_bench" --device cuda --preset gpt2 --steps 20
    step train-torch 90 python3 benches/compare/train_torch_gpu.py --steps 20
    step kernels 120 "$bundle/bin/kernels" --device cuda
    if [[ -x $bundle/tests/suite ]]; then
        # shellcheck disable=SC2086
        PRETRAIN_REQUIRE_GPU=1 step tests 90 "$bundle/tests/suite" $CUDA_TESTS --test-threads=1
    else
        printf '%-14s rc=missing: no %s (run the bundle step again)\n' tests "$bundle/tests/suite" |
            tee -a "$log/summary.txt"
    fi
    step attention 30 "$bundle/bin/cuda_attention_bench"
    step kernels-ptx 30 "$bundle/bin/kernels" --ptx-report --arch 90
    echo "== summary (all logs: $dest/gpu-check-logs.tar.gz)"
    cat "$log/summary.txt"
}

case ${1:-} in
bundle) build_bundle ;;
run) run_checks "${2:-}" ;;
*) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
