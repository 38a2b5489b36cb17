"""The emergence-law model itself: its log-density, support, cap and parameter mapping.

These run without sampling: they pin the NumPyro model to an independent numpy/scipy
transcription of the law in the paper's symbols (k, α, C), so a change to either shows up here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpyro.infer.util import log_density
from scipy import special, stats

from emergence.errors import UserError
from emergence.laws.emergence_law import (
    LawSpec,
    default_priors,
    derived,
    e0_value,
    emergence_law_model,
    geometry,
    law_inputs,
    log_likelihood,
    mean_perf,
    prior_draws,
)
from emergence.laws.simulate import Design, draw_truth, simulate
from emergence.laws.table import select

THETA = {
    "e0_pos": 0.4,
    "shift": 0.6,
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
    return select(simulate(truth, design, seed=0), design.task, chance=0.25)


def hand_written_log_density(theta: dict, data, spec: LawSpec, priors) -> float:
    """The law written out in plain numpy, in the paper's symbols (k, α, C)."""
    budgets = np.unique(data.budget[data.budget > 0])
    g = np.log if spec.form == "log-power" else (lambda d: d)
    lo = max(spec.loss_floor, data.loss.min() - spec.e0_margin)
    e0 = lo + (data.loss.max() - lo) * special.expit(theta["e0_pos"])
    alpha = math.exp(theta["log_alpha"])
    k = theta["shift"] / (g(budgets.max()) ** alpha - g(data.d0) ** alpha)
    c = e0 - k * g(data.d0) ** alpha
    d = np.where(data.budget == 0, data.d0, data.budget)
    e = k * g(d) ** alpha + c
    relu_s = np.logaddexp(0.0, spec.sharpness * (e - data.loss)) / spec.sharpness
    delta = theta["delta"] if spec.use_delta else 0.0
    base = theta["B"] if spec.sample_chance else data.chance
    raw = base + delta * (data.budget == 0) + math.exp(theta["log_A"]) * relu_s
    perf = 1.0 - np.logaddexp(0.0, 200.0 * (1.0 - raw)) / 200.0  # capped at the metric's maximum
    if spec.likelihood == "normal":
        lik = stats.norm.logpdf(data.y, perf, math.exp(theta["log_sigma"])).sum()
    else:
        lik = stats.binom.logpmf(data.n_correct, data.n_eval, np.clip(perf, 1e-4, 1 - 1e-4)).sum()
    prior = sum(
        stats.logistic.logpdf(theta[name], *getattr(priors, name))
        if name == "e0_pos"
        else stats.norm.logpdf(theta[name], *getattr(priors, name))
        for name in spec.latents()
    )
    return float(lik + prior)


@pytest.mark.parametrize(
    "spec",
    [
        LawSpec(),
        LawSpec(likelihood="binomial"),
        LawSpec(use_delta=False),
        LawSpec(form="power"),
        LawSpec(sample_chance=True),
    ],
    ids=["normal", "binomial", "no-delta", "power", "sampled-chance"],
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


def test_chance_is_a_latent_only_when_unknown(data):
    assert "B" not in LawSpec().latents()
    assert "B" in LawSpec(sample_chance=True).latents()
    unknown = select(simulate(draw_truth(Design(), np.random.default_rng(0)), Design(), seed=0), "synthetic")
    assert not unknown.chance_known and data.chance_known


def test_e0_lies_in_its_physical_support(data):
    spec = LawSpec(e0_margin=0.5)
    geo = geometry(data, spec)
    assert geo.e0_lo == pytest.approx(max(0.0, data.loss.min() - 0.5))
    assert geo.e0_hi == pytest.approx(data.loss.max())
    draws = prior_draws(default_priors(data, spec), spec, 4000, seed=0)
    e0 = derived(draws, geo)["e0"]
    assert geo.e0_lo <= e0.min() and e0.max() <= geo.e0_hi
    # uniform over the support: each fifth of it holds about a fifth of the prior mass
    counts = np.histogram(e0, bins=5, range=(geo.e0_lo, geo.e0_hi))[0] / e0.size
    assert np.allclose(counts, 0.2, atol=0.03)
    floored = geometry(data, LawSpec(loss_floor=data.loss.min() - 0.1))
    assert floored.e0_lo == pytest.approx(data.loss.min() - 0.1)
    with pytest.raises(UserError, match="loss floor"):
        geometry(data, LawSpec(loss_floor=data.loss.max() + 1))


def test_perf_never_exceeds_the_metric_maximum(data):
    spec = LawSpec()
    x = law_inputs(data, geometry(data, spec))
    steep = dict(THETA, e0_pos=8.0, log_A=math.log(50.0))
    perf = np.asarray(mean_perf(steep, x, spec))
    assert perf.max() <= 1.0 + 1e-6
    assert perf.max() > 0.99  # and still reaches it


def test_a_zero_shift_is_an_ordinary_point(data):
    """No funnel: at shift 0 every budget's elbow is E(D0), and the density is finite and smooth."""
    spec = LawSpec()
    geo = geometry(data, spec)
    flat = dict(THETA, shift=0.0)
    params = derived(flat, geo)
    assert params["e_a"] == pytest.approx(params["e0"])
    x = law_inputs(data, geo)
    values = [float(log_likelihood(dict(flat, shift=s), x, spec)) for s in (-1e-3, 0.0, 1e-3)]
    assert all(np.isfinite(values))
    assert abs(values[0] - 2 * values[1] + values[2]) < 1.0


def test_derived_k_alpha_c_reproduce_the_elbows(data):
    spec = LawSpec()
    geo = geometry(data, spec)
    params = derived(THETA, geo)
    e0 = float(e0_value(THETA["e0_pos"], geo.e0_lo, geo.e0_hi, np))
    assert params["e0"] == pytest.approx(e0)
    assert params["e0"] == pytest.approx(params["k"] * math.log(data.d0) ** params["alpha"] + params["C"])
    top = params["k"] * math.log(data.finetuned_budgets.max()) ** params["alpha"] + params["C"]
    assert top - e0 == pytest.approx(THETA["shift"])
    bottom = params["k"] * math.log(data.finetuned_budgets.min()) ** params["alpha"] + params["C"]
    assert params["e_a"] == pytest.approx(bottom)


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


def test_a_design_may_place_the_fewshot_point_at_its_own_d0():
    """A demo whose fit sets d0 (configs/demo.yaml) is simulated with the same D0, shots aside."""
    design = Design(shots=3, d0=8)
    truth = draw_truth(design, np.random.default_rng(2))
    assert truth.d0 == 8 and truth.e0 == pytest.approx(float(truth.elbow(8)))
    frame = simulate(truth, design, seed=2)
    assert select(frame, "synthetic").d0 == 3  # the rows alone name the shots
    assert select(frame, "synthetic", d0=design.d0).d0 == 8


def test_select_errors_name_the_culprit():
    frame = simulate(draw_truth(Design(), np.random.default_rng(1)), Design(), seed=1)
    with pytest.raises(UserError, match="unknown task 'gsm8k'"):
        select(frame, "gsm8k")
    with pytest.raises(UserError, match="missing column 'mcc'"):
        select(frame, "synthetic", metric="mcc")
