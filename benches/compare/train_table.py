#!/usr/bin/env python3
"""Reads the JSON lines of train_bench and train_torch.py (stdin) and prints a markdown table of
each side's best step time per config, with the ratio PyTorch ms / pretrain ms."""
import json
import sys

rows = [json.loads(line) for line in sys.stdin if line.startswith("{")]
best = {}
for r in rows:
    key = (r["config"], r["impl"].split()[0])
    if key not in best or r["ms_per_step"] < best[key]["ms_per_step"]:
        best[key] = r
print("| config | pretrain ms/step | PyTorch ms/step | pretrain tok/s | PyTorch tok/s | speed-up | pretrain MFU |")
print("|---|---:|---:|---:|---:|---:|---:|")
for cfg in dict.fromkeys(r["config"] for r in rows):
    a, b = best.get((cfg, "pretrain")), best.get((cfg, "pytorch"))
    if a is None or b is None:
        continue
    ratio = b["ms_per_step"] / a["ms_per_step"]
    print(f"| {cfg} | {a['ms_per_step']} | {b['ms_per_step']} | {a['tokens_per_sec']} | "
          f"{b['tokens_per_sec']} | {ratio:.2f}× | {100 * a['mfu']:.1f}% |")
