"""The emergence law as a plain NumPyro model (docs/design.md "The emergence law").

    Perf(M, D) = min(Y, B + A · relu_s(E(D) − L(M)))          finetuned rows
    Perf(M, 0) = min(Y, B + Δ + A · relu_s(E(D0) − L(M)))      few-shot rows
    E(D)       = k · g(D)^α + C,   g = log D  (log-power, default)  or  g = D  (power)

Y is the metric's maximum (1 for accuracy, exact match and MCC): a law that predicts an accuracy
above 1 describes no model, so the rise is capped (a smooth minimum). B is the chance level, fixed
when the task's chance is known (multiple choice, exact match, MCC) and sampled only otherwise.

Why this parameterization. The sampler works on the quantities a forecast is about and that the
data pin down: the few-shot emergence point ``e0 = E(D0)`` itself, and the ``shift`` of the elbow
from D0 to the largest finetuned budget, plus the curvature α; k and C are derived:

    r = g(D) / g(D_max),  E(r) = e0 + shift · (r^α − r0^α) / (1 − r0^α)
    k = shift / (g_max^α − g0^α),  C = e0 − k · g0^α.

* **e0 has physical support.** It lies above the task's loss floor and at most ``e0_margin`` nats
  below the strongest observed checkpoint: a forecast further out than that is an extrapolation the
  data cannot speak to, so the prior says so instead of leaving mass at negative losses. Inside that
  window the prior is uniform (``e0 = lo + (hi − lo) · sigmoid(u)``, ``u ~ Logistic(0, 1)``).
* **A zero shift is an ordinary value.** ``shift`` has a normal prior on the natural scale, so "fine-
  tuning does not move emergence" sits in the middle of the prior rather than at the mouth of a
  log-scale funnel; α then simply reverts to its prior.
* **The hinge is sharp.** relu_s(x) = softplus(s·x)/s with s = 200 per nat: its smoothing (≈0.005
  nats) is twenty times finer than the 0.1-nat success rule, yet NUTS and the MLE still see
  gradients between adjacent checkpoints.

The MLE maximizes the likelihood factor of the same model (:func:`log_likelihood`), so there is no
second transcription to keep in step.
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
_PROB_EPS = 1e-4
#: Sharpness of the smooth minimum that caps Perf at the metric's maximum (per metric unit).
_CAP_SHARPNESS = 200.0


class Priors(NamedTuple):
    """(location, scale) of each latent's prior: logistic for e0_pos, normal for the rest.

    Derived from the data's scale (loss range, chance level, metric maximum), never its outcome."""

    e0_pos: tuple[float, float]
    shift: tuple[float, float]
    log_alpha: tuple[float, float]
    log_A: tuple[float, float]
    B: tuple[float, float]
    delta: tuple[float, float]
    log_sigma: tuple[float, float]


#: Latent sites, in the order of the flat parameter vector used by the MLE.
LATENTS: tuple[str, ...] = Priors._fields


@dataclass(frozen=True)
class LawSpec:
    """Which variant of the law to fit, and the support of the few-shot emergence point."""

    form: str = "log-power"
    use_delta: bool = True
    likelihood: str = "normal"
    sharpness: float = 200.0  # relu_s = softplus(s·x)/s; 1/s = 0.005 nats of smoothing
    sample_chance: bool = False  # True: B is a latent (set by the fit when the chance level is unknown)
    loss_floor: float = 0.0  # E(D0) lies above the task's irreducible loss (nats)
    e0_margin: float = 0.75  # ... and at most this many nats below the strongest observed checkpoint

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise UserError(f"unknown form '{self.form}' (choose {' or '.join(FORMS)})")
        if self.likelihood not in LIKELIHOODS:
            raise UserError(f"unknown likelihood '{self.likelihood}' (choose {' or '.join(LIKELIHOODS)})")
        if not (math.isfinite(self.sharpness) and self.sharpness > 0):
            raise UserError(f"sharpness must be a positive number (got {self.sharpness})")
        if not (math.isfinite(self.e0_margin) and self.e0_margin > 0):
            raise UserError(f"e0_margin must be a positive number of nats (got {self.e0_margin})")
        if not (math.isfinite(self.loss_floor) and self.loss_floor >= 0):
            raise UserError(f"loss_floor must be a finite loss >= 0 (got {self.loss_floor})")

    def latents(self) -> tuple[str, ...]:
        """The sampled sites: B when chance is unknown, Δ with use_delta, σ with the normal likelihood."""
        sampled = {"B": self.sample_chance, "delta": self.use_delta, "log_sigma": self.likelihood == "normal"}
        return tuple(n for n in LATENTS if sampled.get(n, True))


