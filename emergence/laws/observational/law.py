"""The observational law: a floored sigmoid of a linear predictor (of capabilities, or of ln compute).

    y = (c − b)·σ(w·x + w₀) + b,   b ∈ [0, b_max] (the floor, e.g. guessing), c = 1 by default

The ceiling c can be freed (c ∈ [1 − 2·b_max, 1]) for tasks that saturate below 1. Least squares starts
from the paper's point (w₀ = 0, w = 0.03, b = 0): the problem is not convex, and the start picks the
optimum. NUTS samples the same law on predictors standardized by the training rows (one weak prior fits
any PC scale), with the floor's bound as a uniform prior and a learned noise; the share of held-out
models inside their predictive intervals (coverage) says whether the intervals can be trusted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import least_squares
from scipy.special import expit

from emergence.errors import UserError


@dataclass(frozen=True)
class SigmoidConfig:
    """The law's shape (the floor's bound, a free ceiling), which the NUTS fit shares, and the
    least-squares start."""

    floor_max: float = 0.2
    free_ceiling: bool = False
    w_start: float = 0.03
    max_nfev: int = 10000


@dataclass(frozen=True)
class SigmoidFit:
    """Fitted parameters of y = (ceiling − floor)·σ(w·x + intercept) + floor."""

    weights: np.ndarray
    intercept: float
    floor: float
    ceiling: float
    converged: bool

    def linear(self, x: np.ndarray) -> np.ndarray:
        """The linear predictor w·x + w₀ (the model's 'capability' axis)."""
        return np.asarray(x, dtype=float) @ self.weights + self.intercept

    def link(self, z: np.ndarray) -> np.ndarray:
        """The floored sigmoid applied to a linear predictor value."""
        return (self.ceiling - self.floor) * expit(np.asarray(z, dtype=float)) + self.floor

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.link(self.linear(x))

    def as_dict(self, names: list[str]) -> dict[str, object]:
        """The parameters, with the weights by predictor name."""
        return {**asdict(self), "weights": dict(zip(names, self.weights, strict=True))}


def fit_sigmoid(x: np.ndarray, y: np.ndarray, config: SigmoidConfig = SigmoidConfig()) -> SigmoidFit:
    """Bounded least squares (scipy trust-region reflective) from the paper's start point.

    Parameters are θ = (w₀, w₁…w_d, b[, c])."""
    x = np.asarray(x, dtype=float)
    x = x[:, None] if x.ndim == 1 else x
    y = np.asarray(y, dtype=float)
    n, d = x.shape
    if n < d + 2:
        raise UserError(f"only {n} training models for a sigmoid with {d} predictors; need at least {d + 2}")
    start = [0.0, *([config.w_start] * d), 0.0]
    lower, upper = [-np.inf] * (d + 1) + [0.0], [np.inf] * (d + 1) + [config.floor_max]
    if config.free_ceiling:
        start, lower, upper = [*start, 1.0], [*lower, 1.0 - 2.0 * config.floor_max], [*upper, 1.0]

    def ceiling(theta: np.ndarray) -> float:
        return theta[d + 2] if config.free_ceiling else 1.0

    def residuals(theta: np.ndarray) -> np.ndarray:
        return (ceiling(theta) - theta[d + 1]) * expit(x @ theta[1 : d + 1] + theta[0]) + theta[d + 1] - y

    result = least_squares(
        residuals, np.array(start), bounds=(lower, upper), method="trf", max_nfev=config.max_nfev
    )
    t, success = result.x, bool(result.success)
    return SigmoidFit(t[1 : d + 1].copy(), float(t[0]), float(t[d + 1]), float(ceiling(t)), success)


def mse(actual: np.ndarray, predicted: np.ndarray) -> float | None:
    """Mean squared error, None when there is nothing to score."""
    actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
    return float(np.mean((actual - predicted) ** 2)) if actual.size else None


def r2(actual: np.ndarray, predicted: np.ndarray) -> float | None:
    """Coefficient of determination, None when undefined (fewer than 2 points or constant target)."""
    actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
    total = np.sum((actual - actual.mean()) ** 2) if actual.size >= 2 else 0.0
    return float(1.0 - np.sum((actual - predicted) ** 2) / total) if total > 0 else None


@dataclass(frozen=True)
class BayesConfig:
    """NUTS settings and the predictive-interval level."""

    num_warmup: int = 500
    num_samples: int = 1000
    num_chains: int = 4
    seed: int = 0
    level: float = 0.9
    weight_scale: float = 5.0  # prior sd of weights on standardized predictors
    noise_scale: float = 0.1  # half-normal scale of the observation noise (target units)


@dataclass(frozen=True)
class BayesFit:
    """Posterior summaries, diagnostics and the predictive intervals for the rows asked about."""

    params: dict[str, float]  # posterior medians, predictors in their original units
    diagnostics: dict[str, float]
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    level: float

    def coverage(self, actual: np.ndarray, mask: np.ndarray) -> float | None:
        """Share of the masked rows whose actual value lies inside its predictive interval."""
        actual = np.asarray(actual, float)[mask]
        inside = (actual >= self.lower[mask]) & (actual <= self.upper[mask])
        return float(inside.mean()) if actual.size else None


def _model(x, y, config: BayesConfig, shape: SigmoidConfig):
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    intercept = numpyro.sample("intercept", dist.Normal(0.0, config.weight_scale))
    weights = numpyro.sample("weights", dist.Normal(jnp.zeros(x.shape[1]), config.weight_scale).to_event(1))
    floor = numpyro.sample("floor", dist.Uniform(0.0, shape.floor_max))
    ceiling = 1.0
    if shape.free_ceiling:
        ceiling = numpyro.sample("ceiling", dist.Uniform(1.0 - 2.0 * shape.floor_max, 1.0))
    noise = numpyro.sample("noise", dist.HalfNormal(config.noise_scale))
    mu = (ceiling - floor) * jnp.reciprocal(1.0 + jnp.exp(-(x @ weights + intercept))) + floor
    numpyro.sample("y", dist.Normal(mu, noise), obs=y)


def fit_bayes(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_all: np.ndarray,
    config: BayesConfig = BayesConfig(),
    shape: SigmoidConfig = SigmoidConfig(),
) -> BayesFit:
    """Run NUTS on the training rows of the law ``shape``; return predictive intervals for every row
    of ``x_all``."""
    import jax
    from numpyro.diagnostics import summary
    from numpyro.infer import MCMC, NUTS, Predictive

    x_train = np.asarray(x_train, float)
    center, scale = x_train.mean(axis=0), x_train.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    chain_method = "parallel" if jax.local_device_count() >= config.num_chains else "sequential"
    mcmc = MCMC(NUTS(_model), num_warmup=config.num_warmup, num_samples=config.num_samples,
                num_chains=config.num_chains, chain_method=chain_method, progress_bar=False)  # fmt: skip
    key_fit, key_pred = jax.random.split(jax.random.PRNGKey(config.seed))
    mcmc.run(key_fit, (x_train - center) / scale, np.asarray(y_train, float), config, shape)
    samples = mcmc.get_samples()
    stats = summary(mcmc.get_samples(group_by_chain=True))
    diagnostics = {
        "max_r_hat": float(max(np.nanmax(s["r_hat"]) for s in stats.values())),
        "min_ess": float(min(np.nanmin(s["n_eff"]) for s in stats.values())),
        "divergences": int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum()),
        "num_samples": int(config.num_samples * config.num_chains),
    }
    xs_all = (np.asarray(x_all, float) - center) / scale
    draws = np.asarray(Predictive(_model, posterior_samples=samples)(key_pred, xs_all, None, config, shape)["y"])
    w_raw = np.asarray(samples["weights"]) / scale  # back to the predictors' original units
    params = {f"w{i + 1}": float(np.median(w_raw[:, i])) for i in range(w_raw.shape[1])}
    params["intercept"] = float(np.median(np.asarray(samples["intercept"]) - w_raw @ center))
    params.update({k: float(np.median(samples[k])) for k in ("floor", "noise", "ceiling") if k in samples})
    tail = (1.0 - config.level) / 2.0
    return BayesFit(params, diagnostics, draws.mean(axis=0), np.quantile(draws, tail, axis=0),
                    np.quantile(draws, 1.0 - tail, axis=0), config.level)  # fmt: skip
