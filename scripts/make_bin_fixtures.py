"""Make the PyTorch ``.bin`` checkpoint fixtures and their safetensors twins (tests/fixtures/tiny_bin/).

Run in the bench environment (torch is never a runtime dependency of emergence):

    .venv-bench/bin/python scripts/make_bin_fixtures.py            # the committed fixtures
    .venv-bench/bin/python scripts/make_bin_fixtures.py --bench DIR # a ~300 MB pair for the benchmark

A tiny random LlamaForCausalLM is saved by transformers as safetensors, and its state dict with
``torch.save`` as ``pytorch_model.bin`` (single) or as shards with ``pytorch_model.bin.index.json``,
exactly as transformers 4.x wrote them (transformers 5 writes safetensors only):

- ``fp32_single`` and ``fp32_single_st``: one float32 file each;
- ``bf16_sharded`` and ``bf16_sharded_st``: bfloat16, in shards of at most 20 kB, with one tensor
  saved as a transposed view (a non-contiguous stride) and the tied-embedding layout of real files.

The tokenizer is the one of tests/fixtures/tiny_llama (copied, so both twins share it byte for byte).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "tiny_bin"
TOKENIZER = ROOT / "tests" / "fixtures" / "tiny_llama" / "gqa_untied"
TINY = dict(vocab_size=300, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, max_position_embeddings=64, bos_token_id=1, eos_token_id=2,
            tie_word_embeddings=False)  # fmt: skip
#: ~365 MB in float32: large enough that reading, not parsing, dominates the benchmark.
BENCH = dict(TINY, hidden_size=768, intermediate_size=2048, num_hidden_layers=6, num_attention_heads=12,
             num_key_value_heads=12, vocab_size=32000)  # fmt: skip


def random_model(shape: dict, dtype: torch.dtype) -> LlamaForCausalLM:
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**shape)).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.2) if param.dim() > 1 else param.uniform_(0.5, 1.5)
    return model.to(dtype)


def save_bin(state: dict[str, torch.Tensor], target: Path, shard_bytes: int | None) -> None:
    """``pytorch_model.bin``, or shards of at most ``shard_bytes`` and their index (transformers 4.x)."""
    target.mkdir(parents=True, exist_ok=True)
    if shard_bytes is None:
        torch.save(state, target / "pytorch_model.bin")
        return
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        file = f"pytorch_model-{i:05d}-of-{len(shards):05d}.bin"
        torch.save(shard, target / file)
        weight_map.update(dict.fromkeys(shard, file))
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (target / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=2))


def write_pair(model: LlamaForCausalLM, name: str, out: Path, shard_bytes: int | None) -> None:
    """``out/name`` (.bin) and ``out/name_st`` (safetensors), same config and tokenizer."""
    st, binary = out / f"{name}_st", out / name
    for folder in (st, binary):
        shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(st, max_shard_size=shard_bytes or "50GB")
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if shard_bytes is not None:  # a transposed view, as optimizers and weight surgery leave them
        key = "model.layers.0.mlp.down_proj.weight"
        state[key] = state[key].t().contiguous().t()
        assert not state[key].is_contiguous()
    save_bin(state, binary, shard_bytes)
    for file in ("config.json", "generation_config.json"):
        shutil.copy(st / file, binary / file)
    for folder in (st, binary):
        for file in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(TOKENIZER / file, folder / file)
    reloaded = LlamaForCausalLM.from_pretrained(binary, use_safetensors=False)  # transformers reads it too
    assert all(torch.equal(reloaded.state_dict()[k], v) for k, v in model.state_dict().items())
    print(f"{binary}: {sum(p.stat().st_size for p in binary.glob('*.bin')) / 1e6:.2f} MB of .bin")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bench", type=Path, help="write the benchmark pair (float32, single file) here instead"
    )
    args = parser.parse_args()
    if args.bench:
        write_pair(random_model(BENCH, torch.float32), "bench", args.bench, None)
        return
    write_pair(random_model(TINY, torch.float32), "fp32_single", OUT, None)
    write_pair(random_model(TINY, torch.bfloat16), "bf16_sharded", OUT, 20_000)


if __name__ == "__main__":
    main()
