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
from scipy import special

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
    mask: jnp.ndarray  # 1.0 on real rows, 0.0 on padding (see nuts.pad_inputs)


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


def law_inputs(data: LawData, geo: Geometry, xp=jnp) -> LawInputs:
    """Arrays for the model: each row's normalized budget scale (few-shot rows use D0).

    ``xp=np`` gives float64 numpy arrays (the MLE's fast path, no JAX dispatch per evaluation).
    """
    fewshot = data.fewshot
    g = np.where(fewshot, geo.g0, geo.g(np.where(fewshot, data.d0, data.budget)))
    dtype = jnp.float32 if xp is jnp else np.float64
    return LawInputs(
        loss=xp.asarray(data.loss, dtype),
        h=xp.asarray(g / geo.g_b, dtype),
        fewshot=xp.asarray(fewshot, dtype),
        y=xp.asarray(data.y, dtype),
        n_eval=xp.asarray(np.nan_to_num(data.n_eval), dtype),
        n_correct=xp.asarray(np.nan_to_num(data.n_correct), dtype),
        h_a=xp.asarray(geo.h_a, dtype),
        mask=xp.ones(data.loss.shape, dtype),
    )


def relu_s(x, sharpness: float, xp=jnp):
    """Smoothed ReLU, softplus(s·x)/s: a hinge with gradients everywhere for NUTS and L-BFGS."""
    return xp.logaddexp(0.0, sharpness * x) / sharpness


def elbow(h, h_a, e_a, gap, alpha):
    """E at normalized budget scale h (works on jnp and np arrays alike)."""
    return e_a + gap * (h**alpha - h_a**alpha) / (1.0 - h_a**alpha)


def mean_perf(theta: dict, x: LawInputs, spec: LawSpec, xp=jnp):
    """Expected metric per row for latent values ``theta`` (the law itself; jnp or np arrays)."""
    alpha = xp.exp(theta["log_alpha"])
    e = elbow(x.h, x.h_a, theta["e_a"], xp.exp(theta["log_gap"]), alpha)
    delta = theta["delta"] if spec.use_delta else 0.0
    return theta["B"] + delta * x.fewshot + xp.exp(theta["log_A"]) * relu_s(e - x.loss, spec.sharpness, xp)


def log_likelihood_np(theta: dict, x: LawInputs, spec: LawSpec, grad: bool = False):
    """Summed log-likelihood in float64 numpy, the same terms as the model's; optionally its gradient.

    Why a numpy twin with a hand-derived gradient: the MLE evaluates it thousands of times, and on a
    small loaded CPU each JAX dispatch costs milliseconds while this costs tens of microseconds.
    Tests check it against the NumPyro model and against finite differences.
    """
    mu = mean_perf(theta, x, spec, xp=np)
    if spec.likelihood == "normal":
        log_sigma = theta["log_sigma"]
        z = (x.y - mu) / np.exp(log_sigma)
        value = float(np.sum(x.mask * (-0.5 * z * z - log_sigma - 0.5 * math.log(2 * math.pi))))
        dmu = x.mask * z / np.exp(log_sigma)
    else:
        p = np.clip(mu, _PROB_EPS, 1.0 - _PROB_EPS)
        k, n = x.n_correct, x.n_eval
        log_choose = special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)
        value = float(np.sum(x.mask * (log_choose + special.xlogy(k, p) + special.xlog1py(n - k, -p))))
        inside = (mu > _PROB_EPS) & (mu < 1.0 - _PROB_EPS)
        dmu = x.mask * inside * (k / p - (n - k) / (1.0 - p))
    if not grad:
        return value
    alpha, gap, amp = np.exp(theta["log_alpha"]), np.exp(theta["log_gap"]), np.exp(theta["log_A"])
    ha, h = float(x.h_a), x.h
    ha_a, h_a = ha**alpha, h**alpha
    ratio = (h_a - ha_a) / (1.0 - ha_a)
    dratio = ((h_a * np.log(h) - ha_a * math.log(ha)) * (1.0 - ha_a) + (h_a - ha_a) * ha_a * math.log(ha)) / (
        1.0 - ha_a
    ) ** 2
    u = spec.sharpness * (theta["e_a"] + gap * ratio - x.loss)
    slope = amp * special.expit(u)  # d mu / d E
    grads = {
        "e_a": np.sum(dmu * slope),
        "log_gap": np.sum(dmu * slope * gap * ratio),
        "log_alpha": np.sum(dmu * slope * gap * dratio * alpha),
        "log_A": np.sum(dmu * amp * np.logaddexp(0.0, u) / spec.sharpness),
        "B": np.sum(dmu),
        "delta": np.sum(dmu * x.fewshot),
    }
    if spec.likelihood == "normal":
        grads["log_sigma"] = float(np.sum(x.mask * (z * z - 1.0)))
    return value, {name: float(grads[name]) for name in spec.latents()}


def emergence_law_model(x: LawInputs, spec: LawSpec, priors: Priors) -> None:
    """The NumPyro model: normal priors on unconstrained latents, then the law's likelihood."""
    theta = {name: numpyro.sample(name, dist.Normal(*getattr(priors, name))) for name in spec.latents()}
    mu = mean_perf(theta, x, spec)
    real = x.mask > 0  # padded rows (fixed shapes, so one compiled sampler serves many tables) drop out
    with numpyro.plate("rows", x.loss.shape[0]):
        if spec.likelihood == "normal":
            numpyro.sample("obs", dist.Normal(mu, jnp.exp(theta["log_sigma"])).mask(real), obs=x.y)
        else:
            probs = jnp.clip(mu, _PROB_EPS, 1.0 - _PROB_EPS)
            numpyro.sample(
                "obs", dist.Binomial(total_count=x.n_eval, probs=probs).mask(real), obs=x.n_correct
            )


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
