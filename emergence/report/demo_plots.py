"""The demo's own pictures: emergence vs data, and the forecast in compute, beside the ground truth.

The law against all checkpoints (held-out ones hollow) is :func:`emergence.report.law_plots.plot_fit`
with ``data`` and ``held``. Loss axes never go below 0.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from emergence.laws.emergence_law import elbow_at
from emergence.report.law_plots import _save, plt


def plot_elbows(fit, elbows: dict, truth: float | None, path: str | Path) -> Path:
    """Emergence point vs data amount D: observed per-budget elbows, the law's E(D), E(D0), truth."""
    d0 = fit.data.d0
    budgets = [b["budget"] for b in elbows["budgets"]]
    grid = np.geomspace(d0, max(max(budgets, default=d0 * 10), d0 * 1.5), 80)
    theta = fit.posterior.samples if fit.posterior is not None else fit.mle.theta
    curves = np.stack([np.asarray(elbow_at(theta, fit.geo, float(d))).reshape(-1) for d in grid], axis=1)
    lo, mid, hi = np.nanpercentile(curves, [5, 50, 95], axis=0)
    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    ax.fill_between(grid, lo, hi, color="tab:red", alpha=0.15, linewidth=0, label="law E(D), 90%")
    ax.plot(grid, mid, color="tab:red", linewidth=1.3, label="law E(D), median")
    observed = [(b["budget"], b["elbow"]) for b in elbows["budgets"] if b["emerged"]]
    if observed:
        ax.scatter(
            *zip(*observed, strict=True), color="tab:green", zorder=3, label="observed elbow (finetuned)"
        )
    if truth is not None:
        ax.scatter(
            [d0], [truth], color="tab:blue", marker="*", s=110, zorder=4, label="observed few-shot elbow"
        )
    ax.set_xscale("log")
    ax.set(xlabel="finetuning examples D (log); leftmost point: D0 (few-shot)")
    ax.set(ylabel="emergence point (pretraining loss, nats)", ylim=(max(0.0, ax.get_ylim()[0]), None))
    ax.set_title(f"{fit.data.task}: emergence point vs finetuning data (observed and law)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_forecast(law, table: list[dict], e0: dict, truth, forecast, task: str, path: str | Path) -> Path:
    """Loss vs training compute: the ladder, L(C) fit on the fitted checkpoints, predicted emergence."""
    flops, loss = (np.array([r[k] for r in table], dtype=float) for k in ("flops", "loss"))
    held = np.array([r["held_out"] for r in table])
    fig, ax = plt.subplots(figsize=(7, 4.6))
    ax.scatter(flops[~held], loss[~held], color="black", s=16, label="fitted checkpoints", zorder=3)
    ax.scatter(
        flops[held], loss[held], facecolors="none", edgecolors="black", s=22, label="held-out", zorder=3
    )
    grid = np.geomspace(np.nanmin(flops) / 2, np.nanmax(flops) * 4, 200)
    ax.plot(grid, law.loss(grid), color="grey", linewidth=1.2, label=f"L(C) fit (rmse {law.rmse:.3f})")
    ax.axhline(e0["mle"], color="tab:red", linewidth=1.2, label=f"predicted E(D0) (MLE) {e0['mle']:.3f}")
    if math.isfinite(e0["q05"]):
        ax.axhspan(e0["q05"], e0["q95"], color="tab:red", alpha=0.1)
    if truth is not None:
        ax.axhline(truth, color="tab:blue", linestyle=":", linewidth=1.2, label=f"true elbow {truth:.3f}")
    predicted = forecast["flops"]["median"] if forecast is not None else math.nan
    observed = (forecast or {}).get("observed_first_post_emergence_flops")
    if math.isfinite(predicted):
        ax.axvline(
            predicted, color="tab:red", linestyle="--", linewidth=1, label="predicted emergence compute"
        )
    if observed:
        ax.axvline(observed, color="tab:blue", linestyle="--", linewidth=1, label="first post-emergence ckpt")
    ax.set_xscale("log")
    ax.set(xlabel="training compute C (FLOPs = 6·N·tokens)", ylabel="pretraining loss (nats/token)")
    ax.set(ylim=(max(0.0, ax.get_ylim()[0]), None), title=f"{task}: when does it emerge, in compute?")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)
