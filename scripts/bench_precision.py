"""Compare per-example evaluation records (``emergence eval --out``) of one model at two precisions.

Issue 28's acceptance: log-likelihoods with bf16 parameters stay within 0.05 nats of fp32, and
per-example predictions agree on at least 97 % of the examples. The records come from runs such as

    emergence eval smollm2-135m --task commonsense_qa --out fp32.jsonl
    emergence eval smollm2-135m --task commonsense_qa --param-dtype bfloat16 --out bf16.jsonl

    .venv/bin/python scripts/bench_precision.py fp32.jsonl bf16.jsonl [more.jsonl ...]

Each later file is compared with the first (the reference): |Δ log-likelihood| per choice and per
example (the largest over its choices), the same less the shift shared by an example's choices
(which cannot change its prediction), how many choices exceed the tolerance, prediction
agreement and each run's accuracy.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def read_records(path: Path) -> dict[int, dict]:
    with open(path) as f:
        return {r["id"]: r for r in map(json.loads, f)}


def compare(reference: dict[int, dict], other: dict[int, dict], tolerance: float) -> dict:
    ids = sorted(reference)
    if sorted(other) != ids:
        raise SystemExit("the two runs scored different examples")
    signed = [np.subtract(other[i]["loglikelihoods"], reference[i]["loglikelihoods"]) for i in ids]
    deltas = [np.abs(d) for d in signed]
    per_choice = np.concatenate(deltas)
    # The shift shared by an example's choices cannot change its prediction; what is left can.
    centered = np.concatenate([np.abs(d - d.mean()) for d in signed])
    per_example = np.array([d.max() for d in deltas])
    agree = np.mean([other[i]["prediction"] == reference[i]["prediction"] for i in ids])
    return {
        "examples": len(ids),
        "choices": len(per_choice),
        "choice_max": float(per_choice.max()),
        "choice_mean": float(per_choice.mean()),
        "choice_p99": float(np.quantile(per_choice, 0.99)),
        "choices_over_tol": int((per_choice > tolerance).sum()),
        "centered_max": float(centered.max()),
        "centered_mean": float(centered.mean()),
        "example_max_mean": float(per_example.mean()),
        "examples_over_tol": int((per_example > tolerance).sum()),
        "agreement": float(agree),
        "acc_reference": float(np.mean([reference[i]["correct"] for i in ids])),
        "acc": float(np.mean([other[i]["correct"] for i in ids])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path)
    parser.add_argument("others", type=Path, nargs="+")
    parser.add_argument("--tolerance", type=float, default=0.05, help="nats")
    args = parser.parse_args()
    reference = read_records(args.reference)
    for path in args.others:
        result = compare(reference, read_records(path), args.tolerance)
        print(f"{path.name} vs {args.reference.name}: " + json.dumps(result))


if __name__ == "__main__":
    main()
