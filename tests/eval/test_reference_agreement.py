"""The committed lm-evaluation-harness reference run (results/eval_reference/) is complete and coherent.

Those files are the independent run our evaluator is accepted against (``scripts/bench_eval.py
--against-reference``): lm-eval 0.4.13's HF backend, fp32 on CPU, SmolLM2-135M, commonsense_qa
0-shot over all 1221 validation questions and CoLA 0-shot over all 1043 GLUE validation sentences.
These tests pin what the comparison relies on without running any model: every document is there
once, in order, with one loglikelihood per choice; each prediction is the argmax the harness' ``acc``
takes; the summary's metrics follow from the rows (CoLA's MCC through our own
``matthews_corrcoef``); and, when the real data is present, the golds equal our data layer's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emergence.data import sources, tasks
from emergence.errors import UserError
from emergence.eval.metrics import accuracy, matthews_corrcoef

REFERENCE = Path(__file__).resolve().parents[2] / "results" / "eval_reference"
EXPECTED = {"commonsense_qa": (1221, 5, "acc"), "cola": (1043, 2, "mcc")}  # rows, choices, headline metric


def _load(task: str) -> tuple[list[dict], dict]:
    jsonl, summary = REFERENCE / f"{task}.jsonl", REFERENCE / f"{task}.summary.json"
    if not (jsonl.is_file() and summary.is_file()):
        pytest.skip(f"no committed reference run for {task} in {REFERENCE}")
    rows = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows, json.loads(summary.read_text(encoding="utf-8"))


@pytest.mark.parametrize("task", sorted(EXPECTED))
def test_every_document_appears_once_in_order_with_one_loglikelihood_per_choice(task):
    rows, summary = _load(task)
    n, n_choices, _ = EXPECTED[task]
    assert [r["doc_id"] for r in rows] == list(range(n))
    assert summary["n"] == n and summary["shots"] == 0 and summary["task"] == task
    assert all(len(r["loglikelihoods"]) == n_choices for r in rows)
    assert all(0 <= r["gold"] < n_choices for r in rows)
    assert all(ll < 0 for r in rows for ll in r["loglikelihoods"])


@pytest.mark.parametrize("task", sorted(EXPECTED))
def test_each_prediction_is_the_highest_loglikelihood_choice(task):
    rows, _ = _load(task)
    for r in rows:
        lls = r["loglikelihoods"]
        assert lls[r["prediction"]] == max(lls), r[
            "doc_id"
        ]  # rounding to 1e-5 may create ties: no index check


@pytest.mark.parametrize("task", sorted(EXPECTED))
def test_the_summary_metric_follows_from_the_rows(task):
    rows, summary = _load(task)
    preds, golds = [r["prediction"] for r in rows], [r["gold"] for r in rows]
    metric = EXPECTED[task][2]
    ours = accuracy(preds, golds) if metric == "acc" else matthews_corrcoef(preds, golds)
    assert ours == pytest.approx(summary["metrics"][metric], abs=1e-12)
    if task == "cola":  # its YAML lists only mcc; acc is derived from the same predictions
        assert summary["derived_metrics"]["acc"] == pytest.approx(accuracy(preds, golds))


@pytest.mark.parametrize("task", sorted(EXPECTED))
def test_golds_equal_our_data_layers_golds_on_the_real_data(task):
    rows, _ = _load(task)
    try:
        sources.resolve_data_dir(None)
    except UserError:
        pytest.skip("full benchmark files not found: set EMERGENCE_DATA")
    _, requests = tasks.make_requests(task, shots=0)
    assert [(q.doc_id, q.gold) for q in requests] == [(r["doc_id"], r["gold"]) for r in rows]
