"""The observational target model: a floored sigmoid of a linear predictor, by bounded least squares.

    y = (c − b)·σ(w·x + w₀) + b,   b ∈ [0, b_max] (the floor, e.g. guessing), c = 1 by default

The floor b absorbs a task's chance level; the ceiling c can be freed (c ∈ [1 − 2·b_max, 1]) for tasks
that saturate below 1. The start point is the paper's (w₀ = 0, w = 0.03, b = 0) because the problem is
not convex and the start decides which local optimum plain least squares finds. The same model on
ln FLOPs or ln params gives the baselines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares
from scipy.special import expit

from emergence.errors import UserError


@dataclass(frozen=True)
class SigmoidConfig:
    """Bounds and start of the fit."""

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
        return {
            "weights": {n: float(w) for n, w in zip(names, self.weights, strict=True)},
            "intercept": float(self.intercept),
            "floor": float(self.floor),
            "ceiling": float(self.ceiling),
            "converged": bool(self.converged),
        }


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
    t = result.x
    return SigmoidFit(np.array(t[1 : d + 1]), float(t[0]), float(t[d + 1]), float(ceiling(t)), bool(result.success))


def mse(actual: np.ndarray, predicted: np.ndarray) -> float | None:
    """Mean squared error, None when there is nothing to score."""
    actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
    return float(np.mean((actual - predicted) ** 2)) if actual.size else None


def r2(actual: np.ndarray, predicted: np.ndarray) -> float | None:
    """Coefficient of determination, None when undefined (fewer than 2 points or constant target)."""
    actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
    if actual.size < 2:
        return None
    total = np.sum((actual - actual.mean()) ** 2)
    return float(1.0 - np.sum((actual - predicted) ** 2) / total) if total > 0 else None
