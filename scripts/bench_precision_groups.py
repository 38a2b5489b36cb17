"""Which parameters' bf16 rounding moves SmolLM2's log-likelihoods (results/bench/precision.md).

Loads the model in fp32, rounds every parameter to bf16 and back (round-to-nearest-even: the values
a ``--param-dtype bfloat16`` load holds) except the named groups, and compares CommonsenseQA
log-likelihoods with the fp32 run, per choice. Needs ``EMERGENCE_DATA`` (the benchmarks) set::

    .venv/bin/python scripts/bench_precision_groups.py --limit 300 --shots 0
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from emergence.eval.evaluate import evaluate
from emergence.models.registry import load_model

GROUPS = [(), ("embed",), ("norm",), ("embed", "norm"), ("embed", "norm", "o_proj", "down_proj")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--shots", type=int, default=0)
    args = parser.parse_args()
    loaded = load_model("smollm2-135m")
    # copies: nnx.update writes into the model's variables, which nnx.state would share
    fp32 = jax.tree_util.tree_map(lambda v: jnp.array(np.asarray(v)), nnx.state(loaded.model, nnx.Param))

    def loglikelihoods() -> list[np.ndarray]:
        result = evaluate(loaded, "commonsense_qa", shots=args.shots, limit=args.limit)
        return [np.array(r["loglikelihoods"]) for r in result.records]

    def rounded_except(kept: tuple[str, ...]):
        def cast(path, value):
            name = "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)
            return value if any(g in name for g in kept) else value.astype(jnp.bfloat16).astype(jnp.float32)

        return jax.tree_util.tree_map_with_path(cast, fp32)

    reference = loglikelihoods()
    for kept in GROUPS:
        nnx.update(loaded.model, rounded_except(kept))
        other = loglikelihoods()
        delta = np.concatenate([np.abs(a - b) for a, b in zip(other, reference, strict=True)])
        agree = np.mean([a.argmax() == b.argmax() for a, b in zip(other, reference, strict=True)])
        print(f"fp32 kept: {', '.join(kept) or 'none'}: max {delta.max():.4f} mean {delta.mean():.4f} "
              f"p99 {np.quantile(delta, 0.99):.4f} >0.05 {np.mean(delta > 0.05):.3f} agree {agree:.3f}")
        nnx.update(loaded.model, fp32)


if __name__ == "__main__":
    main()
