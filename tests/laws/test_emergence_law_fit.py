"""Fitting the emergence law: recovery of a known E(D0), and honest behaviour on degenerate input.

Recovery uses an informative but realistic design (7 sizes × 3 checkpoints, budgets from 8 to
2048, 2 seeds, 2000 eval items): the law must find the truth within 0.02 nats in most seeds.
Degenerate tables must end in a clear message or a *wide* posterior with a warning — never a
crash and never a narrow interval that looks trustworthy. Short chains keep this file fast.
"""

from __future__ import annotations

import numpy as np
import pytest

from emergence.errors import UserError
from emergence.laws.fit_config import FitSettings
from emergence.laws.law_fit import FIT_JSON, fit_law, read_fit_dir, write_fit_dir
from emergence.laws.simulate import Design, Truth, draw_truth, ladder, simulate
from emergence.laws.table import select

DESIGN = Design(
    sizes=(20e6, 40e6, 60e6, 100e6, 150e6, 250e6, 400e6),
    budgets=(8, 32, 128, 512, 2048),
    n_eval=2000,
    lead=(0.01, 0.03),  # the few-shot elbow inside the ladder (two checkpoints past it): recovery, not extrapolation
)
QUICK = FitSettings(warmup=300, samples=300, seed=0)
SEEDS = range(4)


def table(seed: int):
    truth = draw_truth(DESIGN, np.random.default_rng(seed))
    return truth, simulate(truth, DESIGN, seed=seed)


@pytest.fixture(scope="module")
def fits():
    out = []
    for seed in SEEDS:
        truth, frame = table(seed)
        out.append((truth, fit_law(select(frame, DESIGN.task), QUICK)))
    return out


def test_mle_recovers_the_few_shot_emergence_point(fits):
    errors = [abs(fit.emergence()["mle"] - truth.e0) for truth, fit in fits]
    assert sum(e <= 0.02 for e in errors) >= 3, errors


def test_posterior_median_recovers_it_and_intervals_cover(fits):
    errors = [abs(fit.emergence()["median"] - truth.e0) for truth, fit in fits]
    assert sum(e <= 0.02 for e in errors) >= 3, errors
    covered = [fit.emergence()["q05"] <= truth.e0 <= fit.emergence()["q95"] for truth, fit in fits]
    assert sum(covered) >= 3


def test_well_specified_fits_converge_without_divergences(fits):
    for _, fit in fits:
        diag = fit.posterior.diagnostics
        assert diag.divergences == 0
        assert diag.r_hat_max < 1.02  # short chains here; the benchmark checks 1.01 at full length
        assert fit.posterior.samples["e0_pos"].shape == (4, 300)


def test_summary_has_the_fit_json_contract(fits):
    summary = fits[0][1].summary()
    assert set(summary["few_shot_emergence"]) == {"mle", "median", "q05", "q95"}
    for name in ("A", "B", "k", "alpha", "C", "delta", "sigma", "e0"):
        assert {"mle", "median", "q05", "q95"} <= set(summary["params"][name])
    assert {"r_hat_max", "ess_min", "divergences"} <= set(summary["diagnostics"])
    assert summary["seconds"] > 0


def test_a_fit_directory_reads_back_what_was_written(fits, tmp_path):
    truth, fit = fits[0]
    summary, law = write_fit_dir(tmp_path / "fit", fit, truth=truth.e0, files={"fit_plot": "fit.png"})
    back = read_fit_dir(tmp_path / "fit" / FIT_JSON)
    np.testing.assert_array_equal(back.e0_draws, fit.e0_draws())
    assert back.compute_law == law and back.summary["truth_e0"] == truth.e0
    assert back.summary["files"] == {"samples": "samples.npz", "fit_plot": "fit.png"}
    assert back.summary["few_shot_emergence"] == summary["few_shot_emergence"]
    (tmp_path / "fit" / "samples.npz").write_bytes(b"cut")
    with pytest.raises(UserError, match="samples.npz"):
        read_fit_dir(tmp_path / "fit")


def test_everything_at_chance_gives_a_wide_posterior_and_a_warning():
    losses = ladder(DESIGN)["pretrain_loss"]
    flat = Truth(A=0.5, B=0.25, delta=0.0, k=0.05, alpha=1.0, C=float(losses.min()) - 1.5, d0=5.0)
    fit = fit_law(select(simulate(flat, DESIGN, seed=0), DESIGN.task), QUICK)
    e0 = fit.emergence()
    assert e0["q95"] - e0["q05"] > 0.3
    assert e0["q95"] < losses.min() + 0.1  # the data still say: not before the strongest checkpoint
    assert any("rise clearly above chance" in w for w in fit.warnings)
    assert any("wide 90% interval" in w for w in fit.warnings)


def test_nan_rows_are_dropped_and_the_fit_still_works():
    truth, frame = table(0)
    frame.loc[frame.index[::17], "acc"] = np.nan
    data = select(frame, DESIGN.task)
    assert any("dropped" in note for note in data.notes)
    fit = fit_law(data, FitSettings(sample=False))
    assert abs(fit.emergence()["mle"] - truth.e0) < 0.05


def test_one_budget_only_is_a_clear_message():
    _, frame = table(0)
    frame = frame[frame["budget"].isin([0, 128])]
    with pytest.raises(UserError, match="at least 2 finetuned budgets"):
        fit_law(select(frame, DESIGN.task), QUICK)


def test_no_few_shot_rows_fits_without_delta_says_so_and_widens(fits):
    truth, frame = table(1)
    fit = fit_law(select(frame[frame["budget"] > 0], DESIGN.task, d0=DESIGN.shots), QUICK)
    assert not fit.spec.use_delta
    assert any("no few-shot" in w for w in fit.warnings)
    e0, with_fewshot = fit.emergence(), fits[1][1].emergence()
    assert e0["q05"] <= truth.e0 <= e0["q95"]
    assert e0["q95"] - e0["q05"] > with_fewshot["q95"] - with_fewshot["q05"]


def test_binomial_likelihood_needs_counts():
    from dataclasses import replace

    _, frame = table(0)
    frame["n_correct"] = np.nan
    options = replace(QUICK, likelihood="binomial", sample=False)
    with pytest.raises(UserError, match="n_eval and n_correct"):
        fit_law(select(frame, DESIGN.task), options)


def test_same_seed_same_numbers(fits):
    _, frame = table(2)
    again = fit_law(select(frame, DESIGN.task), QUICK)
    assert again.emergence() == fits[2][1].emergence()
