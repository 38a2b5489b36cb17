"""The emergence law as a plain NumPyro model (DESIGN.md "The emergence law").

    Perf(M, D) = B + A · relu_s(E(D) − L(M))          finetuned rows
    Perf(M, 0) = B + Δ + A · relu_s(E(D0) − L(M))      few-shot rows
    E(D)       = k · g(D)^α + C,   g = log D  (log-power, default)  or  g = D  (power)

Why this parameterization: k, α and C are strongly correlated in the posterior (many curves pass
through the same few elbows), which makes NUTS slow and MLE fragile. So the sampler works on
quantities the data pin down directly — the elbow at the smallest finetuned budget ``e_a`` and the
rise ``gap`` to the elbow at the largest — plus the curvature α; k and C are derived:

    h = g(D) / g(D_max),  E(h) = e_a + gap · (h^α − h_a^α) / (1 − h_a^α)
    k = gap / (g_b^α − g_a^α),  C = e_a − k · g_a^α.

``gap > 0`` is exactly ``k > 0``. Every latent is unconstrained (positive ones live on the log
scale with normal, i.e. log-normal, priors), so chains can be started from the MLE without
transforms. Priors are weakly informative: B centred on the task's chance level, A, k, α > 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from emergence.errors import UserError
from emergence.laws.table import LawData

FORMS: tuple[str, ...] = ("log-power", "power")
LIKELIHOODS: tuple[str, ...] = ("normal", "binomial")
#: Latent sites, in the order of the flat parameter vector used by the MLE.
LATENTS: tuple[str, ...] = ("e_a", "log_gap", "log_alpha", "log_A", "B", "delta", "log_sigma")
_PROB_EPS = 1e-4


@dataclass(frozen=True)
class LawSpec:
    """Which variant of the law to fit."""

    form: str = "log-power"
    use_delta: bool = True
    likelihood: str = "normal"
    sharpness: float = 50.0  # relu_s = softplus(s·x)/s; 1/s ≈ 0.02 nats of smoothing

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise UserError(f"unknown --form '{self.form}' (choose {' or '.join(FORMS)})")
        if self.likelihood not in LIKELIHOODS:
            raise UserError(f"unknown --likelihood '{self.likelihood}' (choose {' or '.join(LIKELIHOODS)})")

    def latents(self) -> tuple[str, ...]:
        """The sampled sites: Δ only with use_delta, σ only for the normal likelihood."""
        names = [n for n in LATENTS if n != "delta" or self.use_delta]
        return tuple(n for n in names if n != "log_sigma" or self.likelihood == "normal")


class Priors(NamedTuple):
    """(mean, sd) of each latent's normal prior; derived from the data's scale, not its outcome."""

    e_a: tuple[float, float]
    log_gap: tuple[float, float]
    log_alpha: tuple[float, float]
    log_A: tuple[float, float]
    B: tuple[float, float]
    delta: tuple[float, float]
    log_sigma: tuple[float, float]


class LawInputs(NamedTuple):
    """The arrays the model reads (a pytree, so one compiled sampler serves any data of a shape)."""

    loss: jnp.ndarray
    h: jnp.ndarray  # g(D)/g(D_max) per row; few-shot rows carry g(D0)/g(D_max)
    fewshot: jnp.ndarray  # 1.0 on few-shot rows
    y: jnp.ndarray
    n_eval: jnp.ndarray
    n_correct: jnp.ndarray
    h_a: jnp.ndarray  # scalar: g(D_min)/g(D_max)


@dataclass(frozen=True)
class Geometry:
    """The budget scale: maps between (e_a, gap, α) and the paper's (k, α, C)."""

    form: str
    g_a: float  # g(smallest finetuned budget)
    g_b: float  # g(largest finetuned budget)
    g0: float  # g(D0)

    def g(self, budget: np.ndarray | float) -> np.ndarray:
        budget = np.asarray(budget, dtype=float)
        return np.log(budget) if self.form == "log-power" else budget

    @property
    def h_a(self) -> float:
        return self.g_a / self.g_b

    @property
    def h0(self) -> float:
        return self.g0 / self.g_b


def geometry(data: LawData, spec: LawSpec) -> Geometry:
    """Budget scale of a data slice; needs two finetuned budgets to extrapolate E(D) at all."""
    budgets = data.finetuned_budgets
    if budgets.size < 2:
        have = ", ".join(f"{b:g}" for b in budgets) or "none"
        raise UserError(
            f"{data.source}: task '{data.task}' needs at least 2 finetuned budgets to extrapolate E(D) to D0 "
            f"(finetuned budgets: {have})"
        )
    if spec.form == "log-power" and budgets.min() < 2:
        raise UserError(
            f"{data.source}: log-power form needs finetuned budgets >= 2 (found {budgets.min():g})"
        )
    geo = Geometry(spec.form, 0.0, 0.0, 0.0)
    g_a, g_b, g0 = (float(geo.g(v)) for v in (budgets.min(), budgets.max(), data.d0))
    return Geometry(spec.form, g_a, g_b, g0)


