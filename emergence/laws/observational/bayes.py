"""The Bayesian observational law: the same floored sigmoid in NumPyro, sampled with NUTS.

Least squares gives one curve; a forecast for a model far beyond the training range needs an interval.
Here the predictors are standardized by the training rows (so one weakly-informative prior fits any PC
scale), the floor keeps its [0, b_max] bound as a uniform prior, and the noise is learned. Held-out
models get posterior-predictive intervals (noise included), and the share of held-out actuals inside
their interval (coverage) says whether those intervals can be trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BayesConfig:
    """NUTS settings and the predictive-interval level."""

    num_warmup: int = 500
    num_samples: int = 1000
    num_chains: int = 4
    seed: int = 0
    level: float = 0.9
    floor_max: float = 0.2
    free_ceiling: bool = False
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


def _model(x, y, config: BayesConfig):
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    intercept = numpyro.sample("intercept", dist.Normal(0.0, config.weight_scale))
    weights = numpyro.sample("weights", dist.Normal(jnp.zeros(x.shape[1]), config.weight_scale).to_event(1))
    floor = numpyro.sample("floor", dist.Uniform(0.0, config.floor_max))
    ceiling = 1.0
    if config.free_ceiling:
        ceiling = numpyro.sample("ceiling", dist.Uniform(1.0 - 2.0 * config.floor_max, 1.0))
    noise = numpyro.sample("noise", dist.HalfNormal(config.noise_scale))
    mu = (ceiling - floor) * jnp.reciprocal(1.0 + jnp.exp(-(x @ weights + intercept))) + floor
    numpyro.sample("y", dist.Normal(mu, noise), obs=y)


def fit_bayes(
    x_train: np.ndarray, y_train: np.ndarray, x_all: np.ndarray, config: BayesConfig = BayesConfig()
) -> BayesFit:
    """Run NUTS on the training rows; return predictive intervals for every row of ``x_all``."""
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
    mcmc.run(key_fit, (x_train - center) / scale, np.asarray(y_train, float), config)
    samples = mcmc.get_samples()
    stats = summary(mcmc.get_samples(group_by_chain=True))
    diagnostics = {
        "max_r_hat": float(max(np.nanmax(s["r_hat"]) for s in stats.values())),
        "min_ess": float(min(np.nanmin(s["n_eff"]) for s in stats.values())),
        "divergences": int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum()),
        "num_samples": int(config.num_samples * config.num_chains),
    }
    xs_all = (np.asarray(x_all, float) - center) / scale
    draws = np.asarray(Predictive(_model, posterior_samples=samples)(key_pred, xs_all, None, config)["y"])
    w_raw = np.asarray(samples["weights"]) / scale  # back to the predictors' original units
    params = {f"w{i + 1}": float(np.median(w_raw[:, i])) for i in range(w_raw.shape[1])}
    params["intercept"] = float(np.median(np.asarray(samples["intercept"]) - w_raw @ center))
    params.update({k: float(np.median(samples[k])) for k in ("floor", "noise", "ceiling") if k in samples})
    tail = (1.0 - config.level) / 2.0
    return BayesFit(params, diagnostics, draws.mean(axis=0), np.quantile(draws, tail, axis=0),
                    np.quantile(draws, 1.0 - tail, axis=0), config.level)  # fmt: skip
