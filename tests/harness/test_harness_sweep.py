"""A task defined only in local harness YAML runs through a sweep, few-shot and finetuned, and its
rows are fitted: configs/sweeps/tiny_harness.yaml end to end, plus the one-line refusals."""

import json

import pandas as pd
import pytest
import yaml

pytest.importorskip("lm_eval", reason="the harness extra: pip install -e '.[harness]'")

from emergence.sweep.config import load_sweep_config  # noqa: E402
from emergence.sweep.plan import expand  # noqa: E402
from tests.cli import run  # noqa: E402
from tests.sweep.helpers import REPO, write_config  # noqa: E402

CONFIG = REPO / "configs" / "sweeps" / "tiny_harness.yaml"


def config(tmp_path, **changes):
    """The example config with absolute paths (tests run from anywhere) and ``changes`` on top."""
    raw = yaml.safe_load(CONFIG.read_text())
    for checkpoint in raw["checkpoints"]:
        checkpoint["model"] = str(REPO / checkpoint["model"])
    raw["loss"]["corpus"] = str(REPO / raw["loss"]["corpus"])
    raw["eval"]["harness_include"] = str(REPO / raw["eval"]["harness_include"])
    raw["out"] = str(tmp_path / "out")
    raw.update(changes)
    return write_config(tmp_path / "sweep.yaml", raw)


def test_plan_takes_shots_from_the_yaml_and_keys_the_harness_task(tmp_path):
    cells = expand(load_sweep_config(config(tmp_path)))
    assert {(c.task, c.budget, c.shots) for c in cells if c.task.startswith("harness:")} == {
        ("harness:toy_choice", 0, 2), ("harness:toy_choice", 8, 2), ("harness:toy_choice", 16, 2)}
    assert all(c.resolved["split"] == "test" for c in cells if c.budget == 0 and c.task.startswith("harness:"))


def test_a_task_without_training_split_is_refused_for_finetuned_cells_only(tmp_path, capsys):
    path = config(tmp_path, tasks=[{"name": "harness:toy_no_train"}])
    code, _, err = run(["sweep", "plan", str(path)], capsys)
    assert code == 2 and "tasks[0]: harness:toy_no_train has no training split" in err
    assert len(err.strip().splitlines()) == 1
    few_shot_only = config(tmp_path, tasks=[{"name": "harness:toy_no_train", "budgets": [0]}])
    assert run(["sweep", "plan", str(few_shot_only)], capsys)[0] == 0


def test_an_unknown_harness_task_is_one_line(tmp_path, capsys):
    code, _, err = run(["sweep", "plan", str(config(tmp_path, tasks=[{"name": "harness:nope"}]))], capsys)
    assert code == 2 and "tasks[0].name: unknown harness task 'nope'" in err


@pytest.mark.slow
def test_few_shot_and_finetuned_cells_enter_the_table_and_the_fit(tmp_path, capsys):
    path = config(tmp_path)
    code, _, err = run(["sweep", "run", str(path)], capsys)
    assert code == 0, err
    table = tmp_path / "results.csv"
    assert run(["results", str(tmp_path / "out"), "--format", "csv", "--out", str(table)], capsys)[0] == 0
    frame = pd.read_csv(table)
    assert set(frame["task"]) == {"harness:toy_choice"}
    assert sorted(frame["budget"]) == [0, 0, 8, 8, 16, 16]
    assert frame["acc"].between(0, 1).all() and (frame["n_eval"] == 12).all()
    assert (frame["n_correct"] == (frame["acc"] * 12).round()).all()
    assert frame["pretrain_loss"].notna().all()
    fit = ["fit", str(table), "--task", "harness:toy_choice", "--metric", "acc", "--out", str(tmp_path / "fit"),
           "fit.sample=false", "fit.starts=4"]
    code, out, err = run(fit, capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert summary["task"] == "harness:toy_choice" and summary["metric"] == "acc"
