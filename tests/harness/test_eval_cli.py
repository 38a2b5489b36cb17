"""`emergence eval --harness-task`: our records and the harness' results file; misuse is one line."""

import json

import pytest

pytest.importorskip("lm_eval", reason="the harness extra: pip install -e '.[harness]'")

from tests.cli import run  # noqa: E402
from tests.harness.test_tasks import INCLUDE  # noqa: E402
from tests.models.helpers import FIXTURES  # noqa: E402

MODEL = str(FIXTURES / "gqa_untied")


def test_records_like_a_built_in_task_plus_the_harness_results_file(tmp_path, capsys):
    out = tmp_path / "toy.jsonl"
    code, printed, err = run(["eval", MODEL, "--harness-task", "toy_choice", "--harness-include", INCLUDE,
                              "--limit", "4", "--shots", "1", "--out", str(out), "--json"], capsys)
    assert code == 0, err
    summary = json.loads(printed)
    assert (summary["task"], summary["shots"], summary["n"]) == ("toy_choice", 1, 4)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == [0, 1, 2, 3] and {r["task"] for r in records} == {"toy_choice"}
    assert {"gold", "prediction", "correct", "loglikelihoods", "is_greedy"} <= set(records[0])
    harness = json.loads((tmp_path / "toy.jsonl.harness.json").read_text())
    assert harness["results"]["toy_choice"]["acc,none"] == summary["metrics"]["acc"]
    assert harness["n-shot"]["toy_choice"] == 1


@pytest.mark.parametrize("argv, message", [
    (["--task", "cola", "--harness-task", "toy_choice"], "exactly one of --task or --harness-task"),
    (["--harness-task", "toy_choice", "--split", "train"], "--split is for built-in tasks"),
    (["--task", "cola", "--harness-include", INCLUDE], "--harness-include goes with --harness-task"),
    (["--harness-task", "nope", "--harness-include", INCLUDE], "unknown harness task 'nope'"),
])
def test_misuse_is_one_line_before_loading_the_model(argv, message, capsys):
    code, _, err = run(["eval", "no/such-model", *argv], capsys)
    assert code == 2 and message in err
