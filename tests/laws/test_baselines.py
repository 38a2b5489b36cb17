"""Naive forecasts of E(D0) and the paired comparison that every scored forecast is put beside."""

from __future__ import annotations

import numpy as np
import pytest

from emergence.laws.baselines import baseline_predictions, budget_elbows, compare, format_comparison
from emergence.laws.simulate import Design, Truth, draw_prior_truth, draw_truth, ladder, simulate
from emergence.laws.table import select

DESIGN = Design(budgets=(8, 32, 128, 512, 2048), n_eval=4000, n_emerged=0)


def test_baselines_read_the_observed_elbows():
    losses = np.sort(ladder(DESIGN)["pretrain_loss"].to_numpy())
    # elbows rise linearly in log D from 0.2 nats below the strongest checkpoint: log-power with α = 1
    k, c = 0.25, losses[0] - 0.2 - 0.25 * np.log(5.0)
    truth = Truth(A=0.6, B=0.25, delta=0.0, k=k, alpha=1.0, C=c, d0=5.0)
    data = select(simulate(truth, DESIGN, seed=0), DESIGN.task, chance=0.25)
    predictions = baseline_predictions(data)
    assert predictions["strongest"] == pytest.approx(losses[0])
    observed = budget_elbows(data)
    assert set(observed) >= {512.0, 2048.0}
    for budget, elbow in observed.items():
        assert elbow == pytest.approx(k * np.log(budget) + c, abs=0.08)
    # a straight line in log D is exactly the truth here, so the linear baseline lands near it
    assert predictions["linear"] == pytest.approx(truth.e0, abs=0.15)


def test_a_curve_that_never_rises_falls_back_to_the_strongest_checkpoint():
    flat = Truth(A=0.5, B=0.25, delta=0.0, k=0.0, alpha=1.0, C=0.0, d0=5.0)
    data = select(simulate(flat, DESIGN, seed=0), DESIGN.task, chance=0.25)
    predictions = baseline_predictions(data)
    assert budget_elbows(data) == {}
    assert predictions["smallest_budget"] == predictions["linear"] == predictions["strongest"]


def test_paired_comparison_sees_a_law_that_is_better_and_one_that_is_not():
    rng = np.random.default_rng(0)
    guess = np.abs(rng.normal(0.0, 0.2, 60))
    better = compare({"law": guess * 0.3, "strongest": guess, "smallest_budget": guess + 0.1, "linear": guess})
    assert better["cases"] == 60
    assert better["best_baseline"] in ("strongest", "linear")
    assert better["versus"]["strongest"]["law_better"]
    assert better["versus"]["strongest"]["ratio"]["high"] < 0.6
    same = compare({"law": guess, "strongest": guess[::-1].copy(), "smallest_budget": guess, "linear": guess})
    assert not same["versus"]["strongest"]["law_better"]
    assert "law / best baseline" in format_comparison(better)


def test_simulated_elbows_lie_ahead_of_the_data():
    for seed in range(20):
        design = Design(n_emerged=0)
        truth = draw_truth(design, np.random.default_rng(seed))
        strongest = ladder(design)["pretrain_loss"].min()
        assert 0.05 <= strongest - truth.e0 <= 0.5


def test_prior_truths_fall_inside_the_laws_support():
    for seed in range(10):
        truth = draw_prior_truth(DESIGN, np.random.default_rng(seed))
        losses = ladder(DESIGN)["pretrain_loss"]
        assert losses.min() - 0.75 <= truth.e0 <= losses.max()
        assert DESIGN.chance == truth.B
