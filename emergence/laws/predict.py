"""What a fit predicts: the few-shot emergence point E(D0), P(emerged) at a loss, and the ground truth.

The ground truth for backtests is not a law parameter but an observation: the elbow of a plain
(hard) ReLU fitted to the *full* few-shot curve, post-emergence checkpoints included — the paper's
definition. A prediction succeeds when it lands within 0.1 nats of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.optimize import minimize_scalar

from emergence.laws.table import LawData

#: The paper's success rule: |E(D0) − truth| ≤ 0.1 nats.
SUCCESS_NATS = 0.1


def quantiles(values: np.ndarray, keep_inf: bool = False) -> dict[str, float]:
    """5/50/95% of a set of draws; NaNs (e.g. from a diverged draw) are ignored. With ``keep_inf``,
    infinite draws count and nothing is interpolated, so +∞ (unreachable) stays +∞ instead of NaN."""
    values = np.asarray(values, dtype=float).reshape(-1)
    values = values[~np.isnan(values) if keep_inf else np.isfinite(values)]
    if values.size == 0:
        return {"median": float("nan"), "q05": float("nan"), "q95": float("nan")}
    q05, q50, q95 = np.quantile(values, [0.05, 0.5, 0.95], method="inverted_cdf" if keep_inf else "linear")
    return {"median": float(q50), "q05": float(q05), "q95": float(q95)}


def p_emerged(e0_draws: np.ndarray, loss: float | np.ndarray) -> np.ndarray:
    """P(a model with this pretraining loss is past the few-shot elbow) = P(E(D0) > loss)."""
    draws = np.asarray(e0_draws, dtype=float).reshape(-1)
    draws = draws[np.isfinite(draws)]
    loss = np.asarray(loss, dtype=float)
    return (draws[None, :] > loss.reshape(-1, 1)).mean(axis=1).reshape(loss.shape)


def success(prediction: float, truth: float, tolerance: float = SUCCESS_NATS) -> bool:
    """The 0.1-nat rule (with float slack, so 3.0 vs 2.9 counts as exactly 0.1)."""
    return bool(abs(prediction - truth) <= tolerance + 1e-9)


@dataclass(frozen=True)
class TruthElbow:
    """A hard-ReLU fit y = b + a·relu(e − L) to a few-shot curve."""

    elbow: float
    slope: float
    base: float
    emerged: bool  # the rise is significant (F-test against a flat line, p < 0.01) with a > 0
    n_past: int  # checkpoints (rows) with loss below the elbow
    p_value: float


def _profile_sse(loss: np.ndarray, y: np.ndarray, elbows: np.ndarray) -> tuple[np.ndarray, ...]:
    """Least squares in (b, a ≥ 0) for each candidate elbow (vectorized): returns (sse, a, b)."""
    z = np.maximum(np.atleast_1d(elbows)[:, None] - loss[None, :], 0.0)
    z_mean, y_mean = z.mean(axis=1, keepdims=True), y.mean()
    z_var = ((z - z_mean) ** 2).sum(axis=1)
    cov = ((z - z_mean) * (y - y_mean)[None, :]).sum(axis=1)
    a = np.where(z_var > 0, cov / np.where(z_var > 0, z_var, 1.0), 0.0)
    a = np.maximum(a, 0.0)  # a falling curve is no emergence: fall back to the flat line
    b = y_mean - a * z_mean[:, 0]
    sse = ((y[None, :] - b[:, None] - a[:, None] * z) ** 2).sum(axis=1)
    return sse, a, b


def truth_elbow(loss: np.ndarray, y: np.ndarray, alpha: float = 0.01) -> TruthElbow:
    """Elbow of the full few-shot curve by profiled least squares (grid, then a bounded refine)."""
    loss, y = np.asarray(loss, float), np.asarray(y, float)
    keep = np.isfinite(loss) & np.isfinite(y)
    loss, y = loss[keep], y[keep]
    if loss.size < 4 or np.ptp(loss) <= 0:
        return TruthElbow(float("nan"), 0.0, float(np.mean(y)) if y.size else float("nan"), False, 0, 1.0)
    lo, hi = float(loss.min()), float(loss.max())
    grid = np.linspace(lo, hi, 400)
    sse = _profile_sse(loss, y, grid)[0]
    i = int(np.argmin(sse))
    bracket = (grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)])
    refined = minimize_scalar(
        lambda e: float(_profile_sse(loss, y, e)[0][0]), bounds=bracket, method="bounded"
    )
    elbow = float(refined.x) if refined.fun <= sse[i] else float(grid[i])
    sse1, a, b = (float(v[0]) for v in _profile_sse(loss, y, elbow))
    sse0 = float(((y - y.mean()) ** 2).sum())
    dof = loss.size - 3
    if dof > 0 and sse1 > 0:
        f_stat = ((sse0 - sse1) / 2.0) / (sse1 / dof)
        p_value = float(stats.f.sf(f_stat, 2, dof))
    else:
        p_value = 0.0 if sse0 > sse1 else 1.0
    n_past = int((loss < elbow).sum())
    return TruthElbow(elbow, a, b, bool(a > 0 and p_value < alpha and n_past > 0), n_past, p_value)


def fewshot_truth(data: LawData) -> TruthElbow:
    """The ground truth of a slice: the elbow of its full few-shot (budget 0) curve."""
    fs = data.fewshot
    return truth_elbow(data.loss[fs], data.y[fs])
