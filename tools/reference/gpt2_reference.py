#!/usr/bin/env python3
"""Reference outputs for pretrain's GPT-2, computed by PyTorch (like llm.c's test_gpt2).

Builds a tiny GPT-2 with random weights, then writes to tests/fixtures/gpt2_tiny/:
  config.json            Hugging Face GPT-2 config (the same keys our checkpoints use)
  model.safetensors      the weights, GPT-2 names and layouts (Conv1D weights are [in, out])
  expected.safetensors   logits [B, T, V] and the gradient of every parameter ("grad.NAME")
  expected.json          the tokens, the loss, and the losses of 10 AdamW steps

Everything is computed in float64 and stored as float32, so the fixtures are the exact answer
rounded once; the Rust test compares its float32 computation against them.

Run (Debian's python3-torch 1.13 works offline; install libopenblas0-pthread too):
  /usr/bin/python3 tools/reference/gpt2_reference.py
"""
import json
import math
import os
import struct

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "gpt2_tiny")
CFG = dict(n_layer=2, n_head=2, n_embd=16, block_size=16, vocab_size=67)
B, T = 2, 11
ADAMW = dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, grad_clip=1.0, steps=10)


def param_shapes(cfg):
    c, out = cfg["n_embd"], []
    out.append(("wte.weight", [cfg["vocab_size"], c]))
    out.append(("wpe.weight", [cfg["block_size"], c]))
    for l in range(cfg["n_layer"]):
        p = f"h.{l}."
        out += [
            (p + "ln_1.weight", [c]), (p + "ln_1.bias", [c]),
            (p + "attn.c_attn.weight", [c, 3 * c]), (p + "attn.c_attn.bias", [3 * c]),
            (p + "attn.c_proj.weight", [c, c]), (p + "attn.c_proj.bias", [c]),
            (p + "ln_2.weight", [c]), (p + "ln_2.bias", [c]),
            (p + "mlp.c_fc.weight", [c, 4 * c]), (p + "mlp.c_fc.bias", [4 * c]),
            (p + "mlp.c_proj.weight", [4 * c, c]), (p + "mlp.c_proj.bias", [c]),
        ]
    out += [("ln_f.weight", [c]), ("ln_f.bias", [c])]
    return out


def init_params(cfg, gen):
    """GPT-2 init, then small random biases and LayerNorm gains so every path is exercised."""
    params = {}
    for name, shape in param_shapes(cfg):
        if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name == "ln_f.weight":
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
        elif name.endswith(".bias"):
            t = 0.02 * torch.randn(shape, generator=gen, dtype=torch.float64)
        else:
            std = 0.02
            if name.endswith("c_proj.weight"):
                std /= math.sqrt(2 * cfg["n_layer"])
            t = std * torch.randn(shape, generator=gen, dtype=torch.float64)
        # Round to float32 once, so both sides start from identical weights.
        params[name] = t.float().double().requires_grad_(True)
    return params


def forward(p, cfg, idx):
    """GPT-2: embeddings, pre-LN blocks (causal attention, GELU-tanh MLP), final LN, tied head."""
    b, t = idx.shape
    c, nh = cfg["n_embd"], cfg["n_head"]
    x = p["wte.weight"][idx] + p["wpe.weight"][:t]
    mask = torch.tril(torch.ones(t, t, dtype=torch.bool))
    for l in range(cfg["n_layer"]):
        q = lambda s: p[f"h.{l}.{s}"]
        h = F.layer_norm(x, (c,), q("ln_1.weight"), q("ln_1.bias"), 1e-5)
        qkv = h @ q("attn.c_attn.weight") + q("attn.c_attn.bias")
        qq, kk, vv = qkv.split(c, dim=2)
        heads = lambda z: z.view(b, t, nh, c // nh).transpose(1, 2)
        qq, kk, vv = heads(qq), heads(kk), heads(vv)
        att = (qq @ kk.transpose(-2, -1)) / math.sqrt(c // nh)
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ vv).transpose(1, 2).reshape(b, t, c)
        x = x + y @ q("attn.c_proj.weight") + q("attn.c_proj.bias")
        h = F.layer_norm(x, (c,), q("ln_2.weight"), q("ln_2.bias"), 1e-5)
        h = F.gelu(h @ q("mlp.c_fc.weight") + q("mlp.c_fc.bias"), approximate="tanh")
        x = x + h @ q("mlp.c_proj.weight") + q("mlp.c_proj.bias")
    x = F.layer_norm(x, (c,), p["ln_f.weight"], p["ln_f.bias"], 1e-5)
    return x @ p["wte.weight"].t()


def write_safetensors(path, tensors):
    """The safetensors format by hand: u64 header length, JSON header, raw little-endian data."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors:
        data = t.detach().float().contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * ((8 - len(head) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for blob in blobs:
            f.write(blob)


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1337)
    cfg = CFG
    params = init_params(cfg, gen)
    tokens = torch.randint(0, cfg["vocab_size"], (B, T + 1), generator=gen)
    x, y = tokens[:, :-1], tokens[:, 1:]
    names = [n for n, _ in param_shapes(cfg)]

    logits = forward(params, cfg, x)
    loss = F.cross_entropy(logits.reshape(-1, cfg["vocab_size"]), y.reshape(-1))
    loss.backward()
    expected = [("logits", logits)] + [("grad." + n, params[n].grad) for n in names]

    os.makedirs(OUT, exist_ok=True)
    write_safetensors(os.path.join(OUT, "model.safetensors"), [(n, params[n]) for n in names])
    write_safetensors(os.path.join(OUT, "expected.safetensors"), expected)

    # 10 AdamW steps on the same batch: decay on 2-D tensors only, global-norm clipping.
    decay = [params[n] for n in names if params[n].dim() == 2]
    no_decay = [params[n] for n in names if params[n].dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": ADAMW["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=ADAMW["lr"], betas=ADAMW["betas"], eps=ADAMW["eps"],
    )
    losses = []
    for _ in range(ADAMW["steps"]):
        opt.zero_grad()
        l = F.cross_entropy(forward(params, cfg, x).reshape(-1, cfg["vocab_size"]), y.reshape(-1))
        l.backward()
        torch.nn.utils.clip_grad_norm_([params[n] for n in names], ADAMW["grad_clip"])
        opt.step()
        losses.append(l.item())

    config = {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": cfg["vocab_size"], "n_positions": cfg["block_size"], "n_ctx": cfg["block_size"],
        "n_embd": cfg["n_embd"], "n_layer": cfg["n_layer"], "n_head": cfg["n_head"],
        "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True,
    }
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({
            "batch": B, "seq_len": T, "inputs": x.tolist(), "targets": y.tolist(),
            "loss": loss.item(), "adamw": ADAMW, "adamw_losses": losses,
            "torch_version": torch.__version__,
        }, f, indent=1)
    print(f"loss {loss.item():.7f}; adamw losses {losses[0]:.5f} -> {losses[-1]:.5f}; wrote {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
