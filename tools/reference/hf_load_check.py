#!/usr/bin/env python3
"""Loads one of our checkpoint directories with Hugging Face's GPT2LMHeadModel.from_pretrained
and prints its loss on the ids 1..=8, to compare with `cargo run --release --example
checkpoint_loss -- DIR`.

Needs torch and transformers, e.g. Debian's python3-torch 1.13 plus
  pip install --target /tmp/hf "transformers==4.40.2" "tokenizers<0.20" "huggingface_hub<0.25" \
      safetensors regex pyyaml packaging filelock requests tqdm "numpy<2"
  PYTHONPATH=/tmp/hf /usr/bin/python3 tools/reference/hf_load_check.py runs/pipeline/run/checkpoint
"""
import sys

import torch
from transformers import GPT2LMHeadModel

model = GPT2LMHeadModel.from_pretrained(sys.argv[1]).eval()
ids = torch.arange(1, 9).unsqueeze(0)
with torch.no_grad():
    loss = model(ids, labels=ids).loss
n = sum(p.numel() for p in model.parameters())
print(f"transformers loaded GPT2LMHeadModel ({n} parameters); loss on ids 1..=8: {loss.item():.6f}")
