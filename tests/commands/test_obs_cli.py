"""`emergence obs`: a fit writes metrics.json and plots; user mistakes exit 2 with one line."""

import json

import pytest

from emergence.cli import main
from emergence.laws.observational.data import DEFAULT_TABLE, PAPER_BASE_EXCLUDED, PAPER_BASE_FAMILIES

BASE = DEFAULT_TABLE  # the shipped ObsScaling base-model table
PAPER_SET = ["--families", ",".join(PAPER_BASE_FAMILIES), "--exclude-models", ",".join(PAPER_BASE_EXCLUDED)]


def _run(argv):
    try:
        main(argv)
    except SystemExit as exit_:
        return exit_.code or 0
    return 0


def test_fit_writes_metrics_and_plots(tmp_path, capsys):
    out = tmp_path / "out"  # no table given: the shipped one
    code = _run(["obs", "fit", "--target", "GSM8K", "--cutoff", "84e21", *PAPER_SET, "--out", str(out)])
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    for key in ("n_train", "n_test", "mse_train", "mse_test", "r2_test", "params", "predictions"):
        assert key in m
    assert set(m["baselines"]) == {"log_flops", "log_params"}
    assert {"mse_test", "n_test"} <= set(m["baselines"]["log_flops"])
    first = m["predictions"][0]
    assert {"model", "split", "actual", "predicted"} <= set(first)
    assert (out / "predicted_vs_actual.png").stat().st_size > 0
    assert (out / "forecast.png").stat().st_size > 0
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left behind
    stdout = capsys.readouterr().out
    assert "n_train=47 n_test=30" in stdout
    assert "no FLOPs" in stdout  # quirks are said out loud


def test_families_prints_one_line_per_family(capsys):
    assert _run(["obs", "families", "--families", "Llama-2,OPT", "--families", "Pythia"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["family", "n"]
    assert sorted(line.split()[0] for line in lines[1:]) == ["Llama-2", "OPT", "Pythia"]


def _one_line_error(capsys, argv, *expected):
    assert _run(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    for fragment in expected:
        assert fragment in err[0]


def test_missing_target_column(tmp_path, capsys):
    _one_line_error(
        capsys,
        ["obs", "fit", str(BASE), "--target", "NoSuchCol", "--out", str(tmp_path)],
        "missing target column 'NoSuchCol'",
    )


def test_missing_benchmark_column(tmp_path, capsys):
    argv = ["obs", "fit", str(BASE), "--target", "GSM8K", "--benchmarks", "MMLU,BBH", "--out", str(tmp_path)]
    _one_line_error(capsys, argv, "missing benchmark column 'BBH'")


def test_non_numeric_cell_names_row_and_column(tmp_path, capsys):
    lines = BASE.read_text().splitlines()
    header = lines[0].split(",")
    col = header.index("MMLU")
    cells = lines[5].split(",")
    cells[col] = "n.a.!"
    lines[5] = ",".join(cells)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    argv = ["obs", "fit", str(bad), "--target", "GSM8K", "--out", str(tmp_path / "o")]
    _one_line_error(capsys, argv, "line 6", "column 'MMLU'", "'n.a.!'")


def test_target_all_missing(tmp_path, capsys):
    lines = BASE.read_text().splitlines()
    bad = tmp_path / "empty_target.csv"
    bad.write_text("\n".join([lines[0] + ",Agent"] + [line + "," for line in lines[1:]]) + "\n")
    argv = ["obs", "fit", str(bad), "--target", "Agent", "--out", str(tmp_path / "o")]
    _one_line_error(capsys, argv, "target column 'Agent' has no values")


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--cutoff", "84e21", "--holdout-top", "0.1"], "either --cutoff or --holdout-top"),
        (["--holdout-top", "1.5"], "--holdout-top must be in (0, 1)"),
        (["--families", "NoSuchFamily"], "unknown model families: NoSuchFamily"),
        (["--pcs", "9"], "--pcs 9 is out of range"),
    ],
)
def test_bad_options(tmp_path, capsys, extra, fragment):
    argv = ["obs", "fit", str(BASE), "--target", "GSM8K", "--out", str(tmp_path), *extra]
    _one_line_error(capsys, argv, fragment)


def test_missing_file(tmp_path, capsys):
    argv = ["obs", "fit", str(tmp_path / "nope.csv"), "--target", "GSM8K", "--out", str(tmp_path)]
    _one_line_error(capsys, argv, "file not found")


def test_a_missing_bare_name_lists_the_shipped_tables(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["obs", "fit", "nope.csv", "--target", "X", "--out", "o"]
    _one_line_error(capsys, argv, "file not found: nope.csv", "instruct_llm_agent_eval.csv")
