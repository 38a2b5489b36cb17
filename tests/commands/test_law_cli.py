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
from emergence.config import load_config
from emergence.errors import UserError
from emergence.laws.fit_config import FitFile

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
            "fit.samples=300",
            "fit.warmup=300",
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
        assert archive["e0"].shape == (4, 300)  # 4 chains by default; 300 draws from fit.samples=300
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
    mle_only = "fit.sample=false"
    code = run(["backtest", str(table), "--task", "synthetic", mle_only, "--out", str(tmp_path / "bt")])
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


def test_unknown_task_and_bad_settings_are_one_line(tmp_path, capsys):
    assert "unknown task 'mmlu'" in one_line_error(capsys, ["backtest", str(FIXTURE), "--task", "mmlu"])
    fit = ["fit", str(FIXTURE), "--task", "synthetic", "--out", str(tmp_path / "fit")]
    assert "fit: unknown form 'cubic'" in one_line_error(capsys, [*fit, "fit.form=cubic"])
    assert "fit: d0 must be at least 2" in one_line_error(capsys, [*fit, "fit.d0=1"])
    assert "fit.samples: expected an integer, got 'x'" in one_line_error(capsys, [*fit, "fit.samples=x"])
    assert "unknown key 'fit.sampels'" in one_line_error(capsys, [*fit, "fit.sampels=3"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("fit:\n  chains: two\n")
    assert f"{bad}: fit.chains: expected an integer" in one_line_error(capsys, [*fit, "--config", str(bad)])
    assert not (tmp_path / "fit").exists()
    assert "fit.json" in one_line_error(capsys, ["forecast", str(tmp_path), "--loss", "3"])


def test_config_file_and_overrides_reach_the_fit(tmp_path, capsys):
    """A setting from --config and one from an override both show in fit.json; the override wins."""
    config = tmp_path / "fit.yaml"
    config.write_text("fit:\n  form: power\n  sample: true\n  delta: false\n")
    out = tmp_path / "fit"
    argv = ["fit", str(FIXTURE), "--task", "synthetic", "--config", str(config), "fit.sample=false"]
    assert run([*argv, "--out", str(out)]) == 0
    assert "not sampled" in capsys.readouterr().out
    summary = json.loads((out / "fit.json").read_text())
    assert (summary["form"], summary["delta"], summary["sampler"]) == ("power", False, None)
    assert "samples" not in summary["files"] and not (out / "samples.npz").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("fit.samples=x", "command line: fit.samples: expected an integer, got 'x'"),
        ("fit.samples=0", "fit: samples must be >= 1, got 0"),
        ("fit.warmup=-1", "fit: warmup must be >= 0, got -1"),
        ("fit.form=cubic", "fit: unknown form 'cubic'"),
        ("fit.likelihood=poisson", "fit: unknown likelihood 'poisson'"),
        ("fit.d0=1", "fit: d0 must be at least 2"),
        ("fit.d0=nan", "fit: d0 must be at least 2"),
        ("fit.e0_margin=0", "fit: e0_margin must be a positive number"),
        ("fit.chain_method=threads", "fit: chain_method must be one of"),
        ("fit.sampels=3", "unknown key 'fit.sampels'"),
    ],
)
def test_bad_settings_name_the_key(override, message):
    with pytest.raises(UserError) as err:
        load_config(FitFile, None, [override])
    assert message in str(err.value)


def test_a_file_and_overrides_combine(tmp_path):
    path = tmp_path / "fit.yaml"
    path.write_text("fit:\n  form: power\n  samples: 200\n")
    settings = load_config(FitFile, path, ["fit.samples=300", "fit.sample=false"]).fit
    assert (settings.form, settings.samples, settings.sample, settings.warmup) == ("power", 300, False, 1000)


def test_a_fit_in_bits_per_byte_reads_that_column_and_says_so(tmp_path, capsys):
    table = tmp_path / "t.csv"
    frame = pd.read_csv(FIXTURE)
    frame.insert(5, "pretrain_bits_per_byte", frame["pretrain_loss"] / 2.5)  # not a metric column
    frame.to_csv(table, index=False)
    out = tmp_path / "fit"
    argv = ["fit", str(table), "--task", "synthetic", "fit.sample=false", "--out", str(out)]
    assert run([*argv, "fit.loss_unit=bits-per-byte"]) == 0
    assert "bits/byte (MLE; not sampled)" in capsys.readouterr().out
    summary = json.loads((out / "fit.json").read_text())
    assert summary["loss_unit"] == "bits-per-byte" and summary["metric"] == "acc"
    assert max(summary["e0_support"]) == pytest.approx(frame["pretrain_loss"].max() / 2.5)
    assert run([*argv[:-1], str(tmp_path / "nats")]) == 0  # the default: nats/token, as before
    assert "nats (MLE; not sampled)" in capsys.readouterr().out
    assert "loss_unit" not in json.loads((tmp_path / "nats" / "fit.json").read_text())
    err = one_line_error(capsys, ["fit", str(FIXTURE), "--task", "synthetic", "fit.loss_unit=bits-per-byte", "--out", str(out)])
    assert "missing column 'pretrain_bits_per_byte'" in err
    assert "loss_unit must be one of" in one_line_error(capsys, [*argv, "fit.loss_unit=bits"])
