"""Harness tasks as our sweeps see them: records and metric columns from a harness run, the
harness' own rendering of training examples, and a one-line refusal where there is no training split."""

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("lm_eval", reason="the harness extra: pip install -e '.[harness]'")

from emergence.data.tasks import make_requests  # noqa: E402
from emergence.errors import UserError  # noqa: E402
from emergence.harness.run import evaluate_tasks, task_metrics  # noqa: E402
from emergence.harness.tasks import (  # noqa: E402
    default_shots,
    eval_split,
    load_task,
    metric_column,
    training_docs,
    training_pairs,
)
from emergence.models.registry import load_model  # noqa: E402
from emergence.train.examples import task_examples  # noqa: E402
from tests.models.helpers import FIXTURES  # noqa: E402

INCLUDE = str(Path(__file__).resolve().parents[1] / "fixtures" / "harness")
TOY = [json.loads(line) for line in (Path(INCLUDE) / "toy_choice.jsonl").read_text().splitlines()]


def test_a_local_yaml_task_runs_through_our_backend_into_records_and_metrics():
    loaded = load_model(str(FIXTURES / "gqa_untied"))
    [result], harness = evaluate_tasks(loaded, ["toy_choice"], limit=6, include=INCLUDE)
    assert (result.task, result.shots, result.n) == ("toy_choice", 2, 6)  # num_fewshot from its YAML
    assert list(result.metrics) == ["acc"] and result.metrics["acc"] == harness["results"]["toy_choice"]["acc,none"]
    test_docs = [d for d in TOY if d["split"] == "test"]
    for record, doc in zip(result.records, test_docs, strict=False):
        assert len(record["loglikelihoods"]) == len(doc["options"])  # choices differ per document
        assert record["prediction"] == max(range(len(doc["options"])), key=record["loglikelihoods"].__getitem__)
        assert record["correct"] == (record["prediction"] == doc["answer"]) == bool(record["acc"])
    assert result.n_correct == round(result.metrics["acc"] * 6)


def test_task_facts_come_from_the_yaml():
    assert default_shots("toy_choice", INCLUDE) == 2
    assert eval_split("toy_choice", INCLUDE) == "test"


def test_metric_columns_are_snake_case_with_the_headline_first():
    results = {"alias": "x", "acc,none": 0.5, "acc_stderr,none": 0.1, "mcc,none": 0.2,
               "exact_match,strict-match": 0.3}
    assert task_metrics(results, ["mcc", "acc"]) == {"mcc": 0.2, "acc": 0.5, "exact_match_strict_match": 0.3}
    assert list(task_metrics(results, ["mcc", "acc"]))[0] == "mcc"
    assert metric_column("exact_match", "flexible-extract") == "exact_match_flexible_extract"


def test_training_examples_are_the_harness_rendering_of_the_training_split():
    docs, note = training_docs("toy_choice", INCLUDE)
    assert len(docs) == sum(d["split"] == "train" for d in TOY) and "train" in note
    [(context, continuation, generation)] = training_pairs("toy_choice", INCLUDE, docs[:1])
    doc = docs[0]
    assert context == f"Which word is a colour: {', '.join(doc['options'])}?\nAnswer:"
    assert continuation == " " + doc["options"][doc["answer"]] and not generation
    tokenizer = load_model(str(FIXTURES / "gqa_untied")).tokenizer
    [example] = task_examples("harness:toy_choice", docs[:1], tokenizer, 96, harness_include=INCLUDE)
    answer = tokenizer.encode(context + continuation, add_bos=False)[len(tokenizer.encode(context, add_bos=False)):]
    assert example.tokens[-example.n_answer:].tolist() == answer  # only the answer carries loss


def test_a_task_without_training_split_is_refused_in_one_line():
    with pytest.raises(UserError, match="harness:toy_no_train has no training split") as err:
        training_docs("toy_no_train", INCLUDE)
    assert "\n" not in str(err.value)


def test_an_unknown_task_names_the_include_folder():
    with pytest.raises(UserError, match=r"unknown harness task 'no_such_task'.*fixtures/harness"):
        evaluate_tasks(None, ["no_such_task"], include=INCLUDE)


@pytest.mark.parametrize("ours, local", [("commonsense_qa", "local_commonsense_qa"), ("cola", "local_cola")])
def test_the_local_copies_of_our_benchmarks_render_our_prompts(ours, local):
    if not os.environ.get("EMERGENCE_DATA"):
        pytest.skip("needs the benchmark files ($EMERGENCE_DATA)")
    task = load_task(local, INCLUDE)
    docs = list(task.validation_docs())[:5]
    _, requests = make_requests(ours, shots=0, limit=5)
    assert [task.fewshot_context(doc, 0) for doc in docs] == [r.context for r in requests]
