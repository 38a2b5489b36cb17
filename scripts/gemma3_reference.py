"""Reference logits of the real Gemma 3 270M GGUF from transformers (which dequantizes it itself).

Run in the bench environment, with the GGUF assembled (``emergence info gemma3-270m`` does it):

    .venv-bench/bin/python scripts/gemma3_reference.py PATH/gemma-3-270m-q4_k_m.gguf [OUT_DIR]

Writes ``OUT_DIR/reference.safetensors`` (default ``tests/fixtures/gemma3_270m``): per prompt i,
``ids_i`` (transformers' tokenization, BOS first) and ``logits_i`` (fp32, the last :data:`KEEP`
positions: the long prompt crosses the 512-token sliding window) over the vocabulary ids
``vocab_i`` (each position's top :data:`TOP` and :data:`SAMPLE` fixed random ids: the whole
262k-row logits would not be a small fixture), and the first prompt's greedy continuation
(``generated``); and ``tokenization.json``: transformers' ids for :data:`TEXTS`.
``tests/models/test_gemma3_real.py`` compares ours.
"""

from __future__ import annotations

import json
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
TOP = 32
SAMPLE = 256
TEXTS = [
    "Hello world",
    " leading space and  double  spaces",
    "Tabs\tand\nnew lines\n\n",
    "Numbers: 3.14159, 2026-12-05, 1,000,000",
    "Ünïcödé: café, naïve, Straße, 東京, 🙂",
    "def f(x):\n    return x ** 2  # square",
    "<start_of_turn>user\nHi<end_of_turn>",
    "",
]


def main(gguf: str, out: str = str(Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "gemma3_270m")) -> None:
    path = Path(gguf)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    arrays: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for i, prompt in enumerate(PROMPTS):
            ids = tokenizer(prompt, return_tensors="pt").input_ids
            arrays[f"ids_{i}"] = ids[0].numpy().astype(np.int64)
            logits = model(ids).logits[0, -KEEP:].float().numpy()
            rng = np.random.default_rng(i)
            top = np.argsort(-logits, axis=-1)[:, :TOP].ravel()
            vocab = np.unique(np.concatenate([top, rng.choice(logits.shape[-1], SAMPLE, replace=False)]))
            arrays[f"vocab_{i}"] = vocab.astype(np.int64)
            arrays[f"logits_{i}"] = np.ascontiguousarray(logits[:, vocab])
            print(f"prompt {i}: {ids.shape[1]} tokens")
        ids = torch.from_numpy(arrays["ids_0"])[None]
        generated = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False)
        arrays["generated"] = generated[0, ids.shape[1]:].numpy().astype(np.int64)
    print("continuation:", repr(tokenizer.decode(arrays["generated"])))
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    prompts = {f"prompt_{i}": prompt for i, prompt in enumerate(PROMPTS)}
    save_file(arrays, str(target / "reference.safetensors"), metadata=prompts)
    encoded = {text: tokenizer(text, add_special_tokens=False).input_ids for text in TEXTS}
    (target / "tokenization.json").write_text(json.dumps(encoded, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
