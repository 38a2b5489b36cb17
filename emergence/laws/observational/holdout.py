"""Train/test splits that mimic forecasting: train on small models, test on the ones that came later.

Two rules (docs/design.md): a compute cutoff (models with FLOPs ≤ cutoff train; unknown FLOPs cannot be
placed below the cutoff, so they go to test), and for closed models without FLOPs, holding out the top
fraction of models by the target itself.
"""

from __future__ import annotations

import math

import numpy as np

from emergence.errors import UserError

#: Llama-2-7B's training compute: the paper's default cutoff.
DEFAULT_CUTOFF_FLOPS = 84e21


def split_by_cutoff(flops: np.ndarray, cutoff: float) -> np.ndarray:
    """Boolean train mask: FLOPs known and ≤ cutoff (with a relative tolerance for unit rounding)."""
    if not cutoff > 0:
        raise UserError(f"--cutoff must be positive FLOPs, got {cutoff}")
    flops = np.asarray(flops, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(flops) & (flops <= cutoff * (1 + 1e-9))


def split_top_fraction(target: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean train mask: all but the top ``floor(fraction·n)`` models by target (at least one)."""
    if not 0 < fraction < 1:
        raise UserError(f"--holdout-top must be in (0, 1), got {fraction}")
    target = np.asarray(target, dtype=float)
    n_test = max(1, math.floor(fraction * target.size + 1e-9))
    order = np.argsort(-target, kind="stable")
    train = np.ones(target.size, dtype=bool)
    train[order[:n_test]] = False
    return train
