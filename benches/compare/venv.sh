#!/usr/bin/env bash
# Makes the gitignored benches/compare/.venv and installs the peers a comparison needs, from PyPI.
# Usage: benches/compare/venv.sh torch|matmul|tokenizer|datatrove ...
#   torch:     PyTorch 2.x, the current release (Linux wheel: MKL + oneDNN for the CPU; pip also
#              pulls NVIDIA's CUDA libraries, about 5 GB, which torch loads at import even without
#              a GPU, so `pip install --no-deps torch` does not import) and numpy
#   matmul:    numpy, threadpoolctl
#   tokenizer: rustbpe, HF tokenizers, tiktoken
#   datatrove: datatrove and its extras used by clean_datatrove.py
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=benches/compare/.venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
for what in "$@"; do
  case "$what" in
    torch) "$venv/bin/pip" install --quiet "torch>=2" numpy ;;
    matmul) "$venv/bin/pip" install --quiet numpy threadpoolctl ;;
    tokenizer) "$venv/bin/pip" install --quiet rustbpe==0.1.0 tokenizers==0.23.3 tiktoken==0.14.0 ;;
    datatrove) "$venv/bin/pip" install --quiet datatrove regex "xxhash<3.6" tokenizers orjson ;;
    *) echo "venv.sh: unknown set $what (torch, matmul, tokenizer, datatrove)" >&2; exit 2 ;;
  esac
done
"$venv/bin/pip" list 2>/dev/null | grep -iE '^(torch|numpy|datatrove|tiktoken|tokenizers|rustbpe) ' || true
