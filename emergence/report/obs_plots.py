"""Plots for an observational scaling-law fit (matplotlib, Agg backend: no display needed).

Two views: predicted vs actual (does the law fit, and does it extrapolate to the held-out models?), and
the target against reference-family-equivalent FLOPs with the fitted sigmoid (the forecast itself, on a
compute axis people can read).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from emergence.fileio import atomic_path

_COLORS = {"train": "tab:blue", "test": "tab:red"}


def _save(fig, path: Path) -> Path:
    """Save atomically: render to a temp file in the same directory, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=path.suffix) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
    return path


def plot_predicted_vs_actual(models: pd.DataFrame, target: str, path: str | Path) -> Path:
    """Scatter of predicted against actual target, train and test coloured, with the y = x line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    for split, group in models.groupby("split"):
        if "bayes_lower" in group:
            err = np.vstack([group.predicted - group.bayes_lower, group.bayes_upper - group.predicted])
            ax.errorbar(group.actual, group.predicted, yerr=np.clip(err, 0, None), fmt="none",
                        ecolor=_COLORS.get(split, "gray"), alpha=0.3)  # fmt: skip
        ax.scatter(group.actual, group.predicted, s=18, c=_COLORS.get(split, "gray"), label=split)
    lo = float(min(models.actual.min(), models.predicted.min()))
    hi = float(max(models.actual.max(), models.predicted.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set_xlabel(f"actual {target}")
    ax.set_ylabel(f"predicted {target}")
    ax.legend()
    ax.set_title("Observational law: predicted vs actual")
    try:
        return _save(fig, Path(path))
    finally:
        plt.close(fig)


def plot_forecast(models: pd.DataFrame, fit, equivalent, target: str, path: str | Path) -> Path | None:
    """Target vs reference-family-equivalent FLOPs, with the fitted curve; None without a ruler."""
    if equivalent is None or models["equivalent_log10_flops"].isna().all():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    x = models["equivalent_log10_flops"].to_numpy(float)
    grid = np.linspace(np.nanmin(x) - 0.3, np.nanmax(x) + 0.3, 200)
    ax.plot(10**grid, fit.link(equivalent.predictor(grid)), "k-", lw=1.5, label="fitted law")
    for split, group in models.groupby("split"):
        ax.scatter(10 ** group["equivalent_log10_flops"], group.actual, s=18,
                   c=_COLORS.get(split, "gray"), label=f"{split} (actual)")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel(f"{equivalent.reference}-equivalent training FLOPs")
    ax.set_ylabel(target)
    ax.legend(fontsize=8)
    ax.set_title("Observational law forecast")
    try:
        return _save(fig, Path(path))
    finally:
        plt.close(fig)
