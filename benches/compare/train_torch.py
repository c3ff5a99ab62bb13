#!/usr/bin/env python3
"""The same GPT-2 training step in PyTorch 2.x on the CPU, timed like examples/train_bench.rs.

The peer a user would run: PyTorch from PyPI (MKL and oneDNN inside), the model compiled with
torch.compile (default mode), attention through F.scaled_dot_product_attention, AdamW with
foreach=True, THREADS threads (default 2). Same model and step as ours: GPT-2 (pre-LN blocks,
biases, tanh GELU), the head tied to the token embedding, AdamW betas (0.9, 0.95), eps 1e-8,
weight decay 0.1 on 2-D tensors only, gradient clipping to 1.0, lr 1e-4, random tokens. A step
is forward + backward + clip + AdamW + zeroing the gradients. WARMUP steps (default 3: compiling
the forward and backward graphs happens in the first ones) are run and not timed; the median of
the STEPS timed steps is reported as one JSON line.

usage: train_torch.py L D H T B V STEPS   (run by benches/compare/train_vs_torch.sh)
       environment: THREADS (2), WARMUP (3), COMPILE (1; 0 = eager)
"""
import json
import os
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

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.h, d // self.h).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, l, d, h, t, v):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(v, d), nn.Embedding(t, d)
        self.blocks = nn.ModuleList(Block(d, h) for _ in range(l))
        self.ln_f = nn.LayerNorm(d)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                resid = name.endswith("c_proj.weight") or name.endswith("mlp_proj.weight")
                nn.init.normal_(p, 0.0, 0.02 / ((2 * l) ** 0.5 if resid else 1.0))
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx, targets):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t))
        for blk in self.blocks:
            x = blk(x)
        logits = self.ln_f(x) @ self.wte.weight.t()  # tied head
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def main():
    l, d, h, t, b, v, steps = (list(map(int, sys.argv[1:])) + [4, 256, 4, 256, 8, 8192, 5][len(sys.argv) - 1:])[:7]
    threads = int(os.environ.get("THREADS", "2"))
    warmup = int(os.environ.get("WARMUP", "3"))
    compiled = os.environ.get("COMPILE", "1") != "0"
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = GPT(l, d, h, t, v)
    params = list(model.parameters())
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95), eps=1e-8, foreach=True)
    step_model = torch.compile(model) if compiled else model
    times, cpu = [], 0.0
    for step in range(warmup + steps):
        if step == warmup:
            cpu = time.process_time()
        x, y = torch.randint(0, v, (b, t)), torch.randint(0, v, (b, t))
        t0 = time.perf_counter()
        loss = step_model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step >= warmup:
            times.append(time.perf_counter() - t0)
    cpu = (time.process_time() - cpu) / max(1, len(times))
    times.sort()
    med = times[len(times) // 2]
    mode = "compiled" if compiled else "eager"
    print(json.dumps({
        "impl": f"pytorch {torch.__version__} {mode}", "config": f"L{l} d{d} h{h} T{t} B{b} V{v}",
        "params": sum(p.numel() for p in params), "threads": torch.get_num_threads(),
        "ms_per_step": round(med * 1e3, 1), "tokens_per_sec": round(b * t / med),
        "cpu_ms_per_step": round(cpu * 1e3, 1), "steps": len(times), "warmup": warmup,
    }), flush=True)


if __name__ == "__main__":
    main()
