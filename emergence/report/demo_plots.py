"""The demo's pictures: the law against *all* checkpoints, emergence vs data, and the compute forecast.

Unlike ``emergence fit``'s plots (which show the rows a fit saw), these show the backtest: held-out
checkpoints are drawn hollow, the fitted law is extended over their losses, and the ground-truth
elbow sits next to the predicted E(D0) (the MLE, the paper's rule, with the posterior's 90% band),
so a reader judges the forecast at a glance. The loss axis decreases to the right (stronger models
on the right), as in the paper and in law_plots; it never goes below 0, and the metric axis never
above the metric's maximum.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from emergence.laws.emergence_law import mean_perf_at, metric_max  # noqa: E402
from emergence.report.law_plots import _latent_draws, _save  # noqa: E402


def plot_law(fit, data, held: set[str], truth: float | None, path: str | Path) -> Path:
    """Metric vs loss by budget: fitted (filled) and held-out (hollow) rows, law bands, E(D0), truth."""
    geo, draws = fit.geo, _latent_draws(fit, 0)
    y_max = metric_max(fit.data)
    e0 = fit.emergence()
    marks = [v for v in (e0["q05"], e0["mle"], truth) if v is not None and math.isfinite(v)]
    # show the predicted elbow even when it lies beyond the data, but at most 1 nat beyond, never below 0
    left = max(min([data.loss.min(), *marks]) - 0.05, data.loss.min() - 1.0, 0.0)
    grid = np.linspace(left, data.loss.max() + 0.05, 240)
    budgets = [0.0, *data.finetuned_budgets.tolist()]
    colours = plt.cm.viridis(np.linspace(0.0, 0.9, len(budgets)))
    is_held = np.isin(data.checkpoint, sorted(held))
    fig, ax = plt.subplots(figsize=(8, 5.2))
    for budget, colour in zip(budgets, colours, strict=True):
        fewshot = budget == 0
        colour = "black" if fewshot else colour
        rows = data.budget == budget
        if not rows.any():
            continue
        curves = mean_perf_at(draws, geo, fit.spec, fit.data.chance, y_max, budget, grid)
        lo, mid, hi = np.percentile(curves, [5, 50, 95], axis=0)
        ax.fill_between(grid, lo, hi, color=colour, alpha=0.15, linewidth=0)
        ax.plot(grid, mid, color=colour, linewidth=1.4, linestyle="--" if fewshot else "-")
        label = f"few-shot (D0={data.d0:g})" if fewshot else f"D={budget:g}"
        ax.scatter(
            data.loss[rows & ~is_held], data.y[rows & ~is_held], color=colour, s=16, label=label, zorder=3
        )
        ax.scatter(
            data.loss[rows & is_held],
            data.y[rows & is_held],
            facecolors="none",
            edgecolors=colour,
            s=22,
            zorder=3,
        )
    centre = e0["mle"]
    if math.isfinite(e0["q05"]):
        ax.axvspan(e0["q05"], e0["q95"], color="tab:red", alpha=0.12, label="predicted E(D0), 90%")
    ax.axvline(centre, color="tab:red", linewidth=1.3, label=f"predicted E(D0) (MLE) = {centre:.3f}")
    if truth is not None:
        ax.axvline(truth, color="tab:blue", linewidth=1.3, linestyle=":", label=f"true elbow = {truth:.3f}")
    if is_held.any():
        ax.axvspan(
            data.loss[is_held].min(),
            data.loss[is_held].max(),
            color="grey",
            alpha=0.07,
            label="held-out losses",
        )
    ax.scatter([], [], facecolors="none", edgecolors="black", label="held-out checkpoint (not fitted)")
    ax.set_xlim(grid[0], grid[-1])
    y_low = min(float(np.min(data.y)), fit.data.chance) - 0.05
    ax.set_ylim(y_low, min(y_max, max(float(np.max(data.y)), fit.data.chance) + 0.1) + 0.02 * (y_max - y_low))
    ax.invert_xaxis()
    ax.set_xlabel("pretraining loss (nats/token) — stronger →")
    ax.set_ylabel(data.metric)
    ax.set_title(f"{data.task}: emergence law fit on the smaller checkpoints, held-out ones hollow")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_elbows(fit, elbows: dict, truth: float | None, path: str | Path) -> Path:
    """Emergence point vs data amount D: observed per-budget elbows, the law's E(D), E(D0), truth."""
    from emergence.laws.emergence_law import elbow_at

    d0 = fit.data.d0
    budgets = np.array([b["budget"] for b in elbows["budgets"]], dtype=float)
    grid = np.geomspace(d0, max(budgets.max() if budgets.size else d0 * 10, d0 * 1.5), 80)
    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    theta = fit.posterior.samples if fit.posterior is not None else fit.mle.theta
    curves = np.stack([np.asarray(elbow_at(theta, fit.geo, float(d))).reshape(-1) for d in grid], axis=1)
    lo, mid, hi = np.nanpercentile(curves, [5, 50, 95], axis=0)
    ax.fill_between(grid, lo, hi, color="tab:red", alpha=0.15, linewidth=0, label="law E(D), 90%")
    ax.plot(grid, mid, color="tab:red", linewidth=1.3, label="law E(D), median")
    observed = [(b["budget"], b["elbow"]) for b in elbows["budgets"] if b["emerged"]]
    if observed:
        xs, ys = zip(*observed, strict=True)
        ax.scatter(xs, ys, color="tab:green", zorder=3, label="observed elbow (finetuned)")
    if truth is not None:
        ax.scatter(
            [d0], [truth], color="tab:blue", marker="*", s=110, zorder=4, label="observed few-shot elbow"
        )
    ax.set_xscale("log")
    ax.set_xlabel("finetuning examples D (log); leftmost point: D0 (few-shot)")
    ax.set_ylabel("emergence point (pretraining loss, nats)")
    ax.set_ylim(bottom=max(0.0, ax.get_ylim()[0]))
    ax.set_title(f"{fit.data.task}: emergence point vs finetuning data (observed and law)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_forecast(law, table: list[dict], e0: dict, truth, forecast, task: str, path: str | Path) -> Path:
    """Loss vs training compute: the ladder, L(C) fit on the fitted checkpoints, predicted emergence."""
    fig, ax = plt.subplots(figsize=(7, 4.6))
    flops = np.array([r["flops"] for r in table], dtype=float)
    loss = np.array([r["loss"] for r in table], dtype=float)
    held = np.array([r["held_out"] for r in table])
    ax.scatter(flops[~held], loss[~held], color="black", s=16, label="fitted checkpoints", zorder=3)
    ax.scatter(
        flops[held], loss[held], facecolors="none", edgecolors="black", s=22, label="held-out", zorder=3
    )
    grid = np.geomspace(np.nanmin(flops) / 2, np.nanmax(flops) * 4, 200)
    ax.plot(grid, law.loss(grid), color="grey", linewidth=1.2, label=f"L(C) fit (rmse {law.rmse:.3f})")
    centre = e0["mle"]
    ax.axhline(centre, color="tab:red", linewidth=1.2, label=f"predicted E(D0) (MLE) {centre:.3f}")
    if math.isfinite(e0["q05"]):
        ax.axhspan(e0["q05"], e0["q95"], color="tab:red", alpha=0.1)
    if truth is not None:
        ax.axhline(truth, color="tab:blue", linestyle=":", linewidth=1.2, label=f"true elbow {truth:.3f}")
    if forecast is not None:
        c = forecast["flops"]
        if math.isfinite(c["median"]):
            ax.axvline(
                c["median"], color="tab:red", linestyle="--", linewidth=1, label="predicted emergence compute"
            )
        observed = forecast.get("observed_first_post_emergence_flops")
        if observed:
            ax.axvline(
                observed, color="tab:blue", linestyle="--", linewidth=1, label="first post-emergence ckpt"
            )
    ax.set_xscale("log")
    ax.set_xlabel("training compute C (FLOPs = 6·N·tokens)")
    ax.set_ylabel("pretraining loss (nats/token)")
    ax.set_ylim(bottom=max(0.0, ax.get_ylim()[0]))
    ax.set_title(f"{task}: when does it emerge, in compute?")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)
