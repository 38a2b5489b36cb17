"""Plots of an observational scaling-law fit (matplotlib, Agg backend, written atomically).

Two views: predicted vs actual (does the law fit, and does it extrapolate to the held-out models?), and
the target against reference-family-equivalent FLOPs with the fitted sigmoid (the forecast itself, on a
compute axis people can read; drawn only when the reference family gave a ruler).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emergence.fileio import atomic_path
from emergence.laws.observational import ObsResult

_COLORS = {"train": "tab:blue", "test": "tab:red"}


def plot_fit(result: ObsResult, target: str, out: str | Path) -> list[Path]:
    """Write OUT/predicted_vs_actual.png and, with a ruler, OUT/forecast.png; return the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models, equivalent, out = result.models, result.equivalent, Path(out)
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
    ax.set(xlabel=f"actual {target}", ylabel=f"predicted {target}")
    ax.set_title("Observational law: predicted vs actual")
    ax.legend()
    figures = {out / "predicted_vs_actual.png": fig}

    x = models["equivalent_log10_flops"].to_numpy(float)
    if equivalent is not None and not np.isnan(x).all():
        fig, ax = plt.subplots(figsize=(6, 4.5))
        grid = np.linspace(np.nanmin(x) - 0.3, np.nanmax(x) + 0.3, 200)
        ax.plot(10**grid, result.fit.link(equivalent.predictor(grid)), "k-", lw=1.5, label="fitted law")
        for split, group in models.groupby("split"):
            ax.scatter(10 ** group["equivalent_log10_flops"], group.actual, s=18,
                       c=_COLORS.get(split, "gray"), label=f"{split} (actual)")  # fmt: skip
        ax.set(xscale="log", xlabel=f"{equivalent.reference}-equivalent training FLOPs", ylabel=target,
               title="Observational law forecast")  # fmt: skip
        ax.legend(fontsize=8)
        figures[out / "forecast.png"] = fig
    try:
        for path, fig in figures.items():
            with atomic_path(path, suffix=".png") as tmp:
                fig.savefig(tmp, dpi=120, bbox_inches="tight")
    finally:
        for fig in figures.values():
            plt.close(fig)
    return list(figures)
