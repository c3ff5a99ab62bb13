#!/usr/bin/env python3
"""The same GPT-2 training step in PyTorch, timed like examples/train_bench.rs (median step).

usage: train_torch.py L D H T B V STEPS   (run by benches/compare/train_vs_torch.sh)
"""
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x, mask):
        b, t, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.h, d // self.h).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.h)
        att = att.masked_fill(mask[:t, :t], float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, l, d, h, t, v):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(v, d), nn.Embedding(t, d)
        self.blocks = nn.ModuleList(Block(d, h) for _ in range(l))
        self.ln_f = nn.LayerNorm(d)
        self.register_buffer("mask", ~torch.tril(torch.ones(t, t, dtype=torch.bool)))

    def forward(self, idx, targets):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t))
        for blk in self.blocks:
            x = blk(x, self.mask)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def main():
    l, d, h, t, b, v, steps = (list(map(int, sys.argv[1:])) + [4, 256, 4, 256, 8, 8192, 5][len(sys.argv) - 1:])[:7]
    torch.set_num_threads(int(__import__("os").environ.get("THREADS", "2")))
    torch.manual_seed(0)
    model = GPT(l, d, h, t, v)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    times = []
    for step in range(steps + 1):
        x, y = torch.randint(0, v, (b, t)), torch.randint(0, v, (b, t))
        t0 = time.perf_counter()
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step > 0:
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({
        "impl": f"pytorch {torch.__version__}", "config": f"L{l} d{d} h{h} T{t} B{b} V{v}",
        "params": sum(p.numel() for p in model.parameters()) - 0,
        "ms_per_step": round(med * 1e3, 1), "tokens_per_sec": round(b * t / med),
    }))


if __name__ == "__main__":
    main()
