"""Multi-start maximum likelihood for the emergence law (the point estimate, and NUTS's start).

Why multi-start and bounded: the hinge makes the likelihood piecewise-flat (an elbow can sit
anywhere between two checkpoints) and α trades off against the gap, so a single L-BFGS run often
stops in a poor basin, and without bounds a degenerate table (all at chance) sends α or A to
infinity. Bounds are wide enough never to bind on a table that identifies the law; a bound that
does bind is reported, so nobody mistakes it for an estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from emergence.laws.emergence_law import LawInputs, LawSpec, log_likelihood_np

#: Polishing restarts from the best start (each stops early when it no longer improves).
RESTARTS = 3


@dataclass(frozen=True)
class MLEResult:
    """Best of the starts: latent values, the negative log-likelihood and which bounds bind."""

    theta: dict[str, float]
    nll: float
    n_starts: int
    n_converged: int
    at_bound: tuple[str, ...]


def latent_bounds(spec: LawSpec, loss: np.ndarray, chance: float) -> dict[str, tuple[float, float]]:
    """Box for each latent: generous, but finite so that degenerate tables cannot run away."""
    lo, hi = float(np.min(loss)), float(np.max(loss))
    alpha_hi = 20.0 if spec.form == "log-power" else 5.0
    bounds = {
        "e_a": (lo - 3.0, hi + 3.0),
        "log_gap": (math.log(1e-4), math.log(10.0)),
        "log_alpha": (math.log(0.02), math.log(alpha_hi)),
        "log_A": (math.log(1e-3), math.log(1e3)),
        "B": (chance - 0.5, chance + 0.5),
        "delta": (-0.5, 0.5),
        "log_sigma": (math.log(1e-4), 0.0),
    }
    return {name: bounds[name] for name in spec.latents()}


def _starts(spec: LawSpec, x: LawInputs, chance: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Random starts spread over plausible values (not the whole box, which is mostly absurd)."""
    loss = np.asarray(x.loss)
    alpha_range = (math.log(0.3), math.log(3.0)) if spec.form == "log-power" else (math.log(0.05), 0.0)
    sigma0 = math.log(max(float(np.std(np.asarray(x.y))), 1e-3))
    draws = {
        "e_a": rng.uniform(loss.min() - 0.3, loss.max(), n),
        "log_gap": rng.uniform(math.log(0.02), math.log(2.0), n),
        "log_alpha": rng.uniform(*alpha_range, n),
        "log_A": rng.uniform(math.log(0.2), math.log(5.0), n),
        "B": np.full(n, chance),
        "delta": np.zeros(n),
        "log_sigma": np.full(n, sigma0),
    }
    return np.stack([draws[name] for name in spec.latents()], axis=1)


def fit_mle(
    x: LawInputs,
    spec: LawSpec,
    chance: float,
    n_starts: int = 16,
    seed: int = 0,
) -> MLEResult:
    """Minimize −log-likelihood from ``n_starts`` random starts (TNC, then restarts); keep the best.

    Uses the float64 numpy likelihood and its analytic gradient, far cheaper per call than a JAX
    dispatch on a small CPU (``x`` is converted to numpy here).
    """
    x = LawInputs(*(np.asarray(a, dtype=float) for a in x))
    names = spec.latents()
    bounds = latent_bounds(spec, np.asarray(x.loss), chance)
    box = [bounds[n] for n in names]

    def objective(vector: np.ndarray) -> tuple[float, np.ndarray]:
        value, grads = log_likelihood_np(dict(zip(names, vector, strict=True)), x, spec, grad=True)
        gradient = -np.array([grads[name] for name in names])
        if not math.isfinite(value) or not np.isfinite(gradient).all():
            return 1e30, np.zeros_like(vector)
        return -value, gradient

    rng = np.random.default_rng(seed)
    results = []
    for start in _starts(spec, x, chance, n_starts, rng):
        start = np.clip(start, [b[0] for b in box], [b[1] for b in box])
        results.append(
            minimize(objective, start, method="TNC", jac=True, bounds=box, options={"maxfun": 3000})
        )
    converged = sum(bool(r.success) for r in results)
    # restarts polish the best basin: TNC's line search often stops early on the hinge's kinks
    # (TNC rather than L-BFGS-B: scipy's L-BFGS-B goes through BLAS, which costs ms per call here)
    best = min(results, key=lambda r: r.fun)
    for _ in range(RESTARTS):
        again = minimize(objective, best.x, method="TNC", jac=True, bounds=box, options={"maxfun": 3000})
        if again.fun >= best.fun - 1e-9:
            break
        best = again
    vector = np.asarray(best.x, dtype=float)
    at_bound = tuple(
        name
        for name, value, (lo, hi) in zip(names, vector, box, strict=True)
        if min(value - lo, hi - value) < 1e-3 * (hi - lo)
    )
    return MLEResult(
        theta={name: float(v) for name, v in zip(names, vector, strict=True)},
        nll=float(best.fun),
        n_starts=n_starts,
        n_converged=converged,
        at_bound=at_bound,
    )