def default_priors(data: LawData, spec: LawSpec) -> Priors:
    """Weakly-informative priors on the scale of the data (losses in nats, accuracies in [0, 1])."""
    center = float(np.median(data.loss))
    spread = float(np.ptp(data.loss)) if data.loss.size > 1 else 0.0
    alpha_mean = 0.0 if spec.form == "log-power" else math.log(0.3)
    return Priors(
        e_a=(center, max(1.0, spread)),
        log_gap=(math.log(0.3), 1.0),
        log_alpha=(alpha_mean, 0.75),
        log_A=(0.0, 1.0),
        B=(data.chance, 0.05),
        delta=(0.0, 0.05),
        log_sigma=(math.log(0.03), 1.0),
    )


def law_inputs(data: LawData, geo: Geometry) -> LawInputs:
    """Arrays for the model: each row's normalized budget scale (few-shot rows use D0)."""
    fewshot = data.fewshot
    g = np.where(fewshot, geo.g0, geo.g(np.where(fewshot, data.d0, data.budget)))
    return LawInputs(
        loss=jnp.asarray(data.loss, jnp.float32),
        h=jnp.asarray(g / geo.g_b, jnp.float32),
        fewshot=jnp.asarray(fewshot, jnp.float32),
        y=jnp.asarray(data.y, jnp.float32),
        n_eval=jnp.asarray(np.nan_to_num(data.n_eval), jnp.float32),
        n_correct=jnp.asarray(np.nan_to_num(data.n_correct), jnp.float32),
        h_a=jnp.asarray(geo.h_a, jnp.float32),
    )


def relu_s(x, sharpness: float):
    """Smoothed ReLU, softplus(s·x)/s: a hinge with gradients everywhere for NUTS and L-BFGS."""
    return jnp.logaddexp(0.0, sharpness * x) / sharpness


def elbow(h, h_a, e_a, gap, alpha):
    """E at normalized budget scale h (works on jnp and np arrays alike)."""
    return e_a + gap * (h**alpha - h_a**alpha) / (1.0 - h_a**alpha)


def mean_perf(theta: dict, x: LawInputs, spec: LawSpec):
    """Expected metric per row for latent values ``theta`` (the law itself)."""
    alpha = jnp.exp(theta["log_alpha"])
    e = elbow(x.h, x.h_a, theta["e_a"], jnp.exp(theta["log_gap"]), alpha)
    delta = theta["delta"] if spec.use_delta else 0.0
    return theta["B"] + delta * x.fewshot + jnp.exp(theta["log_A"]) * relu_s(e - x.loss, spec.sharpness)


def log_likelihood(theta: dict, x: LawInputs, spec: LawSpec):
    """Summed log-likelihood of the observed metric (used by the MLE; the model uses the same terms)."""
    mu = mean_perf(theta, x, spec)
    if spec.likelihood == "normal":
        return jnp.sum(dist.Normal(mu, jnp.exp(theta["log_sigma"])).log_prob(x.y))
    probs = jnp.clip(mu, _PROB_EPS, 1.0 - _PROB_EPS)
    return jnp.sum(dist.Binomial(total_count=x.n_eval, probs=probs).log_prob(x.n_correct))


def emergence_law_model(x: LawInputs, spec: LawSpec, priors: Priors) -> None:
    """The NumPyro model: normal priors on unconstrained latents, then the law's likelihood."""
    theta = {name: numpyro.sample(name, dist.Normal(*getattr(priors, name))) for name in spec.latents()}
    mu = mean_perf(theta, x, spec)
    with numpyro.plate("rows", x.loss.shape[0]):
        if spec.likelihood == "normal":
            numpyro.sample("obs", dist.Normal(mu, jnp.exp(theta["log_sigma"])), obs=x.y)
        else:
            probs = jnp.clip(mu, _PROB_EPS, 1.0 - _PROB_EPS)
            numpyro.sample("obs", dist.Binomial(total_count=x.n_eval, probs=probs), obs=x.n_correct)


def derived(theta: dict, geo: Geometry) -> dict[str, np.ndarray]:
    """The paper's parameters and E(D0) from latent values (arrays of draws or scalars)."""
    e_a = np.asarray(theta["e_a"], dtype=float)
    gap = np.exp(np.asarray(theta["log_gap"], dtype=float))
    alpha = np.exp(np.asarray(theta["log_alpha"], dtype=float))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        k = gap / (geo.g_b**alpha - geo.g_a**alpha)
        c = e_a - k * geo.g_a**alpha
    out = {
        "A": np.exp(np.asarray(theta["log_A"], dtype=float)),
        "B": np.asarray(theta["B"], dtype=float),
        "k": k,
        "alpha": alpha,
        "C": c,
        "e_a": e_a,
        "gap": gap,
        "e0": elbow(geo.h0, geo.h_a, e_a, gap, alpha),
    }
    if "delta" in theta:
        out["delta"] = np.asarray(theta["delta"], dtype=float)
    if "log_sigma" in theta:
        out["sigma"] = np.exp(np.asarray(theta["log_sigma"], dtype=float))
    return out


def elbow_at(theta: dict, geo: Geometry, budget: float) -> np.ndarray:
    """E(D) for one budget (D = 0 means the few-shot point D0)."""
    h = geo.h0 if budget == 0 else float(geo.g(budget)) / geo.g_b
    alpha = np.exp(np.asarray(theta["log_alpha"], dtype=float))
    return elbow(
        h, geo.h_a, np.asarray(theta["e_a"], float), np.exp(np.asarray(theta["log_gap"], float)), alpha
    )
