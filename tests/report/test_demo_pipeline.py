"""`emergence demo`: the CI-sized pipeline (configs/demo_ci.yaml) runs end to end and writes every output
in the right shape; a rerun skips every stage; a changed task refits only that task; bad configs exit 2
with one line before anything is written.

The CI ladder is far too small for anything to emerge, so these tests check shapes and internal
consistency (numbers in the report equal those in analysis.json), never fixed values.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from emergence.report.demo_config import Holdout, held_out
from emergence.results_table import RESULT_COLUMNS
from emergence.train.ladder_config import LadderConfig
from emergence.train.pretrain import read_manifest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "demo_ci.yaml"
LADDER = LadderConfig.from_file(ROOT / yaml.safe_load(CONFIG.read_text())["ladder"])
N_CKPT = sum(len(m.checkpoints) for m in LADDER.models)
TASKS = ("toy_mc", "toy_yesno", "toy_math")
FIT_KEYS = {"task", "metric", "d0", "chance", "few_shot_emergence", "params", "diagnostics", "compute_law"}
ANALYSIS_KEYS = {
    "prediction",
    "truth",
    "error_nats",
    "compute",
    "acceptance",
    "finetuned_vs_fewshot",
    "forecast",
    "protocols",
    "checkpoints",
    "files",
    "fingerprint",
}


def demo(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "emergence.cli", "demo", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def ci_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    out, work = root / "out", root / "work"
    proc = demo(str(CONFIG), "--out", str(out), "--work", str(work))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, work, proc


def test_progress_is_shown_for_every_stage_and_the_report_path_printed_last(ci_demo):
    out, _, proc = ci_demo
    for i, stage in enumerate(("pretrain", "sweep", "fit", "report"), start=1):
        assert f"[{i}/4] {stage}:" in proc.stdout
    assert re.search(r"step\s+\d+/\d+\s+loss", proc.stdout), "pretraining steps are shown"
    first = LADDER.models[0]
    cell = rf"\[\d+/\d+\] {first.name}@{first.checkpoints[0]} toy_mc D=0"
    assert re.search(cell, proc.stdout), "sweep cells are shown"
    assert proc.stdout.strip().splitlines()[-1] == str(out / "report.md")


def test_results_table_has_the_schema_columns_and_one_row_per_cell(ci_demo):
    out, _, _ = ci_demo
    cfg = yaml.safe_load(CONFIG.read_text())
    frame = pd.read_csv(out / "results.csv")
    assert list(frame.columns[: len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
    assert {"acc", "mcc", "em_strict"} <= set(frame.columns)
    n_ckpt = frame["checkpoint"].nunique()
    budgets = cfg["sweep"]["budgets"]
    seeds = cfg["sweep"]["subset_seeds"]
    per_task = n_ckpt * (1 + (len(budgets) - 1) * len(seeds))
    assert frame.groupby("task").size().to_dict() == {t: per_task for t in TASKS}
    assert sorted(frame["budget"].unique()) == budgets
    assert frame["pretrain_loss"].notna().all() and frame["flops"].gt(0).all()


def test_every_task_has_its_fit_files_plots_and_analysis(ci_demo):
    out, _, _ = ci_demo
    for task in TASKS:
        folder = out / task
        fit = json.loads((folder / "fit.json").read_text())
        assert set(fit) >= FIT_KEYS and fit["task"] == task
        assert set(fit["few_shot_emergence"]) == {"mle", "median", "q05", "q95"}
        analysis = json.loads((folder / "analysis.json").read_text())
        assert set(analysis) >= ANALYSIS_KEYS
        for name in analysis["files"].values():
            assert (folder / name).is_file() and (folder / name).stat().st_size > 0, name
        for plot in ("law.png", "e0_cdf.png", "elbows.png"):
            assert (folder / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        p = analysis["prediction"]
        assert p["q05"] <= p["median"] <= p["q95"]


def test_held_out_checkpoints_are_the_configured_ones_and_left_out_of_the_fit(ci_demo):
    out, work, _ = ci_demo
    spec = Holdout(**yaml.safe_load(CONFIG.read_text())["holdout"])
    held = held_out(spec, read_manifest(work / "ladder" / "ladder.yaml"))
    assert held
    frame = pd.read_csv(out / "results.csv")
    for task in TASKS:
        a = json.loads((out / task / "analysis.json").read_text())
        assert {r["id"] for r in a["checkpoints"] if r["held_out"]} == held
        rows = frame[frame["task"] == task]
        assert a["n_rows"] == len(rows)
        assert a["n_rows_fitted"] == int((~rows["checkpoint"].isin(held)).sum())
        fitted_flops = [r["flops"] for r in a["checkpoints"] if not r["held_out"]]
        assert a["compute"]["max_fitted_flops"] == pytest.approx(max(fitted_flops))
        first = a["compute"]["first_post_emergence"]
        if first is not None:
            assert a["compute"]["ratio"] == pytest.approx(first["flops"] / max(fitted_flops))
        if a["truth"]["emerged"]:
            assert a["error_nats"] == pytest.approx(abs(a["prediction"]["median"] - a["truth"]["elbow"]))
        else:
            assert a["error_nats"] is None and not a["acceptance"]["success"]


def test_report_has_every_section_and_the_numbers_of_the_analyses(ci_demo):
    out, _, _ = ci_demo
    report = (out / "report.md").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert report.startswith("# Emergence demo")
    for heading in ("## Results", "## Time", "## Reproduce", *(f"## `{t}`" for t in TASKS)):
        assert heading in report
    header = next(line for line in report.splitlines() if line.startswith("| task |"))
    for column in (
        "predicted E(D0): MLE (median, 90%)",
        "true elbow",
        "error (nats)",
        "compute ratio",
        "finetuned higher",
    ):
        assert column in header
    assert "Finetuned emergence at higher loss than few-shot" in report
    assert "| task | law (MLE) |" in report and "Can the fitted rows identify the law?" in report
    for task in TASKS:
        a = json.loads((out / task / "analysis.json").read_text())
        p = a["prediction"]
        row = next(line for line in report.splitlines() if line.startswith(f"| `{task}` | {a['metric']} |"))
        assert f"| {p['mle']:.3f} ({p['median']:.3f}, {p['q05']:.3f}–{p['q95']:.3f}) |" in row
        assert f"![accuracy vs loss by budget]({task}/law.png)" in report
        if a["truth"]["emerged"]:
            assert f"| {a['error_nats']:.3f} |" in row
        assert summary["tasks"][task]["prediction"] == p
    assert {"pretrain", "sweep", "fit"} <= set(summary["timings"])
    assert summary["acceptance"]["tasks_within_0_1_with_2x"] == sum(
        t["acceptance"]["success"] for t in summary["tasks"].values()
    )


def test_a_rerun_skips_every_stage(ci_demo):
    out, work, _ = ci_demo
    before = {t: (out / t / "analysis.json").stat().st_mtime_ns for t in TASKS}
    proc = demo(str(CONFIG), "--out", str(out), "--work", str(work), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "skipped:" in proc.stdout and "0 to do" in proc.stdout
    for task in TASKS:
        assert f"{task}: skipped" in proc.stdout
        assert (out / task / "analysis.json").stat().st_mtime_ns == before[task]


def test_changing_one_tasks_fit_settings_refits_only_that_task(ci_demo, tmp_path):
    out, work, _ = ci_demo
    raw = yaml.safe_load(CONFIG.read_text())
    raw["tasks"][2]["metric"] = "em_flexible"
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(raw))
    ladder = ROOT / raw["ladder"]
    config.write_text(config.read_text().replace(raw["ladder"], str(ladder)))
    proc = demo(str(config), "--out", str(out), "--work", str(work), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "toy_mc: skipped" in proc.stdout and "toy_yesno: skipped" in proc.stdout
    assert "toy_math: skipped" not in proc.stdout
    assert json.loads((out / "toy_math" / "analysis.json").read_text())["metric"] == "em_flexible"


def test_a_task_with_its_own_holdout_is_refit_against_it(ci_demo, tmp_path):
    """Tasks emerge at different compute, so one task may hold out other checkpoints than the rest;
    only that task is refit, and the report names both held-out sets."""
    import shutil

    out, work, _ = ci_demo
    own_out = tmp_path / "out"
    shutil.copytree(out, own_out)
    raw = yaml.safe_load(CONFIG.read_text())
    raw["ladder"] = str(ROOT / raw["ladder"])
    raw["tasks"][1]["holdout"] = {"largest": 2}
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(raw))
    proc = demo(str(config), "--out", str(own_out), "--work", str(work), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "toy_mc: skipped" in proc.stdout and "toy_yesno: skipped" not in proc.stdout
    manifest = read_manifest(work / "ladder" / "ladder.yaml")
    want = held_out(Holdout(largest=2), manifest)
    analysis = json.loads((own_out / "toy_yesno" / "analysis.json").read_text())
    assert {r["id"] for r in analysis["checkpoints"] if r["held_out"]} == want
    report = (own_out / "report.md").read_text()
    assert "Held out** of the `toy_mc` fit (largest: 1): " in report
    assert (
        f"Held out** of the `toy_yesno` fit (own holdout, largest: 2): {', '.join(sorted(want))}." in report
    )


def test_a_demo_with_failed_cells_exits_1_and_names_the_way_out(ci_demo, tmp_path):
    """A budget larger than the training split fails its cells; the finished ones stay, and the
    demo ends with exit 1 (some cells failed), not 0 and not a user error."""
    import shutil

    work = tmp_path / "work"
    shutil.copytree(ci_demo[1], work)  # the pretrained ladder and finished cells; the fixture's stay clean
    raw = yaml.safe_load(CONFIG.read_text())
    raw["ladder"] = str(ROOT / raw["ladder"])
    raw["sweep"]["budgets"] = [0, 100000]
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(raw))
    proc = demo(str(config), "--out", str(tmp_path / "out"), "--work", str(work), timeout=240)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("failed: ") and "--retry-failed" in last and "Traceback" not in proc.stderr


def test_two_workers_split_pretraining_and_the_sweep_and_change_no_number(ci_demo, tmp_path):
    """``workers: 2``: a helper process pretrains part of the ladder, and a second ``emergence sweep
    run`` shares the sweep's cells through the lock files. The checkpoints are the one-process
    run's, byte for byte, and so is the table, number for number; every cell is computed once."""
    out, work, _ = ci_demo
    raw = yaml.safe_load(CONFIG.read_text())
    raw["ladder"] = str(ROOT / raw["ladder"])
    raw["workers"] = 2
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(raw))
    proc = demo(str(config), "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "helper process: pretraining" in proc.stdout and "helper process: sweep runner" in proc.stdout
    weights = sorted((work / "ladder").glob("*/step_*/model.safetensors"))
    assert len(weights) == N_CKPT
    for path in weights:
        twin = tmp_path / "work" / path.relative_to(work)
        assert twin.read_bytes() == path.read_bytes(), twin
    helper_cells = re.findall(
        r"\[\d+/\d+\] \S+@\S+ toy_", (tmp_path / "work" / "sweep_worker1.log").read_text()
    )
    main_cells = re.findall(r"\[\d+/\d+\] \S+@\S+ toy_", proc.stdout)
    assert helper_cells and main_cells, "both runners computed cells"
    # seconds vary, and code_version names the commit, which a commit between the two runs changes
    one, two = (
        pd.read_csv(o / "results.csv").drop(columns=["seconds", "code_version"]) for o in (out, tmp_path / "out")
    )
    one, two = (t.sort_values("config_hash").reset_index(drop=True) for t in (one, two))
    pd.testing.assert_frame_equal(one, two)
    assert len(helper_cells) + len(main_cells) == len(two), "every cell computed exactly once"


BAD = {
    "unknown key": (lambda r: r["fit"].update(sampels=10), "unknown key 'fit.sampels'"),
    "unknown task": (lambda r: r["tasks"].append({"name": "toy_nope"}), "tasks[3].name"),
    "unknown held-out model": (lambda r: r["holdout"].update(models=["d999"]), "holdout.models[0]"),
    "nothing held out": (lambda r: r.update(holdout={}), "holdout: name the held-out checkpoints"),
    "too many largest": (
        lambda r: r["holdout"].update(largest=N_CKPT),
        f"holdout.largest must be in 0..{N_CKPT - 1}",
    ),
    "sweep key the demo owns": (lambda r: r["sweep"].update(out="x"), "unknown key 'sweep.out'"),
    "bad sweep key": (lambda r: r["sweep"]["finetune"].update(lrr=1), "unknown key 'sweep.finetune.lrr'"),
    "bad fit form": (lambda r: r["fit"].update(form="cubic"), "fit: unknown form"),
    "bad task holdout": (
        lambda r: r["tasks"][1].update(holdout={"models": ["d999"]}),
        "tasks[1].holdout.models[0]",
    ),
    "bad task finetune key": (
        lambda r: r["tasks"][0].update(finetune={"epoch": 3}),
        "unknown key 'tasks[0].finetune.epoch'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_exits_2_with_one_line_and_writes_nothing(case, tmp_path, capsys):
    from emergence.cli import main

    edit, message = BAD[case]
    raw = yaml.safe_load(CONFIG.read_text())
    raw["ladder"] = str(ROOT / raw["ladder"])
    edit(raw)
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(raw))
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", str(config), "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()
