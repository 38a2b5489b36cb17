"""Plots of an emergence-law fit: the data against the law with posterior bands per budget, the
posterior CDF of E(D0), the backtest errors against the 0.1-nat line, and the demo's emergence vs
data and forecast in compute beside the ground truth (matplotlib, Agg).

Stronger models sit on the right, as in the paper (loss decreases to the right); a loss axis never
goes below 0 and a metric axis never above its maximum.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from emergence.fileio import atomic_path  # noqa: E402
from emergence.laws.emergence_law import elbow_at, mean_perf_at, metric_max  # noqa: E402
from emergence.laws.law_fit import LawFit  # noqa: E402
from emergence.laws.predict import SUCCESS_NATS  # noqa: E402

_BAND_DRAWS = 300


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    return path


def _latent_draws(fit: LawFit, seed: int) -> dict[str, np.ndarray]:
    """Up to _BAND_DRAWS posterior draws of the latents (the MLE alone when not sampled)."""
    if fit.posterior is None:
        return {k: np.atleast_1d(v) for k, v in fit.mle.theta.items()}
    flat = {name: value.reshape(-1) for name, value in fit.posterior.samples.items()}
    size = next(iter(flat.values())).size
    idx = np.random.default_rng(seed).choice(size, min(_BAND_DRAWS, size), replace=False)
    return {k: v[idx] for k, v in flat.items()}


def plot_fit(fit: LawFit, path: str | Path, seed: int = 0, *, data=None, held=(), truth=None) -> Path:
    """Metric vs pretraining loss, one colour per budget, with the posterior median and 5–95% band.

    ``data`` (default: the fitted rows) may hold more rows than the fit saw: those of the ``held``
    checkpoints are drawn hollow and the law is extended over their losses, beside the ``truth``.
    """
    data = fit.data if data is None else data
    e0 = fit.emergence()
    is_held = np.isin(data.checkpoint, sorted(held))
    marks = [v for v in (e0["q05"], e0["mle"], truth) if v is not None and np.isfinite(v)]
    # show the predicted elbow even beyond the data, but at most 1 nat beyond and never below 0
    left = max(min([data.loss.min(), *marks]) - 0.05, data.loss.min() - 1.0, 0.0)
    grid = np.linspace(left, data.loss.max() + 0.05, 240)
    budgets = [b for b in [0.0, *data.finetuned_budgets.tolist()] if (data.budget == b).any()]
    colours = plt.cm.viridis(np.linspace(0.0, 0.9, len(budgets)))
    draws, y_max, chance = _latent_draws(fit, seed), metric_max(fit.data), fit.data.chance
    fig, ax = plt.subplots(figsize=(8, 5.2))
    for budget, colour in zip(budgets, colours, strict=True):
        colour = "black" if budget == 0 else colour
        curves = mean_perf_at(draws, fit.geo, fit.spec, chance, y_max, budget, grid)
        lo, mid, hi = np.percentile(curves, [5, 50, 95], axis=0)
        ax.fill_between(grid, lo, hi, color=colour, alpha=0.15, linewidth=0)
        ax.plot(grid, mid, color=colour, linewidth=1.4, linestyle="--" if budget == 0 else "-")
        label = f"few-shot (D0={data.d0:g})" if budget == 0 else f"D={budget:g}"
        for rows, style in ((~is_held, {"color": colour, "label": label}), (is_held, {"facecolors": "none"})):
            rows = rows & (data.budget == budget)
            ax.scatter(
                data.loss[rows], data.y[rows], s=18, edgecolors=colour, zorder=3, clip_on=False, **style
            )
    if np.isfinite(e0["q05"]):
        ax.axvspan(e0["q05"], e0["q95"], color="tab:red", alpha=0.12, label="predicted E(D0), 90%")
    ax.axvline(e0["mle"], color="tab:red", linewidth=1.3, label=f"predicted E(D0) (MLE) = {e0['mle']:.3f}")
    if truth is not None:
        ax.axvline(truth, color="tab:blue", linewidth=1.3, linestyle=":", label=f"true elbow = {truth:.3f}")
    if is_held.any():
        span = (data.loss[is_held].min(), data.loss[is_held].max())
        ax.axvspan(*span, color="grey", alpha=0.07, label="held-out losses")
        ax.scatter([], [], facecolors="none", edgecolors="black", label="held-out checkpoint (not fitted)")
    ax.set_xlim(grid[0], grid[-1])
    # the metric axis stops at its maximum; unclipped markers stay whole on that edge
    ax.set_ylim(
        min(float(np.min(data.y)), chance) - 0.05, min(y_max, max(float(np.max(data.y)), chance) + 0.1)
    )
    ax.invert_xaxis()
    ax.set(xlabel="pretraining loss (nats/token) — stronger →", ylabel=data.metric)
    held_note = ", held-out checkpoints hollow" if is_held.any() else ""
    ax.set_title(f"{data.task}: emergence law fit ({fit.spec.form}, {fit.spec.likelihood}){held_note}")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_e0_cdf(fit: LawFit, path: str | Path, truth: float | None = None) -> Path:
    """Empirical CDF of the E(D0) posterior, with 5/95% marks, the MLE and the truth when known."""
    summary, draws = fit.emergence(), fit.e0_draws()
    truth = truth if truth is not None and np.isfinite(truth) else None
    marks = [summary["mle"]] + ([truth] if truth is not None else [])
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    if draws is not None:
        values = np.sort(draws[np.isfinite(draws)])
        ax.plot(values, np.arange(1, values.size + 1) / values.size, color="tab:blue", label="posterior CDF")
        for q in ("q05", "q95"):
            ax.axvline(summary[q], color="tab:blue", linestyle=":", linewidth=1)
        ax.axvline(summary["median"], color="tab:blue", linewidth=1, label=f"median {summary['median']:.3f}")
        marks += np.percentile(values, [0.1, 99.9]).tolist()
    mle = summary["mle"]
    ax.axvline(mle, color="tab:orange", linewidth=1.2, linestyle="--", label=f"MLE {mle:.3f}")
    if truth is not None:
        ax.axvline(truth, color="tab:red", linewidth=1.5, label=f"truth {truth:.3f}")
        ax.axvspan(truth - SUCCESS_NATS, truth + SUCCESS_NATS, color="tab:red", alpha=0.08, label="±0.1 nat")
    pad = 0.15 * (max(marks) - min(marks)) + 0.02
    ax.set_xlim(max(0.0, min(marks) - pad), max(marks) + pad)
    ax.set(xlabel="few-shot emergence point E(D0) (pretraining loss, nats)", ylabel="P(E(D0) ≤ x)")
    ax.set_title(f"{fit.data.task}: posterior of the few-shot emergence point")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_backtest(result, path: str | Path) -> Path:
    """|error| per protocol, green when within 0.1 nats; whiskers show the 90% interval's reach."""
    rows, truth = result.rows, result.truth.elbow
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(rows) + 2), 4.2))
    colours = ["tab:green" if r.success else "tab:red" for r in rows]
    ax.bar(range(len(rows)), [r.error for r in rows], color=colours)
    for i, r in enumerate(rows):
        if np.isfinite(r.q05):  # whisker: from 0 when the interval covers the truth, else its near end
            reach = (abs(r.q05 - truth), abs(r.q95 - truth))
            low = 0 if r.q05 <= truth <= r.q95 else min(reach)
            ax.plot([i, i], [low, max(reach)], color="black", linewidth=0.8)
    ax.axhline(SUCCESS_NATS, color="black", linestyle="--", linewidth=1, label="0.1-nat success line")
    ax.set_xticks(range(len(rows)), [r.protocol for r in rows], rotation=45, ha="right", fontsize=8)
    ax.set(ylabel="|E(D0) − truth| (nats)", title=f"backtests (MLE) vs ground-truth elbow {truth:.3f} nats")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


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
