#!/usr/bin/env bash
# Builds and runs the CUDA emulator tests: each tests/NAME.cpp is compiled with g++ once per
# precision it lists (fp32, bf16) into target/cuda-emu/ and run. Exit status 1 if any failed.
#
#   tools/cuda-emu/run.sh                 every test in tools/cuda-emu/tests/
#   tools/cuda-emu/run.sh cast selftest   some of them, by name
#   tools/cuda-emu/run.sh path/to/x.cpp   a test file kept elsewhere
#
# A test file says what it needs in two header lines:
#   // emu-kernels: kernels/cast.cu        (paths from the repository root; a missing one skips
#                                           the test with a message, and fails it when CI=true)
#   // emu-precisions: fp32 bf16           (bf16 builds with -DPRETRAIN_BF16)
# Kernel paths are taken from the repository the command runs in (git toplevel of the current
# directory), so a kernel author can run this script from another worktree.
# EMU_SEEDS="1 2 3" runs every binary once per thread-order seed (more chances to expose a
# missing barrier). Environment: EMU_ROOT (the repository whose kernels/ to use), EMU_OUT (where binaries go,
# default $EMU_ROOT/target/cuda-emu), EMU_JOBS (parallel compiles, default: number of cores), EMU_SEED (thread
# schedule), EMU_UBSAN=1 (also check misaligned and out-of-range accesses with
# -fsanitize=undefined), EMU_TSAN=1 (report data races between CUDA threads, e.g. a missing
# barrier, with -fsanitize=thread; slower), EMU_CXXFLAGS (extra compiler flags).
set -u
EMU_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="${EMU_ROOT:-$(git rev-parse --show-toplevel 2>/dev/null || (cd "$EMU_DIR/../.." && pwd))}"
OUT="${EMU_OUT:-$ROOT/target/cuda-emu}"
mkdir -p "$OUT"
CXX="${CXX:-g++}"
if ! command -v "$CXX" >/dev/null; then
    echo "cuda-emu: $CXX not found" >&2
    exit 2
fi
FLAGS=(-std=c++17 -Og -Wall -Wextra -Wno-unknown-pragmas -Wno-unused-parameter -DPRETRAIN_EMU
       -I"$EMU_DIR/include" -I"$EMU_DIR" -I"$EMU_DIR/tests" -I"$ROOT" -rdynamic)
[ "${EMU_UBSAN:-0}" = 1 ] && FLAGS+=(-fsanitize=undefined -fno-sanitize-recover=all)
[ "${EMU_TSAN:-0}" = 1 ] && FLAGS+=(-fsanitize=thread -g)
# shellcheck disable=SC2206
FLAGS+=(${EMU_CXXFLAGS:-})
suffix=""
[ "${EMU_UBSAN:-0}" = 1 ] && suffix="-ubsan"
[ "${EMU_TSAN:-0}" = 1 ] && suffix="$suffix-tsan"

tests=()
if [ $# -eq 0 ]; then
    tests=("$EMU_DIR"/tests/*.cpp)
else
    for t in "$@"; do
        if [ -f "$t" ]; then tests+=("$(cd "$(dirname "$t")" && pwd)/$(basename "$t")")
        elif [ -f "$EMU_DIR/tests/$t.cpp" ]; then tests+=("$EMU_DIR/tests/$t.cpp")
        else echo "cuda-emu: no test '$t'" >&2; exit 2; fi
    done
fi

# The header line "// emu-KEY: values" of a test file.
header() { sed -n "s|^// emu-$2:[[:space:]]*||p" "$1" | head -1; }

jobs_max="${EMU_JOBS:-$(nproc 2>/dev/null || echo 2)}"
builds=() skipped=0 failed_early=0 names_failed=""
for t in "${tests[@]}"; do
    name="$(basename "$t" .cpp)"
    missing=""
    for k in $(header "$t" kernels); do [ -f "$ROOT/$k" ] || missing="$missing $k"; done
    if [ -n "$missing" ]; then
        if [ "${CI:-}" = true ]; then
            echo "FAIL $name: not in this tree:$missing (CI=true: a skipped test is a failure)"
            failed_early=$((failed_early + 1)) names_failed="$names_failed $name"
        else
            echo "SKIP $name: not in this tree:$missing"
            skipped=$((skipped + 1))
        fi
        continue
    fi
    for p in $(header "$t" precisions); do
        bin="$OUT/$name-$p$suffix"
        builds+=("$name $p $bin")
        # Up to date when newer than the test, the emulator and every kernel file.
        if [ -x "$bin" ] && [ -z "$(find "$t" "$EMU_DIR" "$ROOT/kernels" -newer "$bin" -type f \
                                     \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) 2>/dev/null | head -1)" ]; then
            continue
        fi
        extra=()
        [ "$p" = bf16 ] && extra=(-DPRETRAIN_BF16)
        rm -f "$bin"
        while [ "$(jobs -r | wc -l)" -ge "$jobs_max" ]; do wait -n; done
        ( "$CXX" "${FLAGS[@]}" "${extra[@]}" "$t" -o "$bin.tmp" 2>"$bin.log" && mv "$bin.tmp" "$bin" ) &
    done
done
wait

passed=0 failed=$failed_early
for b in "${builds[@]}"; do
    read -r name p bin <<<"$b"
    echo "== $name ($p)"
    [ -s "$bin.log" ] && cat "$bin.log"  # compiler errors and warnings
    if [ ! -x "$bin" ]; then
        echo "FAIL $name ($p): does not compile"
        failed=$((failed + 1)) names_failed="$names_failed $name-$p"
        continue
    fi
    ok=1
    for seed in ${EMU_SEEDS:-${EMU_SEED:-1}}; do
        [ -n "${EMU_SEEDS:-}" ] && echo "-- EMU_SEED=$seed"
        EMU_SEED=$seed "$bin" || ok=0
    done
    if [ "$ok" = 1 ]; then passed=$((passed + 1)); else failed=$((failed + 1)) names_failed="$names_failed $name-$p"; fi
done
echo "cuda-emu: $passed passed, $failed failed, $skipped skipped${names_failed:+ (failed:$names_failed)}"
[ "$failed" -eq 0 ]
