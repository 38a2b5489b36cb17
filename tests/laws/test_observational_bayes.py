"""The NUTS variant: same law, with predictive intervals that cover held-out models at their level.

One small posterior is shared by the tests (NUTS compilation dominates their cost).
"""

import numpy as np
import pytest
from scipy.special import expit

from emergence.laws.observational.law import BayesConfig, fit_bayes

CONFIG = BayesConfig(num_warmup=300, num_samples=300, num_chains=2, seed=1)
TRUE = {"w1": 6.0, "w2": 4.0, "intercept": -2.5, "floor": 0.1, "noise": 0.02}


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 2)) * np.array([0.3, 0.1]) + np.array([0.0, 0.5])
    z = x @ np.array([TRUE["w1"], TRUE["w2"]]) + TRUE["intercept"]
    y = (1 - TRUE["floor"]) * expit(z) + TRUE["floor"] + rng.normal(scale=TRUE["noise"], size=90)
    train = np.zeros(90, bool)
    train[np.argsort(z)[:70]] = True  # hold out the 20 most capable: an extrapolation, like real use
    return x, y, train, fit_bayes(x[train], y[train], x, CONFIG)


def test_posterior_recovers_the_law(problem):
    *_, fit = problem
    assert fit.params["floor"] == pytest.approx(TRUE["floor"], abs=0.03)
    assert fit.params["noise"] == pytest.approx(TRUE["noise"], rel=0.4)
    assert fit.params["w1"] == pytest.approx(TRUE["w1"], rel=0.3)
    assert fit.diagnostics["max_r_hat"] < 1.05
    assert fit.diagnostics["divergences"] < 10


def test_intervals_cover_held_out_models_near_their_level(problem):
    _, y, train, fit = problem
    assert np.all(fit.lower <= fit.upper)
    assert fit.coverage(y, ~train) >= 0.75
    assert fit.coverage(y, train) >= 0.8
    assert fit.coverage(y, np.zeros_like(train)) is None


def test_same_seed_same_intervals(problem):
    x, y, train, fit = problem
    again = fit_bayes(x[train], y[train], x, CONFIG)
    np.testing.assert_array_equal(fit.lower, again.lower)
    assert fit.params == again.params
