"""Regenerate the per-family parity fixtures with transformers' PyTorch models.

Run in the bench environment (torch is never a runtime dependency of emergence):

    .venv-bench/bin/python scripts/make_family_fixtures.py

For each family it writes ``tests/fixtures/families/<family>/``: a tiny random model saved by
transformers itself (config.json, model.safetensors, and a ``bin/`` twin with pytorch_model.bin),
the tiny byte-level BPE tokenizer of the LLaMA fixtures, and ``reference.safetensors`` with input
ids, PyTorch's fp32 logits for them, a prompt and its greedy continuation.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from transformers import (
    AutoModelForCausalLM,
    Gemma3TextConfig,
    GPTNeoXConfig,
    Olmo2Config,
    Qwen2Config,
    Qwen3Config,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_llama_fixtures import VOCAB, save_tiny_tokenizer, tiny_tokenizer  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "families"
SIZES = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4,
             max_position_embeddings=128, bos_token_id=1, eos_token_id=2)
FAMILIES = {
    "qwen2": lambda: Qwen2Config(**SIZES, num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0,
                                 tie_word_embeddings=False),
    "qwen3": lambda: Qwen3Config(**SIZES, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-5,
                                 tie_word_embeddings=True),
    "olmo2": lambda: Olmo2Config(**SIZES, num_key_value_heads=2, rms_norm_eps=1e-5, tie_word_embeddings=False),
    "gpt_neox": lambda: GPTNeoXConfig(**SIZES, rotary_pct=0.25, rotary_emb_base=10000, layer_norm_eps=1e-5,
                                      use_parallel_residual=True, hidden_act="gelu", tie_word_embeddings=False),
    "gpt_neox_sequential": lambda: GPTNeoXConfig(**SIZES, rotary_pct=0.5, use_parallel_residual=False,
                                                 hidden_act="gelu", tie_word_embeddings=False),
    "gemma3": lambda: Gemma3TextConfig(**{**SIZES, "num_hidden_layers": 3}, num_key_value_heads=1, head_dim=16,
                                       query_pre_attn_scalar=24, sliding_window=5,
                                       layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                                       rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                                        "full_attention": {"rope_type": "linear", "factor": 4.0,
                                                                           "rope_theta": 1000000.0}},
                                       pad_token_id=0, tie_word_embeddings=True),
}
PROMPT = [1, 17, 42, 99, 7, 250, 3]
NEW_TOKENS = 8


def main() -> None:
    tokenizer = tiny_tokenizer()
    rng = np.random.default_rng(0)
    input_ids = rng.integers(0, VOCAB, size=(2, 16)).astype(np.int64)
    for index, (name, make_config) in enumerate(FAMILIES.items()):
        torch.manual_seed(index)
        target = OUT / name
        shutil.rmtree(target, ignore_errors=True)
        config = make_config()
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
        with torch.no_grad():  # larger-than-default weights so that errors are not hidden by tiny logits
            for pname, param in model.named_parameters():
                if param.dim() > 1:
                    param.normal_(0.0, 0.2)
                elif pname.endswith("bias") or name == "gemma3":  # Gemma's norms store w of (1 + w)
                    param.uniform_(-0.5, 0.5)
                else:
                    param.uniform_(0.5, 1.5)
        model.save_pretrained(target, safe_serialization=True)
        saved = load_file(str(target / "model.safetensors"))  # the .bin twin holds exactly these tensors
        (target / "bin").mkdir()
        shutil.copy(target / "config.json", target / "bin" / "config.json")
        torch.save({key: torch.from_numpy(value) for key, value in saved.items()}, target / "bin" / "pytorch_model.bin")
        save_tiny_tokenizer(tokenizer, target)
        with torch.no_grad():
            logits = model(torch.from_numpy(input_ids)).logits.float().numpy()
            prompt = torch.tensor([PROMPT])
            model.generation_config.eos_token_id = None  # plain argmax: EOS neither stops nor is suppressed
            out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=NEW_TOKENS,
                                 do_sample=False, pad_token_id=0)
        generated = out[0, len(PROMPT):].numpy().astype(np.int64)
        save_file({"input_ids": input_ids, "logits": logits, "prompt": np.asarray(PROMPT, np.int64),
                   "generated": generated}, str(target / "reference.safetensors"))
        size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
        print(f"{name}: logits {logits.shape}, |max| {np.abs(logits).max():.3f}, generated {generated.tolist()}, "
              f"{size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