class LawInputs(NamedTuple):
    """The arrays the model reads (numpy float64 from :func:`law_inputs`; jnp inside the sampler)."""

    loss: jnp.ndarray
    r: jnp.ndarray  # g(D)/g(D_max) per row; few-shot rows carry g(D0)/g(D_max)
    fewshot: jnp.ndarray  # 1.0 on few-shot rows
    y: jnp.ndarray
    n_eval: jnp.ndarray
    n_correct: jnp.ndarray
    r0: jnp.ndarray  # scalar: g(D0)/g(D_max)
    e0_lo: jnp.ndarray  # scalar: lower end of E(D0)'s support
    e0_hi: jnp.ndarray  # scalar: upper end of E(D0)'s support
    chance: jnp.ndarray  # scalar: B when it is not sampled
    y_max: jnp.ndarray  # scalar: the metric's maximum


@dataclass(frozen=True)
class Geometry:
    """The budget scale and E(D0)'s support: maps latents to the paper's (k, α, C)."""

    form: str
    g_a: float  # g(smallest finetuned budget)
    g_b: float  # g(largest finetuned budget)
    g0: float  # g(D0)
    e0_lo: float
    e0_hi: float

    def g(self, budget: np.ndarray | float) -> np.ndarray:
        budget = np.asarray(budget, dtype=float)
        return np.log(budget) if self.form == "log-power" else budget

    @property
    def r0(self) -> float:
        return self.g0 / self.g_b

    def r(self, budget: float) -> float:
        """Normalized scale of one budget (0 means the few-shot point D0)."""
        return self.r0 if budget == 0 else float(self.g(budget)) / self.g_b


def geometry(data: LawData, spec: LawSpec) -> Geometry:
    """Budget scale of a data slice (it needs two finetuned budgets to extrapolate E(D) at all) and
    where E(D0) may lie: above the loss floor, within e0_margin below the strongest checkpoint, and
    no higher than the weakest one (above it, every checkpoint would have emerged)."""
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
    if data.d0 >= budgets.max():
        raise UserError(f"{data.source}: D0 = {data.d0:g} must be below the largest finetuned budget")
    lo, hi = max(spec.loss_floor, float(np.min(data.loss)) - spec.e0_margin), float(np.max(data.loss))
    if lo >= hi:
        raise UserError(
            f"{data.source}: task '{data.task}': the loss floor {spec.loss_floor:g} is not below the weakest "
            f"checkpoint's loss {hi:.3g}; lower --loss-floor"
        )
    g = np.log if spec.form == "log-power" else float
    return Geometry(spec.form, float(g(budgets.min())), float(g(budgets.max())), float(g(data.d0)), lo, hi)


def metric_max(data: LawData) -> float:
    """The metric's maximum: 1 for known rates and correlations; otherwise a loose cap above the data."""
    from emergence.results_table import KNOWN_METRICS

    if data.metric in KNOWN_METRICS:
        return 1.0
    top = float(np.max(data.y))
    return top + max(float(np.ptp(data.y)), 1.0)


