#!/usr/bin/env python3
"""Reads the JSON lines of train_vs_torch.sh (stdin: train_bench, train_torch.py, and the run's
machine/date/load lines) and prints a markdown table per config: each side's median step time
over the rounds, tokens per second from it, and the median (min–max) of the per-round ratios
PyTorch ms / pretrain ms (> 1: we are faster). A round pairs the n-th run of each side. With a
"pretrain-before" side (BEFORE=... in train_vs_torch.sh), its columns come first. The last column
is the median CPU time (user + system, all threads) per step of each side."""
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
before = any(k[1] == "pretrain-before" for k in runs)
print(f"\nmachine: {info.get('machine', '?')}; {info.get('date', '?')}; "
      f"load average {info.get('load_start', '?')} at the start, {info.get('load_end', '?')} at the end")
torch_impl = next((r["impl"] for r in rows if r["impl"].startswith("pytorch")), "pytorch")
print(f"peer: {torch_impl}, {next((r['threads'] for r in rows if 'threads' in r), '?')} threads\n")
cols = ["config", "rounds"] + (["before ms/step", "before tok/s", "before ratio"] if before else []) + [
    "pretrain ms/step", "PyTorch ms/step", "pretrain tok/s", "PyTorch tok/s",
    "ratio (median of rounds)", "ratio min–max", "CPU ms/step pretrain / PyTorch"]
print("| " + " | ".join(cols) + " |")
print("|---|" + "---:|" * (len(cols) - 1))


def med(rs, key="ms_per_step"):
    vals = [r[key] for r in rs if key in r]
    return statistics.median(vals) if vals else float("nan")


for cfg in dict.fromkeys(r["config"] for r in rows):
    a, b = runs.get((cfg, "pretrain"), []), runs.get((cfg, "pytorch"), [])
    if not a or not b:
        continue
    tokens = a[0]["tokens_per_sec"] * a[0]["ms_per_step"] / 1e3
    ma, mb = med(a), med(b)
    ratios = [y["ms_per_step"] / x["ms_per_step"] for x, y in zip(a, b)]
    cells = [cfg, str(len(ratios))]
    if before:
        z = runs.get((cfg, "pretrain-before"), [])
        mz = med(z)
        rz = [y["ms_per_step"] / x["ms_per_step"] for x, y in zip(z, b)]
        cells += [f"{mz:.1f}", f"{tokens / mz * 1e3:.0f}", f"{statistics.median(rz):.2f}×" if rz else "-"]
    cells += [f"{ma:.1f}", f"{mb:.1f}", f"{tokens / ma * 1e3:.0f}", f"{tokens / mb * 1e3:.0f}",
              f"**{statistics.median(ratios):.2f}×**", f"{min(ratios):.2f}–{max(ratios):.2f}",
              f"{med(a, 'cpu_ms_per_step'):.0f} / {med(b, 'cpu_ms_per_step'):.0f}"]
    print("| " + " | ".join(cells) + " |")
