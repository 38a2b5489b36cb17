"""The law's pictures keep physical axes: a loss axis never below 0, a metric axis never above its maximum,
whether a plot shows the fitted rows only (``emergence fit``) or the held-out ones too (the demo)."""

from __future__ import annotations

import numpy as np
import pytest

from emergence.laws.emergence_law import metric_max
from emergence.laws.fit_config import FitSettings
from emergence.laws.law_fit import fit_law
from emergence.laws.simulate import Design, draw_truth, simulate
from emergence.laws.table import select
from emergence.report import law_plots

DESIGN = Design(
    sizes=(20e6, 60e6, 150e6, 400e6), steps_per_size=3, budgets=(64, 256), n_eval=800, n_emerged=2
)


@pytest.fixture(scope="module")
def fitted():
    frame = simulate(draw_truth(DESIGN, np.random.default_rng(3)), DESIGN, seed=3)
    data = select(frame, "synthetic", metric="acc", chance=0.25, source="sim")
    held = set(np.unique(data.checkpoint)[-3:])
    fit = fit_law(data.subset(~np.isin(data.checkpoint, sorted(held))), FitSettings(sample=False))
    return data, held, fit


@pytest.fixture
def axes(monkeypatch):
    """The axes a plot would save (the PNG itself is not looked at)."""
    drawn = []
    monkeypatch.setattr(law_plots, "_save", lambda fig, path: drawn.append(fig.axes[0]) or path)
    return drawn


def test_the_fit_plot_never_shows_a_negative_loss_or_a_metric_above_its_maximum(fitted, axes, tmp_path):
    data, held, fit = fitted
    law_plots.plot_fit(fit, tmp_path / "fit.png")
    # the demo's picture: held-out rows too, and a truth near 0 that pulls the axis left
    law_plots.plot_fit(fit, tmp_path / "law.png", data=data, held=held, truth=0.05)
    for ax in axes:
        assert min(ax.get_xlim()) >= 0.0
        assert max(ax.get_ylim()) <= metric_max(fit.data)
        assert ax.xaxis_inverted()  # stronger models (lower loss) on the right


def test_the_elbow_and_cdf_plots_keep_the_loss_axis_at_or_above_0(fitted, axes, tmp_path):
    data, _, fit = fitted
    budgets = [{"budget": b, "elbow": 0.01, "emerged": True} for b in data.finetuned_budgets]
    law_plots.plot_elbows(fit, {"budgets": budgets}, truth=0.01, path=tmp_path / "elbows.png")
    law_plots.plot_e0_cdf(fit, tmp_path / "cdf.png", truth=0.01)
    elbows, cdf = axes
    assert min(elbows.get_ylim()) >= 0.0
    assert min(cdf.get_xlim()) >= 0.0
