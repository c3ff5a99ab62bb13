#!/usr/bin/env python3
"""The tensor engine's main ops against PyTorch (CPU), side by side in one run.

Runs `cargo run --release --example ops_bench` (our timings, JSON lines), then times the same
ops on the same shapes in PyTorch with the same thread count, and prints one table with the
ratio torch_ms / ours_ms (> 1 means we are faster). Both sides report the best of 10 runs.

    benches/compare/.venv/bin/python benches/compare/ops_vs_torch.py [--threads 2]

Needs PyTorch 2.x from PyPI in benches/compare/.venv (`benches/compare/venv.sh torch`). Our side
always runs at full size: PRETRAIN_QUICK is removed from its environment. Not run by CI.
"""
import argparse, json, subprocess, sys, time

import torch
import torch.nn.functional as F


def best_ms(f, reps=10):
    f()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        f()
        best = min(best, (time.perf_counter() - t) * 1e3)
    return best


def torch_rows(threads):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rows, c, v = 2048, 256, 8192
    out = {}
    att = torch.randn(8, 4, 256, 256)
    out["softmax"] = best_ms(lambda: torch.softmax(att, -1))
    attl = att.clone().requires_grad_()
    mask = torch.ones(256, 256, dtype=torch.bool).triu(1)

    def causal():
        (attl * 0.125).masked_fill(mask, float("-inf")).softmax(-1).sum().backward()
        attl.grad = None
    out["causal_softmax fwd+bwd"] = best_ms(causal)

    x = torch.randn(rows, c, requires_grad=True)
    w = torch.ones(c, requires_grad=True)
    b = torch.zeros(c, requires_grad=True)
    with torch.no_grad():
        out["layernorm"] = best_ms(lambda: F.layer_norm(x, (c,), w, b, 1e-5))

    def ln():
        F.layer_norm(x, (c,), w, b, 1e-5).sum().backward()
        x.grad = w.grad = b.grad = None
    out["layernorm fwd+bwd"] = best_ms(ln)

    h = torch.randn(rows, 4 * c, requires_grad=True)
    with torch.no_grad():
        out["gelu"] = best_ms(lambda: F.gelu(h, approximate="tanh"))

    def gelu():
        F.gelu(h, approximate="tanh").sum().backward()
        h.grad = None
    out["gelu fwd+bwd"] = best_ms(gelu)

    logits = torch.randn(rows, v, requires_grad=True)
    targets = torch.randint(0, v, (rows,))
    with torch.no_grad():
        out["cross_entropy"] = best_ms(lambda: F.cross_entropy(logits, targets))

    def ce():
        F.cross_entropy(logits, targets).backward()
        logits.grad = None
    out["cross_entropy fwd+bwd"] = best_ms(ce)

    r = torch.randn(c)
    with torch.no_grad():
        out["add row-broadcast"] = best_ms(lambda: x + r)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import os
    env = {k: v for k, v in os.environ.items() if k != "PRETRAIN_QUICK"}
    env["RAYON_NUM_THREADS"] = str(args.threads)
    ours = {}
    proc = subprocess.run(["cargo", "run", "--release", "--quiet", "--example", "ops_bench"],
                          capture_output=True, text=True, env=env, check=True)
    for line in proc.stdout.splitlines():
        row = json.loads(line)
        ours[row["op"]] = (row["shape"], row["ms"])
    theirs = torch_rows(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads; ratio = torch_ms / ours_ms (> 1: we are faster)")
    print(f"{'op':<24} {'shape':<22} {'ours ms':>9} {'torch ms':>9} {'ratio':>6}")
    for op, (shape, ms) in ours.items():
        t = theirs.get(op)
        ratio = f"{t / ms:6.2f}" if t else "     -"
        print(f"{op:<24} {shape:<22} {ms:9.3f} {t if t else float('nan'):9.3f} {ratio}")


if __name__ == "__main__":
    sys.exit(main())