def default_priors(data: LawData, spec: LawSpec) -> Priors:
    """Weakly-informative priors on the scale of the data (losses in nats, metric in [B, Y])."""
    spread = float(np.ptp(data.loss)) if data.loss.size > 1 else 0.0
    alpha_mean = 0.0 if spec.form == "log-power" else math.log(0.3)
    headroom = max(metric_max(data) - data.chance, 1e-3)
    return Priors(
        e0_pos=(0.0, 1.0),  # logistic(0, 1) on the logit of E(D0)'s position: uniform over its support
        shift=(0.0, max(0.5, spread)),
        log_alpha=(alpha_mean, 0.75),
        log_A=(math.log(3.0 * headroom), 1.5),  # the rise from chance to the cap over ~1/3 nat
        B=(data.chance, 0.05),
        delta=(0.0, 0.05),
        log_sigma=(math.log(0.03), 1.0),
    )


def law_inputs(data: LawData, geo: Geometry) -> LawInputs:
    """Arrays for the model, in float64 (the MLE's precision; the sampler casts to float32): each
    row's normalized budget scale (few-shot rows use D0)."""
    fewshot = data.fewshot
    g = np.where(fewshot, geo.g0, geo.g(np.where(fewshot, data.d0, data.budget)))
    return LawInputs(
        loss=np.asarray(data.loss, float),
        r=g / geo.g_b,
        fewshot=fewshot.astype(float),
        y=np.asarray(data.y, float),
        n_eval=np.nan_to_num(data.n_eval),
        n_correct=np.nan_to_num(data.n_correct),
        r0=np.float64(geo.r0),
        e0_lo=np.float64(geo.e0_lo),
        e0_hi=np.float64(geo.e0_hi),
        chance=np.float64(data.chance),
        y_max=np.float64(metric_max(data)),
    )


def relu_s(x, sharpness: float, xp=jnp):
    """Smoothed ReLU, softplus(s·x)/s: a hinge with gradients everywhere for NUTS and the MLE."""
    return xp.logaddexp(0.0, sharpness * x) / sharpness


def e0_value(e0_pos, lo, hi, xp=jnp):
    """E(D0) from its unconstrained position: lo + (hi − lo) · sigmoid(e0_pos)."""
    return lo + (hi - lo) / (1.0 + xp.exp(-e0_pos))


def elbow(r, r0, e0, shift, alpha):
    """E at normalized budget scale r (works on jnp and np arrays alike).

    (r^α − r0^α) / (1 − r0^α) is computed with expm1: as α → 0 both differences vanish, and in
    float32 the plain form loses every digit (a chain that wanders to small α then sees no gradient
    and sticks), while the limit itself, log(r/r0) / log(1/r0), is a perfectly good curve.
    """
    xp = jnp if isinstance(r, jnp.ndarray) or isinstance(alpha, jnp.ndarray) else np
    a0 = xp.expm1(alpha * xp.log(r0))
    return e0 + shift * (xp.expm1(alpha * xp.log(r)) - a0) / (-a0)


def mean_perf(theta: dict, x: LawInputs, spec: LawSpec, xp=jnp):
    """Expected metric per row for latent values ``theta`` (the law itself; jnp or np arrays)."""
    e0 = e0_value(theta["e0_pos"], x.e0_lo, x.e0_hi, xp)
    e = elbow(x.r, x.r0, e0, theta["shift"], xp.exp(theta["log_alpha"]))
    base = theta["B"] if spec.sample_chance else x.chance
    delta = theta["delta"] if spec.use_delta else 0.0
    raw = base + delta * x.fewshot + xp.exp(theta["log_A"]) * relu_s(e - x.loss, spec.sharpness, xp)
    return x.y_max - relu_s(x.y_max - raw, _CAP_SHARPNESS, xp)


