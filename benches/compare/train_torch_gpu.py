#!/usr/bin/env python3
"""GPT-2 training steps in PyTorch on the GPU, timed like examples/train_bench_gpu.rs.

The same model and step as ours: tied head, GELU (tanh), causal attention, AdamW
(betas 0.9/0.95, weight decay 0.1 on 2-D tensors only), gradient clipping at 1.0, random tokens.
PyTorch's fast path: bf16 autocast, F.scaled_dot_product_attention (flash attention), fused
AdamW, TF32 matmuls for the fp32 parts; --compile adds torch.compile. The vocabulary is padded
to a multiple of 128 like ours (nanoGPT's 50304) unless --no-pad. Prints one JSON line.

usage: train_torch_gpu.py [--steps N] [--batch B] [--compile] [--fp32] [--no-pad] [L D H T B V STEPS]
       (defaults: GPT-2 124M, 12 768 12 1024 16 50257 10; 3 warm-up steps), e.g.
       python3 benches/compare/train_torch_gpu.py --steps 20
"""
import argparse
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

WARMUP = 3


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
                nn.init.normal_(p, 0.0, 0.02 / ((2 * l) ** 0.5 if name.endswith("c_proj.weight")
                                                or name.endswith("mlp_proj.weight") else 1.0))
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx, targets):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        for blk in self.blocks:
            x = blk(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1))


def peak_flops(name, bf16):
    """Datasheet dense peak, as src/tensor/cuda/device.rs::peak_gflops."""
    table = [("H200", 989e12, 67e12), ("H100", 989e12, 67e12), ("A100", 312e12, 19.5e12),
             ("L4", 121e12, 30.3e12), ("4090", 165e12, 82.6e12)]
    for key, b, f in table:
        if key in name:
            return b if bf16 else f
    return 989e12 if bf16 else 67e12


def main():
    ap = argparse.ArgumentParser(description="GPT-2 training steps in PyTorch on the GPU")
    ap.add_argument("sizes", nargs="*", type=int, help="L D H T B V STEPS")
    ap.add_argument("--steps", type=int, help="timed steps (after 3 warm-up steps)")
    ap.add_argument("--batch", type=int, help="sequences per step")
    ap.add_argument("--preset", default="gpt2", choices=["gpt2"], help="GPT-2 124M (the default)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--fp32", action="store_true", help="no bf16 autocast (TF32 matmuls)")
    ap.add_argument("--no-pad", action="store_true", help="keep the vocabulary unpadded")
    args = ap.parse_args()
    l, d, h, t, b, v, steps = (args.sizes + [12, 768, 12, 1024, 16, 50257, 10][len(args.sizes):])[:7]
    b = args.batch or b
    steps = max(1, args.steps or steps)
    flags = {f"--{k.replace('_', '-')}" for k in ("compile", "fp32", "no_pad") if getattr(args, k)}
    bf16 = "--fp32" not in flags
    vp = v if "--no-pad" in flags else (v + 127) // 128 * 128
    dev = "cuda"
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    model = GPT(l, d, h, t, vp).to(dev)
    decay = [p for p in model.parameters() if p.dim() == 2]
    rest = [p for p in model.parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": rest, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95), eps=1e-8, fused=True)
    step_model = torch.compile(model) if "--compile" in flags else model
    times = []
    for step in range(WARMUP + steps):
        x = torch.randint(0, v, (b, t), device=dev)
        y = torch.randint(0, v, (b, t), device=dev)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = step_model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        secs = time.perf_counter() - t0
        print(f"step {step}: loss {loss.item():.4f}, {secs * 1e3:.1f} ms", file=sys.stderr)
        if step >= WARMUP:
            times.append(secs)
    times.sort()
    med = times[len(times) // 2]
    # Same count as pretrain's flops_per_token: 6 per weight a token multiplies (unpadded vocab,
    # no position embedding) plus attention's 12·L·T·C.
    params = v * d + t * d + l * (12 * d * d + 13 * d) + 2 * d
    flops_per_token = 6 * (params - t * d) + 12 * l * t * d
    tps = b * t / med
    name = torch.cuda.get_device_name()
    mode = ("bf16 autocast" if bf16 else "fp32/tf32") + (" compile" if "--compile" in flags else "")
    print(json.dumps({
        "impl": f"pytorch {torch.__version__} {mode}", "device": name,
        "config": f"L{l} d{d} h{h} T{t} B{b} V{v}", "params": params,
        "ms_per_step": round(med * 1e3, 1), "tokens_per_sec": round(tps),
        "mfu": round(tps * flops_per_token / peak_flops(name, bf16), 3),
        "peak_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1),
    }))


if __name__ == "__main__":
    main()
