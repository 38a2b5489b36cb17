"""The emergence-law model itself: its log-density, gradient, padding and parameter mapping.

These run without sampling: they pin the NumPyro model to an independent numpy/scipy
transcription of DESIGN.md's formulas, so a change to either shows up here.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from numpyro.infer.util import log_density
from scipy import stats

from emergence.errors import UserError
from emergence.laws.emergence_law import (
    LawSpec,
    default_priors,
    derived,
    emergence_law_model,
    geometry,
    law_inputs,
    log_likelihood_np,
)
from emergence.laws.nuts import pad_inputs, padded_size
from emergence.laws.simulate import Design, draw_truth, simulate
from emergence.laws.table import read_results, select

THETA = {
    "e_a": 3.4,
    "log_gap": math.log(0.6),
    "log_alpha": math.log(1.3),
    "log_A": math.log(0.45),
    "B": 0.26,
    "delta": 0.015,
    "log_sigma": math.log(0.02),
}


@pytest.fixture(scope="module")
def data():
    design = Design()
    truth = draw_truth(design, np.random.default_rng(0))
    return select(simulate(truth, design, seed=0), design.task)


def hand_written_log_density(theta: dict, data, spec: LawSpec, priors) -> float:
    """DESIGN.md's law written out in plain numpy, in the paper's symbols (k, α, C)."""
    budgets = np.unique(data.budget[data.budget > 0])
    g = np.log if spec.form == "log-power" else (lambda d: d)
    alpha, gap = math.exp(theta["log_alpha"]), math.exp(theta["log_gap"])
    k = gap / (g(budgets.max()) ** alpha - g(budgets.min()) ** alpha)
    c = theta["e_a"] - k * g(budgets.min()) ** alpha
    d = np.where(data.budget == 0, data.d0, data.budget)
    e = k * g(d) ** alpha + c
    relu_s = np.logaddexp(0.0, spec.sharpness * (e - data.loss)) / spec.sharpness
    delta = theta["delta"] if spec.use_delta else 0.0
    perf = theta["B"] + delta * (data.budget == 0) + math.exp(theta["log_A"]) * relu_s
    if spec.likelihood == "normal":
        lik = stats.norm.logpdf(data.y, perf, math.exp(theta["log_sigma"])).sum()
    else:
        lik = stats.binom.logpmf(data.n_correct, data.n_eval, np.clip(perf, 1e-4, 1 - 1e-4)).sum()
    prior = sum(stats.norm.logpdf(theta[name], *getattr(priors, name)) for name in spec.latents())
    return float(lik + prior)


@pytest.mark.parametrize(
    "spec",
    [LawSpec(), LawSpec(likelihood="binomial"), LawSpec(use_delta=False), LawSpec(form="power")],
    ids=["normal", "binomial", "no-delta", "power"],
)
def test_model_log_density_matches_hand_written_numpy(data, spec):
    theta = {name: THETA[name] for name in spec.latents()}
    if spec.form == "power":
        theta["log_alpha"] = math.log(0.3)
    priors = default_priors(data, spec)
    x = law_inputs(data, geometry(data, spec))
    numpyro_value, _ = log_density(emergence_law_model, (x, spec, priors), {}, theta)
    expected = hand_written_log_density(theta, data, spec, priors)
    assert float(numpyro_value) == pytest.approx(expected, rel=2e-5, abs=0.05)


@pytest.mark.parametrize("likelihood", ["normal", "binomial"])
def test_numpy_gradient_matches_finite_differences(data, likelihood):
    spec = LawSpec(likelihood=likelihood)
    x = law_inputs(data, geometry(data, spec), xp=np)
    theta = {name: THETA[name] for name in spec.latents()}
    _, grads = log_likelihood_np(theta, x, spec, grad=True)
    for name in spec.latents():
        step = 1e-6
        up, down = dict(theta), dict(theta)
        up[name] += step
        down[name] -= step
        numeric = (log_likelihood_np(up, x, spec) - log_likelihood_np(down, x, spec)) / (2 * step)
        assert grads[name] == pytest.approx(numeric, rel=1e-4, abs=1e-3), name


def test_padding_rows_carry_no_weight(data):
    spec = LawSpec()
    priors = default_priors(data, spec)
    x = law_inputs(data, geometry(data, spec))
    padded = pad_inputs(x, padded_size(x.loss.shape[0]) + 37)
    plain, _ = log_density(emergence_law_model, (x, spec, priors), {}, THETA)
    with_padding, _ = log_density(emergence_law_model, (padded, spec, priors), {}, THETA)
    assert float(with_padding) == pytest.approx(float(plain), rel=1e-6)


def test_padded_sizes_are_few_buckets():
    assert padded_size(10) == 64
    assert padded_size(200) == 224
    assert padded_size(20_000) == 20_480
    assert all(padded_size(n) >= n for n in range(1, 5000, 7))


def test_derived_k_alpha_c_reproduce_the_elbows(data):
    spec = LawSpec()
    geo = geometry(data, spec)
    params = derived(THETA, geo)
    for budget in (geo_budget for geo_budget in np.unique(data.budget) if geo_budget > 0):
        e = params["k"] * math.log(budget) ** params["alpha"] + params["C"]
        h = math.log(budget) / geo.g_b
        expected = THETA["e_a"] + math.exp(THETA["log_gap"]) * (
            h ** params["alpha"] - geo.h_a ** params["alpha"]
        ) / (1 - geo.h_a ** params["alpha"])
        assert e == pytest.approx(expected, abs=1e-9)
    assert params["e0"] == pytest.approx(params["k"] * math.log(data.d0) ** params["alpha"] + params["C"])


def test_select_drops_nan_rows_with_a_note(data, tmp_path):
    frame = simulate(draw_truth(Design(), np.random.default_rng(1)), Design(), seed=1)
    frame.loc[[3, 7, 11], "acc"] = np.nan
    frame.loc[5, "pretrain_loss"] = np.nan
    sliced = select(frame, "synthetic")
    assert sliced.loss.size == len(frame) - 4
    assert any("dropped 4 row(s)" in note for note in sliced.notes)


def test_select_reads_d0_from_shots_and_knows_chance_levels():
    frame = simulate(draw_truth(Design(), np.random.default_rng(1)), Design(shots=8), seed=1)
    assert select(frame, "synthetic").d0 == 8
    frame["task"] = "mmlu"
    assert select(frame, "mmlu").chance == 0.25
    with pytest.raises(UserError, match="--d0 must be at least 2"):
        select(frame, "mmlu", d0=1)


def test_table_errors_name_the_culprit(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(UserError, match="not found"):
        read_results(missing)
    frame = simulate(draw_truth(Design(), np.random.default_rng(1)), Design(), seed=1)
    frame.drop(columns=["pretrain_loss"]).to_csv(tmp_path / "no_loss.csv", index=False)
    with pytest.raises(UserError, match="missing column 'pretrain_loss'"):
        read_results(tmp_path / "no_loss.csv")
    bad = frame.astype({"budget": object})
    bad.loc[4, "budget"] = "lots"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(UserError, match=r"row 6, column 'budget'"):
        read_results(tmp_path / "bad.csv")
    with pytest.raises(UserError, match="unknown task 'gsm8k'"):
        select(frame, "gsm8k")
    with pytest.raises(UserError, match="missing column 'mcc'"):
        select(frame, "synthetic", metric="mcc")


def test_parquet_and_csv_read_alike(tmp_path):
    frame = simulate(draw_truth(Design(), np.random.default_rng(2)), Design(), seed=2)
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    a, b = read_results(tmp_path / "t.csv"), read_results(tmp_path / "t.parquet")
    pd.testing.assert_series_equal(a["acc"], b["acc"])
