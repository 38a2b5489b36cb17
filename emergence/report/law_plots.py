"""Plots of an emergence-law fit (matplotlib, Agg backend, written atomically).

Three pictures a researcher reads to trust (or not) a prediction: the data against the fitted
law with posterior bands for each budget, the posterior CDF of the few-shot emergence point with
the truth when known, and the backtest errors against the 0.1-nat success line. The x axis is
pretraining loss *decreasing* to the right, so stronger models sit on the right as in the paper.
Axes stay physical: a loss axis never goes below 0 and a metric axis never above its maximum.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from emergence.fileio import atomic_path  # noqa: E402
from emergence.laws.emergence_law import mean_perf_at, metric_max  # noqa: E402
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


def plot_fit(fit: LawFit, path: str | Path, seed: int = 0) -> Path:
    """Metric vs pretraining loss, one colour per budget; posterior median line and 5–95% band."""
    data, geo = fit.data, fit.geo
    draws = _latent_draws(fit, seed)
    y_max = metric_max(data)
    grid = np.linspace(max(0.0, data.loss.min() - 0.05), data.loss.max() + 0.05, 200)
    budgets = (
        [0.0, *data.finetuned_budgets.tolist()] if data.fewshot.any() else data.finetuned_budgets.tolist()
    )
    colours = plt.cm.viridis(np.linspace(0.0, 0.9, len(budgets)))
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for budget, colour in zip(budgets, colours, strict=True):
        rows = data.budget == budget
        fewshot = budget == 0
        colour = "black" if fewshot else colour
        label = f"few-shot (D0={data.d0:g})" if fewshot else f"D={budget:g}"
        curves = mean_perf_at(draws, geo, fit.spec, data.chance, y_max, budget, grid)
        lo, mid, hi = np.percentile(curves, [5, 50, 95], axis=0)
        ax.fill_between(grid, lo, hi, color=colour, alpha=0.2, linewidth=0)
        ax.plot(grid, mid, color=colour, linewidth=1.5, linestyle="--" if fewshot else "-")
        ax.scatter(data.loss[rows], data.y[rows], color=colour, s=14, label=label, zorder=3)
    summary = fit.emergence()
    if np.isfinite(summary["q05"]):
        ax.axvspan(summary["q05"], summary["q95"], color="tab:red", alpha=0.12, label="E(D0) 90% interval")
    ax.axvline(summary["mle"], color="tab:red", linewidth=1.2, label=f"E(D0) MLE = {summary['mle']:.3f}")
    lows = [grid[0], summary["mle"]] + ([summary["q05"]] if np.isfinite(summary["q05"]) else [])
    ax.set_xlim(max(0.0, min(lows) - 0.02), grid[-1])
    y_low = min(float(np.min(data.y)), data.chance) - 0.05
    ax.set_ylim(y_low, min(y_max, max(float(np.max(data.y)), data.chance) + 0.1) + 0.02 * (y_max - y_low))
    ax.invert_xaxis()
    ax.set_xlabel("pretraining loss (nats/token) — stronger →")
    ax.set_ylabel(data.metric)
    ax.set_title(f"{data.task}: emergence law fit ({fit.spec.form}, {fit.spec.likelihood})")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_e0_cdf(fit: LawFit, path: str | Path, truth: float | None = None) -> Path:
    """Empirical CDF of the E(D0) posterior, with 5/95% marks, the MLE and the truth when known."""
    summary = fit.emergence()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    draws = fit.e0_draws()
    if draws is not None:
        values = np.sort(draws[np.isfinite(draws)])
        ax.plot(values, np.arange(1, values.size + 1) / values.size, color="tab:blue", label="posterior CDF")
        for q in ("q05", "q95"):
            ax.axvline(summary[q], color="tab:blue", linestyle=":", linewidth=1)
        ax.axvline(summary["median"], color="tab:blue", linewidth=1, label=f"median {summary['median']:.3f}")
    ax.axvline(
        summary["mle"], color="tab:orange", linewidth=1.2, linestyle="--", label=f"MLE {summary['mle']:.3f}"
    )
    if truth is not None and np.isfinite(truth):
        ax.axvline(truth, color="tab:red", linewidth=1.5, label=f"truth {truth:.3f}")
        ax.axvspan(truth - SUCCESS_NATS, truth + SUCCESS_NATS, color="tab:red", alpha=0.08, label="±0.1 nat")
    if draws is not None:
        lo, hi = np.percentile(values, [0.1, 99.9])
        marks = [summary["mle"]] + ([truth] if truth is not None and np.isfinite(truth) else [])
        lo, hi = min(lo, *marks), max(hi, *marks)
        pad = 0.15 * (hi - lo) + 1e-3
        ax.set_xlim(max(0.0, lo - pad), hi + pad)
    ax.set_xlabel("few-shot emergence point E(D0) (pretraining loss, nats)")
    ax.set_ylabel("P(E(D0) ≤ x)")
    ax.set_title(f"{fit.data.task}: posterior of the few-shot emergence point")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_backtest(result, path: str | Path) -> Path:
    """|error| per protocol, green when within 0.1 nats; whiskers show the 90% interval's reach."""
    rows = result.rows
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(rows) + 2), 4.2))
    errors = np.array([r.error for r in rows])
    colours = ["tab:green" if r.success else "tab:red" for r in rows]
    positions = np.arange(len(rows))
    ax.bar(positions, errors, color=colours)
    for i, r in enumerate(rows):
        if np.isfinite(r.q05):
            reach = (abs(r.q05 - result.truth.elbow), abs(r.q95 - result.truth.elbow))
            covered = r.q05 <= result.truth.elbow <= r.q95
            ax.plot([i, i], [0 if covered else min(reach), max(reach)], color="black", linewidth=0.8)
    ax.axhline(SUCCESS_NATS, color="black", linestyle="--", linewidth=1, label="0.1-nat success line")
    ax.set_xticks(positions, [r.protocol for r in rows], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("|E(D0) − truth| (nats)")
    ax.set_title(f"backtests (MLE) vs ground-truth elbow {result.truth.elbow:.3f} nats")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)
