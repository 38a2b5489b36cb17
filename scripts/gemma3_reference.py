"""Reference logits of the real Gemma 3 270M GGUF from transformers (which dequantizes it itself).

Run in the bench environment, with the GGUF assembled (``emergence info gemma3-270m`` does it):

    .venv-bench/bin/python scripts/gemma3_reference.py PATH/gemma-3-270m-q4_k_m.gguf OUT.safetensors

Writes, per prompt i, ``ids_i`` (transformers' tokenization, BOS first) and ``logits_i`` (fp32, the
last :data:`KEEP` positions: the long prompt crosses the 512-token sliding window), and the greedy
continuation of the first prompt (``generated``). ``tests/models/test_gemma3_real.py`` compares ours.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = [
    "The capital of France is",
    "Question: What is 2 + 3?\nAnswer:",
    "def fibonacci(n):\n    ",
    " ".join(f"Item {i}: the {['red', 'green', 'blue'][i % 3]} box holds {i * 7 % 13} stones." for i in range(60))
    + " In total, the boxes",
]
KEEP = 16


def main(gguf: str, out: str) -> None:
    path = Path(gguf)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    arrays: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for i, prompt in enumerate(PROMPTS):
            ids = tokenizer(prompt, return_tensors="pt").input_ids
            arrays[f"ids_{i}"] = ids[0].numpy().astype(np.int64)
            arrays[f"logits_{i}"] = model(ids).logits[0, -KEEP:].float().numpy()
            print(f"prompt {i}: {ids.shape[1]} tokens")
        ids = torch.from_numpy(arrays["ids_0"])[None]
        generated = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False)
        arrays["generated"] = generated[0, ids.shape[1]:].numpy().astype(np.int64)
    print("continuation:", repr(tokenizer.decode(arrays["generated"])))
    save_file(arrays, out)


if __name__ == "__main__":
    main(*sys.argv[1:3])
