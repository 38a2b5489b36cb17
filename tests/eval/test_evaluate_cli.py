"""`emergence eval` end to end on a tiny model, and its bad inputs (exit 2, one line, nothing written)."""

import json

import pytest

from emergence.cli import main
from tests.commands.test_model_cli import assert_one_line_error, run
from tests.models.helpers import FIXTURES

TINY = str(FIXTURES / "gqa_untied")
DATA = str(FIXTURES.parent / "benchmarks")


@pytest.mark.parametrize(("task", "shots", "metrics"), [
    ("cola", 0, {"mcc", "acc"}),
    ("commonsense_qa", 2, {"acc"}),
    ("mmlu", 1, {"acc", "acc_macro"}),
    ("gsm8k", 1, {"em_strict", "em_flexible"}),
])
def test_eval_prints_one_json_object_and_writes_records(tmp_path, capsys, task, shots, metrics):
    out = tmp_path / "records.jsonl"
    code, stdout, _ = run(["eval", TINY, "--task", task, "--shots", str(shots), "--limit", "3", "--data-dir", DATA,
                           "--json", "--out", str(out)], capsys)
    assert code == 0
    summary = json.loads(stdout)
    assert summary["task"] == task and summary["shots"] == shots and set(summary["metrics"]) == metrics
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == summary["n"] > 0
    assert {"id", "prediction", "gold", "correct"} <= set(records[0])
    assert ("generation" in records[0]) == (task == "gsm8k")


def test_unknown_task(tmp_path, capsys):
    code, _, err = run(["eval", TINY, "--task", "hellaswag", "--out", str(tmp_path / "r.jsonl")], capsys)
    assert_one_line_error(code, err, "hellaswag")
    assert not (tmp_path / "r.jsonl").exists()


def test_missing_data_dir(tmp_path, capsys):
    code, _, err = run(["eval", TINY, "--task", "cola", "--data-dir", str(tmp_path / "nowhere"),
                        "--out", str(tmp_path / "r.jsonl")], capsys)
    assert_one_line_error(code, err, "nowhere")
    assert not (tmp_path / "r.jsonl").exists()


def test_more_shots_than_the_fewshot_split(tmp_path, capsys):
    code, _, err = run(["eval", TINY, "--task", "mmlu", "--shots", "6", "--limit", "1", "--data-dir", DATA,
                        "--out", str(tmp_path / "r.jsonl")], capsys)
    assert_one_line_error(code, err, "6")
    assert not (tmp_path / "r.jsonl").exists()


def test_malformed_row_is_named(tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(DATA, data)
    tsv = data / "cola" / "in_domain_dev.tsv"
    lines = tsv.read_text().splitlines()
    lines[2] = "broken row without tabs"
    tsv.write_text("\n".join(lines) + "\n")
    code, _, err = run(["eval", TINY, "--task", "cola", "--data-dir", str(data)], capsys)
    assert_one_line_error(code, err, "in_domain_dev.tsv", "3")


def test_main_is_importable_without_jax_side_effects():
    assert callable(main)


def test_batch_size_options_change_no_number(capsys):
    """--batch-tokens and --generation-rows size the batches for a device; the metrics stay the same."""
    base = ["eval", TINY, "--task", "gsm8k", "--shots", "1", "--limit", "3", "--data-dir", DATA, "--json"]
    outputs = [run(base + extra, capsys) for extra in ([], ["--generation-rows", "1", "--batch-tokens", "64"])]
    assert [code for code, _, _ in outputs] == [0, 0]
    assert len({json.dumps(json.loads(out)["metrics"]) for _, out, _ in outputs}) == 1
