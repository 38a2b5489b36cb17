"""`emergence fit | backtest | forecast | simulate` end to end, and one-line errors for bad input.

The fit runs on a committed simulated table (tests/fixtures/results/synthetic_small.csv, with its
truth in synthetic_small.truth.json) with short chains; the persistent compile cache is off so
the test leaves nothing outside tmp_path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emergence.cli import main

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "results" / "synthetic_small.csv"


@pytest.fixture(autouse=True)
def no_compile_cache(monkeypatch):
    monkeypatch.setenv("EMERGENCE_JAX_CACHE", "off")


def run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One short fit of the fixture, shared by the tests that read its outputs."""
    import os

    os.environ["EMERGENCE_JAX_CACHE"] = "off"
    out = tmp_path_factory.mktemp("fit")
    table = out / FIXTURE.name
    shutil.copy(FIXTURE, table)
    shutil.copy(FIXTURE.with_name("synthetic_small.truth.json"), out)
    code = run(
        [
            "fit",
            str(table),
            "--task",
            "synthetic",
            "--samples",
            "300",
            "--warmup",
            "300",
            "--out",
            str(out / "fit"),
        ]
    )
    assert code == 0
    return out / "fit"


def test_fit_writes_the_fit_json_contract(fitted):
    summary = json.loads((fitted / "fit.json").read_text())
    truth = json.loads(FIXTURE.with_name("synthetic_small.truth.json").read_text())["e0"]
    e0 = summary["few_shot_emergence"]
    assert set(e0) == {"mle", "median", "q05", "q95"}
    assert abs(e0["median"] - truth) < 0.1
    assert summary["truth_e0"] == pytest.approx(truth)
    for name in ("A", "B", "k", "alpha", "C", "delta", "sigma"):
        assert {"mle", "median", "q05", "q95"} <= set(summary["params"][name])
    assert {"r_hat_max", "ess_min", "divergences"} <= set(summary["diagnostics"])
    assert summary["seconds"] > 0
    assert summary["compute_law"]["source"] == "flops"


def test_fit_writes_pickle_free_samples_and_plots(fitted):
    with np.load(fitted / "samples.npz", allow_pickle=False) as archive:
        assert archive["e0"].shape == (4, 300)
        assert "latent_log_alpha" in archive
    for png in ("fit.png", "e0_cdf.png"):
        assert (fitted / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_forecast_by_loss_flops_and_params_tokens(fitted, capsys):
    assert run(["forecast", str(fitted), "--loss", "2.5"]) == 0
    assert "P(emerged few-shot) = 1.000" in capsys.readouterr().out
    assert run(["forecast", str(fitted / "fit.json"), "--flops", "1e15"]) == 0
    assert "P(emerged few-shot) = 0.000" in capsys.readouterr().out
    assert run(["forecast", str(fitted), "--params", "1e9", "--tokens", "2e10"]) == 0
    out = capsys.readouterr().out
    assert "emergence at" in out and "FLOPs" in out


def test_simulate_then_mle_backtest(tmp_path, capsys):
    table = tmp_path / "sim.parquet"
    # --lead: the few-shot elbow just ahead of the 4th-strongest checkpoint, so a backtest has a truth
    assert run(["simulate", "--out", str(table), "--seed", "4", "--n-emerged", "3", "--lead", "0.01,0.03"]) == 0
    assert (tmp_path / "sim.truth.json").is_file()
    assert len(pd.read_parquet(table)) == 144  # the default design: 12 checkpoints × 6 budgets × 2 seeds
    code = run(["backtest", str(table), "--task", "synthetic", "--mle-only", "--out", str(tmp_path / "bt")])
    assert code == 0
    out = capsys.readouterr().out
    assert "holdout-last-1" in out and "success:" in out
    assert (tmp_path / "bt" / "backtest.png").is_file()
    assert json.loads((tmp_path / "bt" / "backtest.json").read_text())["rows"]


def one_line_error(capsys, argv: list[str]) -> str:
    assert run(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_missing_file_is_one_line(tmp_path, capsys):
    err = one_line_error(capsys, ["fit", str(tmp_path / "nope.csv"), "--task", "t", "--out", str(tmp_path)])
    assert "nope.csv" in err


def test_missing_column_is_one_line(tmp_path, capsys):
    table = tmp_path / "t.csv"
    pd.read_csv(FIXTURE).drop(columns=["budget"]).to_csv(table, index=False)
    assert "'budget'" in one_line_error(
        capsys, ["fit", str(table), "--task", "synthetic", "--out", str(tmp_path)]
    )
    err = one_line_error(
        capsys, ["fit", str(FIXTURE), "--task", "synthetic", "--metric", "mcc", "--out", str(tmp_path)]
    )
    assert "'mcc'" in err


def test_unknown_task_and_bad_options_are_one_line(tmp_path, capsys):
    assert "unknown task 'mmlu'" in one_line_error(capsys, ["backtest", str(FIXTURE), "--task", "mmlu"])
    err = one_line_error(
        capsys, ["fit", str(FIXTURE), "--task", "synthetic", "--form", "cubic", "--out", str(tmp_path)]
    )
    assert "--form" in err
    assert "--d0" in one_line_error(
        capsys, ["fit", str(FIXTURE), "--task", "synthetic", "--d0", "1", "--out", str(tmp_path)]
    )
    assert "fit.json" in one_line_error(capsys, ["forecast", str(tmp_path), "--loss", "3"])