def log_likelihood(theta: dict, x: LawInputs, spec: LawSpec, mask=None):
    """Summed over rows, normal around Perf or binomial on (n_correct, n_eval): the model's
    likelihood factor and the MLE's objective. Rows where ``mask`` is False add nothing: the
    sampler pads tables to a few row counts so that one compiled program serves many tables."""
    mu = mean_perf(theta, x, spec)
    if spec.likelihood == "normal":
        rows = dist.Normal(mu, jnp.exp(theta["log_sigma"])).log_prob(x.y)
    else:
        probs = jnp.clip(mu, _PROB_EPS, 1.0 - _PROB_EPS)
        rows = dist.Binomial(total_count=x.n_eval, probs=probs).log_prob(x.n_correct)
    return jnp.sum(rows if mask is None else jnp.where(mask, rows, 0.0))


def _prior(name: str, priors: Priors):
    loc, scale = getattr(priors, name)
    return dist.Logistic(loc, scale) if name == "e0_pos" else dist.Normal(loc, scale)


def emergence_law_model(x: LawInputs, spec: LawSpec, priors: Priors, mask=None) -> None:
    """The NumPyro model: priors on unconstrained latents, then the law's likelihood (over the
    rows where ``mask`` is True; all rows without one)."""
    theta = {name: numpyro.sample(name, _prior(name, priors)) for name in spec.latents()}
    numpyro.factor("likelihood", log_likelihood(theta, x, spec, mask))


def prior_draws(
    priors: Priors, spec: LawSpec, n: int, seed: int, spread: float = 1.0
) -> dict[str, np.ndarray]:
    """``n`` independent draws of every latent from its prior (``spread`` < 1 narrows them toward
    the centre): dispersed starting points for chains and for the MLE's multi-start."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in spec.latents():
        loc, scale = getattr(priors, name)
        noise = rng.logistic(0.0, 1.0, n) if name == "e0_pos" else rng.normal(0.0, 1.0, n)
        out[name] = loc + spread * scale * noise
    return out


def derived(theta: dict, geo: Geometry) -> dict[str, np.ndarray]:
    """The paper's parameters, E(D_min) and E(D0) from latent values (arrays of draws or scalars)."""
    e0 = np.asarray(e0_value(np.asarray(theta["e0_pos"], float), geo.e0_lo, geo.e0_hi, np), dtype=float)
    shift = np.asarray(theta["shift"], dtype=float)
    alpha = np.exp(np.asarray(theta["log_alpha"], dtype=float))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        k = shift / (geo.g_b**alpha - geo.g0**alpha)
        c = e0 - k * geo.g0**alpha
        e_a = elbow(geo.g_a / geo.g_b, geo.r0, e0, shift, alpha)
    out = {
        "A": np.exp(np.asarray(theta["log_A"], dtype=float)),
        "k": k,
        "alpha": alpha,
        "C": c,
        "e_a": e_a,
        "shift": shift,
        "e0": e0,
    }
    if "B" in theta:
        out["B"] = np.asarray(theta["B"], dtype=float)
    if "delta" in theta:
        out["delta"] = np.asarray(theta["delta"], dtype=float)
    if "log_sigma" in theta:
        out["sigma"] = np.exp(np.asarray(theta["log_sigma"], dtype=float))
    return out


def elbow_at(theta: dict, geo: Geometry, budget: float) -> np.ndarray:
    """E(D) for one budget (D = 0 means the few-shot point D0)."""
    p = derived(theta, geo)
    return elbow(geo.r(budget), geo.r0, p["e0"], p["shift"], p["alpha"])


def mean_perf_at(theta: dict, geo: Geometry, spec: LawSpec, chance: float, y_max: float, budget: float, loss):
    """Perf at pretraining loss(es) ``loss`` and one budget, for draws or a point (plots, forecasts):
    :func:`mean_perf` itself, on numpy, with draws along a leading axis."""
    point = LawInputs(
        loss=np.asarray(loss, float),
        r=geo.r(budget),
        fewshot=float(budget == 0),
        y=None,
        n_eval=None,
        n_correct=None,
        r0=geo.r0,
        e0_lo=geo.e0_lo,
        e0_hi=geo.e0_hi,
        chance=chance,
        y_max=y_max,
    )
    return mean_perf({k: np.asarray(v, float)[..., None] for k, v in theta.items()}, point, spec, np)
