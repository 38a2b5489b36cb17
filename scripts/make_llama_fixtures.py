"""Regenerate the tiny-LLaMA parity fixtures with transformers' PyTorch LlamaForCausalLM.

Run in the bench environment (torch is never a runtime dependency of emergence):

    .venv-bench/bin/python scripts/make_llama_fixtures.py

For each variant it writes ``tests/fixtures/tiny_llama/<name>/``: an HF directory saved by
transformers itself (config.json, model.safetensors) plus a tiny byte-level BPE tokenizer, and
``reference.safetensors`` with input ids and PyTorch's fp32 logits for them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "tiny_llama"
VOCAB = 300
BASE = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
    rms_norm_eps=1e-5,
    bos_token_id=1,
    eos_token_id=2,
)
VARIANTS = {
    "gqa_untied": dict(tie_word_embeddings=False, rope_theta=10000.0),
    "gqa_tied": dict(tie_word_embeddings=True, rope_theta=500000.0),
    "llama3_rope_mqa": dict(
        tie_word_embeddings=False,
        num_key_value_heads=1,
        rope_theta=10000.0,
        rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                          original_max_position_embeddings=16),
    ),
}
CORPUS = [
    "The capital of France is Paris. The capital of Italy is Rome.",
    "Question: What is 12 + 30?\nAnswer: 42",
    "Emergence: few-shot accuracy jumps once the pretraining loss is low enough.",
] * 20


def tiny_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def save_tiny_tokenizer(tokenizer: Tokenizer, target: Path) -> None:
    """tokenizer.json and the tokenizer_config.json that makes transformers load it as a fast
    tokenizer with LLaMA's special tokens and no BOS added (every tiny fixture's tokenizer)."""
    tokenizer.save(str(target / "tokenizer.json"))
    (target / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
         "unk_token": "<unk>", "add_bos_token": False}, indent=2))


def main() -> None:
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    assert tokenizer.get_vocab_size() <= VOCAB
    rng = np.random.default_rng(0)
    input_ids = rng.integers(0, VOCAB, size=(2, 24)).astype(np.int64)
    for name, changes in VARIANTS.items():
        target = OUT / name
        shutil.rmtree(target, ignore_errors=True)
        config = LlamaConfig(**{**BASE, **changes})
        model = LlamaForCausalLM(config).eval()
        with torch.no_grad():  # larger-than-default weights so that errors are not hidden by tiny logits
            for param in model.parameters():
                param.normal_(0.0, 0.2) if param.dim() > 1 else param.uniform_(0.5, 1.5)
        model.save_pretrained(target, safe_serialization=True)
        save_tiny_tokenizer(tokenizer, target)
        with torch.no_grad():
            logits = model(torch.from_numpy(input_ids)).logits.float().numpy()
        save_file({"input_ids": input_ids, "logits": logits}, str(target / "reference.safetensors"))
        print(f"{name}: logits {logits.shape}, |max| {np.abs(logits).max():.3f}")


if __name__ == "__main__":
    main()
