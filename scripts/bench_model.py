"""CPU throughput of the JAX LLaMA on SmolLM2-135M, beside transformers (PyTorch) when available.

    .venv/bin/python scripts/bench_model.py [--reps 3] [--new-tokens 64]

Measures, after compilation: forward tokens/s at batch 8 x 256, and greedy decode tokens/s (KV cache)
at batch 1 and 8 (32-token prompts, fixed number of new tokens). When `.venv-bench` exists, the same
numbers for transformers' PyTorch model on the same weights are taken in a subprocess (so each side
has the machine to itself) and printed as ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from emergence.models.generate import greedy_generate
from emergence.models.registry import load_model, save_model

ROOT = Path(__file__).resolve().parents[1]
BENCH_PY = ROOT / ".venv-bench" / "bin" / "python"


@nnx.jit
def _forward(model, tokens):
    return model(tokens)[0]


def ours(reps: int, new_tokens: int) -> dict[str, float]:
    loaded = load_model("smollm2-135m")
    tokens = jnp.asarray(np.random.default_rng(0).integers(100, 40000, (8, 256)), jnp.int32)
    _forward(loaded.model, tokens).block_until_ready()
    start = time.perf_counter()
    for _ in range(reps):
        _forward(loaded.model, tokens).block_until_ready()
    results = {"forward_tokens_per_s": reps * tokens.size / (time.perf_counter() - start)}
    for batch in (1, 8):
        prompts = [list(map(int, row[:32])) for row in np.asarray(tokens[:batch])]
        greedy_generate(loaded.model, loaded.tokenizer, prompts, max_new_tokens=new_tokens, batch_size=batch, stop_at_eos=False)
        stats: dict = {}
        greedy_generate(loaded.model, loaded.tokenizer, prompts, max_new_tokens=new_tokens, batch_size=batch,
                        stop_at_eos=False, stats=stats)
        results[f"decode_b{batch}_tokens_per_s"] = stats["new_tokens"] / stats["seconds"]
    return results, loaded


def peer(loaded, new_tokens: int) -> dict[str, float] | None:
    if not BENCH_PY.exists():
        print("(no .venv-bench: `make bench-env` adds the transformers/PyTorch peer)")
        return None
    export = ROOT / "build" / "smollm2-hf-ours"
    if not (export / "config.json").exists():
        save_model(loaded, export)
    out = subprocess.run(
        [str(BENCH_PY), str(ROOT / "scripts" / "torch_peer.py"), "bench", "--hf", str(export), "--new-tokens", str(new_tokens)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].platform} x{len(jax.devices())}, cores: {os.cpu_count()}, load: {os.getloadavg()[0]:.1f}")
    results, loaded = ours(args.reps, args.new_tokens)
    del loaded.model
    torch_results = peer(load_model("smollm2-135m"), args.new_tokens)
    print(f"{'SmolLM2-135M fp32, CPU':<34}{'emergence (JAX)':>18}{'transformers':>16}{'ratio':>8}")
    for key, label in [("forward_tokens_per_s", "forward tokens/s (8 x 256)"),
                       ("decode_b1_tokens_per_s", "greedy decode tokens/s, batch 1"),
                       ("decode_b8_tokens_per_s", "greedy decode tokens/s, batch 8")]:
        theirs = torch_results.get(key) if torch_results else None
        ratio = f"{results[key] / theirs:.2f}x" if theirs else "-"
        print(f"{label:<34}{results[key]:>18.1f}{(f'{theirs:.1f}' if theirs else '-'):>16}{ratio:>8}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
