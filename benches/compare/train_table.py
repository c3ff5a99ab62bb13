#!/usr/bin/env python3
"""Reads the JSON lines of train_vs_torch.sh (stdin: train_bench, train_torch.py, and the run's
machine/date/load lines) and prints a markdown table per config: each side's median step time
over the rounds, tokens per second from it, and the median (min–max) of the per-round ratios
PyTorch ms / pretrain ms (> 1: we are faster). A round pairs the n-th run of each side."""
import json
import statistics
import sys

rows, info = [], {}
for line in sys.stdin:
    if line.startswith("{"):
        r = json.loads(line)
        (rows.append(r) if "config" in r else info.update(r))
runs = {}
for r in rows:
    runs.setdefault((r["config"], r["impl"].split()[0]), []).append(r)
print(f"\nmachine: {info.get('machine', '?')}; {info.get('date', '?')}; "
      f"load average {info.get('load_start', '?')} at the start, {info.get('load_end', '?')} at the end")
torch_impl = next((r["impl"] for r in rows if r["impl"].startswith("pytorch")), "pytorch")
print(f"peer: {torch_impl}, {next((r['threads'] for r in rows if 'threads' in r), '?')} threads\n")
print("| config | rounds | pretrain ms/step | PyTorch ms/step | pretrain tok/s | PyTorch tok/s "
      "| ratio (median of rounds) | ratio min–max |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for cfg in dict.fromkeys(r["config"] for r in rows):
    a, b = runs.get((cfg, "pretrain"), []), runs.get((cfg, "pytorch"), [])
    if not a or not b:
        continue
    tokens = a[0]["tokens_per_sec"] * a[0]["ms_per_step"] / 1e3
    ma = statistics.median(r["ms_per_step"] for r in a)
    mb = statistics.median(r["ms_per_step"] for r in b)
    ratios = [y["ms_per_step"] / x["ms_per_step"] for x, y in zip(a, b)]
    print(f"| {cfg} | {len(ratios)} | {ma:.1f} | {mb:.1f} | {tokens / ma * 1e3:.0f} | "
          f"{tokens / mb * 1e3:.0f} | **{statistics.median(ratios):.2f}×** | "
          f"{min(ratios):.2f}–{max(ratios):.2f} |")
