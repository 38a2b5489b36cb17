"""Loss ↔ compute: L(C) = E∞ + a·C^(−b) over the ladder, and the E(D0) posterior pushed through it.

Why: a researcher asks "at what compute does this emerge?", but the law answers in pretraining
loss. The ladder's own (compute, loss) pairs give the map; C is the table's `flops` where known,
else 6·params·tokens. C is scaled by the ladder's geometric mean so the fit is well conditioned.
An E(D0) draw at or below E∞ has no finite compute under the fit (it never emerges by scaling
compute alone); such draws count as +∞, which is what the quantiles then show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from emergence.errors import UserError
from emergence.laws.predict import p_emerged, quantiles
from emergence.laws.table import LawData

#: Tokens per parameter of a compute-optimal model (Hoffmann et al. 2022), for "params at emergence".
CHINCHILLA_TOKENS_PER_PARAM = 20.0


@dataclass(frozen=True)
class ComputeLaw:
    """A fitted L(C) = E∞ + a·(C/c_ref)^(−b)."""

    e_inf: float
    a: float
    b: float
    c_ref: float
    source: str  # "flops" or "6*params*tokens"
    n_points: int
    rmse: float

    def loss(self, compute: np.ndarray | float) -> np.ndarray:
        compute = np.asarray(compute, dtype=float)
        return self.e_inf + self.a * (compute / self.c_ref) ** (-self.b)

    def compute_at(self, loss: np.ndarray | float) -> np.ndarray:
        """C with L(C) = loss; +∞ where loss ≤ E∞ (unreachable under the fit)."""
        loss = np.asarray(loss, dtype=float)
        excess = loss - self.e_inf
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            compute = self.c_ref * (excess / self.a) ** (-1.0 / self.b)
        return np.where(excess > 0, compute, np.inf)


def fit_compute_law(compute: np.ndarray, loss: np.ndarray, source: str = "flops") -> ComputeLaw:
    """Bounded least squares of L(C), multi-start in b; needs ≥ 3 distinct compute values."""
    compute, loss = np.asarray(compute, float), np.asarray(loss, float)
    if np.unique(compute).size < 3:
        raise UserError(f"need at least 3 checkpoints with known {source} to fit loss vs compute")
    c_ref = float(np.exp(np.mean(np.log(compute))))
    x = np.log(compute / c_ref)
    top = float(loss.min()) - 1e-3

    def residual(theta: np.ndarray) -> np.ndarray:
        e_inf, log_a, b = theta
        return e_inf + np.exp(log_a - b * x) - loss

    best = None
    for b0 in (0.05, 0.15, 0.3, 0.6):
        e0 = max(0.0, 0.5 * top)
        start = np.array([e0, math.log(max(float(loss.mean()) - e0, 1e-3)), b0])
        result = least_squares(residual, start, bounds=([0.0, -20.0, 1e-3], [top, 20.0, 3.0]))
        if best is None or result.cost < best.cost:
            best = result
    e_inf, log_a, b = best.x
    rmse = float(np.sqrt(np.mean(residual(best.x) ** 2)))
    return ComputeLaw(float(e_inf), float(math.exp(log_a)), float(b), c_ref, source, int(loss.size), rmse)


def fit_ladder(data: LawData) -> ComputeLaw:
    """L(C) over the checkpoints of a results slice: one point per checkpoint, its mean loss at its
    compute (FLOPs where more checkpoints know them than 6·params·tokens)."""
    six_nt = 6.0 * data.params * data.tokens
    frame = pd.DataFrame(dict(checkpoint=data.checkpoint, loss=data.loss, flops=data.flops, six_nt=six_nt))
    ladder = frame.groupby("checkpoint", sort=False).agg({"loss": "mean", "flops": "mean", "six_nt": "mean"})
    use_flops = ladder["flops"].notna().sum() >= ladder["six_nt"].notna().sum()
    compute = ladder["flops"] if use_flops else ladder["six_nt"]
    keep = np.isfinite(compute) & (compute > 0)
    source = "flops" if use_flops else "6*params*tokens"
    return fit_compute_law(compute[keep].to_numpy(), ladder["loss"][keep].to_numpy(), source)


def emergence_compute(e0_draws: np.ndarray, law: ComputeLaw) -> dict[str, dict[str, float]]:
    """Distribution of the compute (and compute-optimal parameter count) at which E(D0) is reached."""
    compute = law.compute_at(e0_draws)
    params = np.sqrt(compute / (6.0 * CHINCHILLA_TOKENS_PER_PARAM))
    return {
        "flops": quantiles(compute, keep_inf=True),
        "params_compute_optimal": quantiles(params, keep_inf=True),
        "p_unreachable": float(np.mean(~np.isfinite(compute))),
    }


def forecast(
    e0_draws: np.ndarray,
    law: ComputeLaw | None,
    flops: float | None = None,
    params: float | None = None,
    tokens: float | None = None,
    loss: float | None = None,
) -> dict:
    """P(emerged) for one model, given by its FLOPs, params+tokens, or its pretraining loss."""
    given = [flops is not None, params is not None or tokens is not None, loss is not None]
    if sum(given) != 1:
        raise UserError("give exactly one of --flops, --params with --tokens, or --loss")
    if (params is None) != (tokens is None):
        raise UserError("--params and --tokens go together (C = 6·params·tokens)")
    draws = np.asarray(e0_draws, dtype=float).reshape(-1)
    draws = draws[np.isfinite(draws)]
    out: dict = {}
    if loss is None:
        if law is None:
            raise UserError(
                "this fit has no loss-vs-compute law (the ladder lacks flops or params/tokens); use --loss"
            )
        compute = float(flops) if flops is not None else 6.0 * float(params) * float(tokens)
        if not compute > 0:
            raise UserError(f"compute must be positive (got {compute:g})")
        loss = float(law.loss(compute))
        out["flops"] = compute
    out["loss"] = float(loss)
    out["p_emerged"] = float(p_emerged(draws, loss)) if draws.size else math.nan
    if law is not None:
        out["emergence"] = emergence_compute(draws, law)
    return out
