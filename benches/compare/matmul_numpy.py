#!/usr/bin/env python3
"""Time numpy's sgemm (OpenBLAS) and pretrain's matmul v5 side by side, and print the ratio.

For every shape and thread count, numpy is timed in this process and pretrain through
`kernels --json --filter v5`, one right after the other, for `--rounds` rounds; each side keeps
its best time (noise on a shared machine only ever adds time). Besides wall-clock GFLOP/s and
their ratio, it prints a CPU-time ratio: numpy's best CPU time over ours (all threads, so it
counts only the time each side actually held a core, spin-waits included; a mean per call,
as Linux's per-thread CPU clock for another process's threads advances in scheduler ticks). On a busy machine
the wall ratio is noisy and the CPU ratio is the steadier of the two. Three variants per shape:
A·B, A·Bᵀ (B stored n×k) and Aᵀ·B (A stored k×m); numpy passes the transposes to sgemm as
flags, exactly as pretrain's gemm takes a Layout, so neither side copies.

Run through `run.sh`, which makes the venv and unsets OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

SHAPES = [(1024, 1024, 1024), (4096, 768, 768), (4096, 768, 3072), (4096, 3072, 768)]
VARIANTS = [("matmul", "A·B"), ("matmul_nt", "A·Bᵀ"), ("matmul_tn", "Aᵀ·B")]


def numpy_operands(variant, m, k, n):
    """Operands stored the way pretrain's kernels binary stores them, and the product to time."""
    rng = np.random.default_rng(0)

    def rand(*shape):
        return rng.uniform(-1, 1, shape).astype(np.float32)

    if variant == "matmul":
        a, b = rand(m, k), rand(k, n)
        return a, b
    if variant == "matmul_nt":
        a, bt = rand(m, k), rand(n, k)
        return a, bt.T
    at, b = rand(k, m), rand(k, n)
    return at.T, b


def time_numpy(variant, m, k, n, budget):
    """Best wall time and mean process CPU time (all threads) of one product, in seconds."""
    a, b = numpy_operands(variant, m, k, n)
    c = np.empty((m, n), np.float32)
    np.matmul(a, b, out=c)
    best, reps = float("inf"), 0
    cpu0, start = time.process_time(), time.perf_counter()
    while reps < 3 or time.perf_counter() - start < budget:
        t = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t)
        reps += 1
    return best, (time.process_time() - cpu0) / reps


def idle_percent(seconds=2.0):
    """Percent of CPU time idle over the next `seconds` (Linux /proc/stat), or 100 elsewhere."""
    def snap():
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
        return vals[3] + vals[4], sum(vals)
    try:
        idle1, total1 = snap()
        time.sleep(seconds)
        idle2, total2 = snap()
    except OSError:
        return 100.0
    return 100.0 * (idle2 - idle1) / max(1, total2 - total1)


def wait_until_idle(percent, max_wait):
    """On a shared machine: wait (up to max_wait seconds) until at least `percent` is idle."""
    start = time.time()
    while percent > 0 and time.time() - start < max_wait:
        if idle_percent() >= percent:
            return
    return


def time_ours(kernels, m, k, n, threads):
    cmd = [kernels, "--json", "-q", "--filter", "v5", "--shape", f"{m}x{k}x{n}",
           "--threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {r["kernel"]: r for r in rows}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernels", default="target/release/kernels", help="path to the kernels binary")
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    ap.add_argument("--rounds", type=int, default=2, help="alternations of numpy and ours")
    ap.add_argument("--budget", type=float, default=0.5, help="seconds per numpy timing")
    ap.add_argument("--shapes", help="MxKxN,... instead of the four benchmark shapes")
    ap.add_argument("--quick", action="store_true", help="one small shape, one round")
    ap.add_argument("--wait-idle", type=float, default=0, metavar="PCT",
                    help="before each round, wait until PCT%% of the CPUs are idle (shared machine)")
    ap.add_argument("--max-wait", type=float, default=120, help="seconds to wait for idle per round")
    args = ap.parse_args()

    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            sys.exit(f"matmul_numpy.py: {var} is set; run through benches/compare/run.sh")
    shapes = SHAPES
    if args.shapes:
        shapes = [tuple(int(d) for d in sh.split("x")) for sh in args.shapes.split(",")]
    if args.quick:
        shapes = [(256, 256, 256)]
    rounds = 1 if args.quick else args.rounds
    print(f"load average at the start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    for i in blas:
        print(f"numpy {np.__version__}: {i['internal_api']} {i.get('version')}, "
              f"kernel (threadpoolctl architecture) = {i.get('architecture')}, "
              f"max threads {i['num_threads']}")
    print(f"{'threads':>7} {'shape m,k,n':<16} {'op':<5} {'numpy GFLOP/s':>13} "
          f"{'ours GFLOP/s':>12} {'ratio':>6} {'cpu ratio':>9}")
    ratios, cpu_ratios = [], []
    for threads in [int(t) for t in args.threads.split(",")]:
        for (m, k, n) in shapes:
            flop = 2 * m * k * n
            best_np = {v: (float("inf"), float("inf")) for v, _ in VARIANTS}
            best_ours = {v: (float("inf"), float("inf")) for v, _ in VARIANTS}
            for _ in range(rounds):
                wait_until_idle(args.wait_idle, args.max_wait)
                with threadpool_limits(limits=threads, user_api="blas"):
                    for v, _ in VARIANTS:
                        wall, cpu = time_numpy(v, m, k, n, args.budget)
                        best_np[v] = (min(best_np[v][0], wall), min(best_np[v][1], cpu))
                ours = time_ours(args.kernels, m, k, n, threads)
                for v, _ in VARIANTS:
                    wall, cpu = ours[v]["ms"] / 1e3, ours[v]["cpu_ms"] / 1e3
                    best_ours[v] = (min(best_ours[v][0], wall), min(best_ours[v][1], cpu))
            for v, label in VARIANTS:
                np_gflops = flop / best_np[v][0] / 1e9
                our_gflops = flop / best_ours[v][0] / 1e9
                ratio = our_gflops / np_gflops
                cpu_ratio = best_np[v][1] / best_ours[v][1]
                ratios.append(ratio)
                cpu_ratios.append(cpu_ratio)
                print(f"{threads:>7} {f'{m},{k},{n}':<16} {label:<5} {np_gflops:>13.1f} "
                      f"{our_gflops:>12.1f} {ratio:>6.2f} {cpu_ratio:>9.2f}")
            sys.stdout.flush()
    print(f"ratio ours/numpy (wall): min {min(ratios):.2f}, max {max(ratios):.2f}; "
          f"cpu ratio: min {min(cpu_ratios):.2f}, max {max(cpu_ratios):.2f}; "
          f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
