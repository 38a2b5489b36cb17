"""Loss ↔ compute: fitting L(C) = E∞ + a·C^(−b) and pushing E(D0) draws through it."""

from __future__ import annotations

import numpy as np
import pytest

from emergence.errors import UserError
from emergence.laws.scaling import ComputeLaw, emergence_compute, fit_compute_law, fit_ladder, forecast
from emergence.laws.simulate import Design, draw_truth, simulate
from emergence.laws.table import select


def test_fit_recovers_a_known_compute_law():
    compute = np.logspace(17, 21, 12)
    loss = 1.8 + 2.5 * (compute / 1e19) ** -0.2
    law = fit_compute_law(compute, loss)
    assert law.loss(3e20) == pytest.approx(1.8 + 2.5 * 30**-0.2, abs=1e-3)
    assert law.e_inf == pytest.approx(1.8, abs=0.05)
    assert law.compute_at(law.loss(5e19)) == pytest.approx(5e19, rel=1e-3)
    assert np.isinf(law.compute_at(law.e_inf - 0.1))


def test_ladder_uses_flops_else_six_n_t():
    design = Design()
    data = select(simulate(draw_truth(design, np.random.default_rng(0)), design, seed=0), design.task)
    assert fit_ladder(data).source == "flops"
    no_flops = data.subset(np.ones(data.loss.size, bool))
    object.__setattr__(no_flops, "flops", np.full(data.loss.size, np.nan))
    law = fit_ladder(no_flops)
    assert law.source == "6*params*tokens"
    assert law.rmse < 0.05


def test_too_few_checkpoints_is_a_clear_message():
    with pytest.raises(UserError, match="at least 3 checkpoints"):
        fit_compute_law(np.array([1e18, 1e19]), np.array([3.0, 2.8]))


def test_forecast_probabilities_and_compute_of_emergence():
    law = ComputeLaw(e_inf=1.8, a=1.0, b=0.2, c_ref=1e19, source="flops", n_points=10, rmse=0.0)
    draws = np.array([2.6, 2.7, 2.8, 2.9, 3.0])
    by_loss = forecast(draws, law, loss=2.75)
    assert by_loss["p_emerged"] == pytest.approx(0.6)
    by_flops = forecast(draws, law, flops=float(law.compute_at(2.85)))
    assert by_flops["p_emerged"] == pytest.approx(0.4)
    by_nt = forecast(draws, law, params=1e9, tokens=float(law.compute_at(2.85)) / 6e9)
    assert by_nt["p_emerged"] == pytest.approx(0.4)
    c = by_loss["emergence"]["flops"]
    assert c["q05"] <= c["median"] <= c["q95"]
    assert c["median"] == pytest.approx(float(law.compute_at(2.8)), rel=1e-6)


def test_unreachable_draws_are_infinite_not_nan():
    law = ComputeLaw(e_inf=2.0, a=1.0, b=0.2, c_ref=1e19, source="flops", n_points=10, rmse=0.0)
    out = emergence_compute(np.array([1.9, 1.95, 2.5, 2.6]), law)
    assert out["p_unreachable"] == 0.5
    assert np.isinf(out["flops"]["q95"])


@pytest.mark.parametrize(
    "kwargs, message",
    [({}, "exactly one"), ({"flops": 1e20, "loss": 3.0}, "exactly one"), ({"params": 1e9}, "go together")],
)
def test_forecast_rejects_ambiguous_requests(kwargs, message):
    law = ComputeLaw(e_inf=1.8, a=1.0, b=0.2, c_ref=1e19, source="flops", n_points=10, rmse=0.0)
    with pytest.raises(UserError, match=message):
        forecast(np.array([3.0]), law, **kwargs)
