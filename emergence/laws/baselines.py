"""Naive forecasts of the few-shot emergence point, and paired comparisons of errors.

A law that cannot beat a guess has not earned its forecast. Every place that scores E(D0) — fit
reports, backtests, the demo, the study and the calibration — puts the law's error next to these
three baselines, computed from exactly the rows the law was fitted on:

* ``strongest``: the pretraining loss of the strongest fitted checkpoint ("emergence is just past
  what we have");
* ``smallest_budget``: the observed elbow of the smallest finetuning budget, E(D_min) ("few-shot
  emerges where the least finetuning does");
* ``linear``: a straight line through the observed per-budget elbows in log D, extrapolated to D0.

When a curve has not risen significantly, its elbow is unknown and the baseline falls back to the
one before it (``linear`` → ``smallest_budget`` → ``strongest``), as a researcher would.

Errors are compared per case (paired), with percentile-bootstrap intervals over cases.
"""

from __future__ import annotations

import numpy as np

from emergence.laws.predict import SUCCESS_NATS, TruthElbow, truth_elbow
from emergence.laws.table import LawData

BASELINES: tuple[str, ...] = ("strongest", "smallest_budget", "linear")


def budget_fits(data: LawData) -> dict[float, TruthElbow]:
    """The hard-ReLU elbow fit of every finetuned budget's curve, risen or not."""
    return {
        float(budget): truth_elbow(data.loss[data.budget == budget], data.y[data.budget == budget])
        for budget in data.finetuned_budgets
    }


def budget_elbows(data: LawData) -> dict[float, float]:
    """Observed elbow of each finetuned budget whose curve rises significantly (hard-ReLU fit)."""
    return {budget: fit.elbow for budget, fit in budget_fits(data).items() if fit.emerged}


def baseline_predictions(data: LawData, form: str = "log-power") -> dict[str, float]:
    """The three naive E(D0) forecasts from the fitted rows (see the module docstring)."""
    means = {c: float(data.loss[data.checkpoint == c].mean()) for c in np.unique(data.checkpoint)}
    strongest = min(means.values())
    elbows = budget_elbows(data)
    d_min = float(data.finetuned_budgets.min()) if data.finetuned_budgets.size else float("nan")
    smallest = elbows.get(d_min, strongest)
    if len(elbows) >= 2:
        g = np.log if form == "log-power" else (lambda v: np.asarray(v, float))
        budgets = np.array(sorted(elbows))
        slope, intercept = np.polyfit(g(budgets), [elbows[b] for b in budgets], 1)
        linear = float(intercept + slope * g(data.d0))
    else:
        linear = smallest
    return {"strongest": strongest, "smallest_budget": smallest, "linear": linear}


def _bootstrap(stat, columns: np.ndarray, n_boot: int, seed: int) -> dict[str, float]:
    """The statistic over all cases, with its 95% percentile-bootstrap interval."""
    rng = np.random.default_rng(seed)
    n = columns.shape[0]
    draws = np.array([stat(columns[rng.integers(0, n, n)]) for _ in range(n_boot)])
    draws = draws[np.isfinite(draws)]
    low, high = np.percentile(draws, [2.5, 97.5]) if draws.size else (np.nan, np.nan)
    return {"value": float(stat(columns)), "low": float(low), "high": float(high)}


def compare(errors: dict[str, np.ndarray], n_boot: int = 2000, seed: int = 0) -> dict:
    """Paired comparison of absolute errors over cases; ``errors['law']`` against each baseline.

    Returns per method the mean error and the share within 0.1 nats (with intervals), the best
    baseline (lowest mean error), and for each baseline the law's mean error minus it and the ratio
    of the two means, each with a paired bootstrap interval (cases resampled together).
    """
    names = ["law", *[b for b in BASELINES if b in errors]]
    table = np.column_stack([np.abs(np.asarray(errors[n], dtype=float)) for n in names])
    table = table[np.isfinite(table).all(axis=1)]
    if table.shape[0] == 0:
        return {"cases": 0}
    methods = {}
    for i, name in enumerate(names):
        mean_error = _bootstrap(lambda t, i=i: t[:, i].mean(), table, n_boot, seed)
        within = _bootstrap(lambda t, i=i: (t[:, i] <= SUCCESS_NATS + 1e-9).mean(), table, n_boot, seed)
        methods[name] = {"mean_error": mean_error, "within_0.1": within}
    versus = {}
    for j, name in enumerate(names[1:], start=1):
        diff = _bootstrap(lambda t, j=j: t[:, 0].mean() - t[:, j].mean(), table, n_boot, seed)
        ratio = _bootstrap(
            lambda t, j=j: t[:, 0].mean() / t[:, j].mean() if t[:, j].mean() > 0 else np.inf,
            table,
            n_boot,
            seed,
        )
        versus[name] = {"difference": diff, "ratio": ratio, "law_better": bool(diff["high"] < 0)}
    best = min(names[1:], key=lambda n: methods[n]["mean_error"]["value"]) if len(names) > 1 else None
    return {"cases": int(table.shape[0]), "methods": methods, "versus": versus, "best_baseline": best}


def format_comparison(comparison: dict) -> str:
    """Plain-text lines: each method's mean |error| and share within 0.1, then law vs the best baseline."""
    if not comparison.get("cases"):
        return "no scored cases"
    lines = [f"{'method':<17}{'mean |error|':>14}{'95% interval':>18}{'within 0.1':>12}"]
    for name, m in comparison["methods"].items():
        e, w = m["mean_error"], m["within_0.1"]
        lines.append(f"{name:<17}{e['value']:>14.3f}{e['low']:>9.3f}-{e['high']:<8.3f}{w['value']:>12.0%}")
    best = comparison.get("best_baseline")
    if best:
        ratio = comparison["versus"][best]["ratio"]
        lines.append(
            f"law / best baseline ({best}): {ratio['value']:.2f} "
            f"(paired bootstrap 95%: {ratio['low']:.2f}-{ratio['high']:.2f}; {comparison['cases']} cases)"
        )
    return "\n".join(lines)
