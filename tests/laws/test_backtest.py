"""Backtests: the ground-truth elbow, the paper's protocols, and the scored table.

Protocol masks are checked on a simulated ladder whose structure we know; the end-to-end run
scores MLE-only fits (fast) against the ReLU elbow of the full few-shot curve.
"""

from __future__ import annotations

import numpy as np
import pytest

from emergence.errors import UserError
from emergence.laws.backtest import format_table, ground_truth, protocols, run_backtests
from emergence.laws.fit_config import FitSettings
from emergence.laws.predict import p_emerged, success, truth_elbow
from emergence.laws.simulate import Design, draw_truth, simulate
from emergence.laws.table import select

DESIGN = Design(
    sizes=(20e6, 40e6, 60e6, 100e6, 150e6, 250e6, 400e6),
    budgets=(8, 32, 128, 512, 2048),
    n_eval=2000,
    n_emerged=3,
    lead=(0.01, 0.03),  # the few-shot elbow inside the ladder: three checkpoints past it
)


@pytest.fixture(scope="module")
def simulated():
    truth = draw_truth(DESIGN, np.random.default_rng(4))
    return truth, select(simulate(truth, DESIGN, seed=4), DESIGN.task)


def test_truth_elbow_recovers_a_noisy_hinge():
    rng = np.random.default_rng(0)
    loss = np.linspace(2.5, 4.5, 40)
    y = 0.25 + 0.6 * np.maximum(3.1 - loss, 0) + rng.normal(0, 0.01, loss.size)
    fitted = truth_elbow(loss, y)
    assert fitted.emerged
    assert fitted.elbow == pytest.approx(3.1, abs=0.03)
    assert fitted.slope == pytest.approx(0.6, rel=0.15)


def test_truth_elbow_of_a_flat_curve_is_not_emergence():
    rng = np.random.default_rng(1)
    loss = np.linspace(2.5, 4.5, 40)
    assert not truth_elbow(loss, 0.25 + rng.normal(0, 0.01, loss.size)).emerged


def test_success_rule_and_p_emerged():
    assert success(3.05, 3.0) and success(2.9, 3.0) and not success(3.11, 3.0)
    draws = np.array([2.8, 2.9, 3.0, 3.1])
    assert p_emerged(draws, 2.95) == pytest.approx(0.5)
    assert p_emerged(draws, np.array([2.0, 4.0])).tolist() == [1.0, 0.0]


def test_ground_truth_matches_the_simulated_law(simulated):
    truth, data = simulated
    assert ground_truth(data).elbow == pytest.approx(truth.e0, abs=0.1)


def test_protocol_masks_do_what_their_names_say(simulated):
    truth, data = simulated
    masks = protocols(data, ground_truth(data))
    order = data.checkpoints_by_loss()  # weakest → strongest
    for k in range(1, 5):
        kept = set(np.unique(data.checkpoint[masks[f"holdout-last-{k}"]]))
        assert kept == set(order[:-k])
    pre = masks["pre-emergence"]
    assert data.loss[pre].min() > ground_truth(data).elbow
    budgets = sorted(np.unique(data.budget[data.budget > 0]))
    assert set(np.unique(data.budget[masks["drop-smallest-2"]])) == {0, *budgets[2:]}
    assert set(np.unique(data.budget[masks["drop-largest-1"]])) == {0, *budgets[:-1]}
    assert masks["drop-largest-3"] is not None and masks.get("drop-smallest-3") is not None
    assert set(np.unique(data.subset_seed[masks["single-seed"]])) == {0}
    assert np.unique(data.checkpoint[masks["last-3"]]).size == 3
    assert not (masks["last-3"] & ~pre).any()


def test_backtests_score_mle_fits_against_the_truth(simulated):
    _, data = simulated
    result = run_backtests(data, FitSettings(sample=False))
    names = [row.protocol for row in result.rows]
    assert names[:5] == [
        "holdout-last-1",
        "holdout-last-2",
        "holdout-last-3",
        "holdout-last-4",
        "pre-emergence",
    ]
    scored = {row.protocol: row for row in result.rows}
    assert scored["holdout-last-1"].success and scored["pre-emergence"].success
    assert all(np.isfinite(row.error) for row in result.rows)
    text = format_table(result)
    assert "ground truth" in text and "✓" in text and "success:" in text


def test_backtests_need_a_few_shot_curve_that_rises():
    flat_design = Design(n_emerged=0)
    truth = draw_truth(flat_design, np.random.default_rng(0))
    data = select(simulate(truth, flat_design, seed=0), flat_design.task)
    fewshot = data.fewshot
    data = data.subset(~fewshot | (data.loss > truth.e0 + 0.05))
    with pytest.raises(UserError, match="never rises"):
        run_backtests(data, FitSettings(sample=False))
