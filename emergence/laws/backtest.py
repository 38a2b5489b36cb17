"""Backtests: the paper's validation protocols, each a refit on a reduced table.

The ground truth is the elbow of a ReLU fitted to the *full* few-shot curve. Each protocol removes
information a researcher would not have (or might lack) and asks whether the law's MLE (the paper's
rule), fit without it, still lands within 0.1 nats — and whether it lands closer than the naive
baselines of :mod:`emergence.laws.baselines`, computed from the same reduced table:

* ``holdout-last-k`` (k = 1…4): drop the k most capable checkpoints (lowest loss) — how far ahead
  does the law see?
* ``pre-emergence``: keep only checkpoints whose few-shot loss is above the true elbow (the real
  use case: every checkpoint still at chance). The protocols below start from this set.
* ``drop-smallest-j`` / ``drop-largest-j`` (j = 1…3): remove finetuning budgets (≥ 2 must remain).
* ``single-seed``: one subset seed only.
* ``last-n`` (n = 3, 5): only the n most capable pre-emergence checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from emergence.errors import UserError
from emergence.laws.baselines import BASELINES, compare, format_comparison
from emergence.laws.fit_config import FitSettings
from emergence.laws.law_fit import fit_law
from emergence.laws.predict import TruthElbow, fewshot_truth, success
from emergence.laws.table import LawData


@dataclass(frozen=True)
class BacktestRow:
    protocol: str
    n_rows: int
    n_checkpoints: int
    mle: float
    median: float
    q05: float
    q95: float
    error: float  # |MLE − truth| (the paper's rule)
    success: bool
    warnings: tuple[str, ...]
    baselines: dict[str, float]  # naive E(D0) forecasts from the same rows
    baseline_errors: dict[str, float]


@dataclass(frozen=True)
class BacktestResult:
    truth: TruthElbow
    rows: tuple[BacktestRow, ...]
    skipped: tuple[str, ...]

    def comparison(self) -> dict:
        """The law's |error| against each baseline's over the protocols (paired, bootstrap intervals)."""
        errors = {"law": np.array([r.error for r in self.rows])}
        errors.update({b: np.array([r.baseline_errors[b] for r in self.rows]) for b in BASELINES})
        return compare(errors)

    def as_dict(self) -> dict:
        return {
            "truth": {"elbow": self.truth.elbow, "slope": self.truth.slope, "n_past": self.truth.n_past},
            "rows": [row.__dict__ | {"warnings": list(row.warnings)} for row in self.rows],
            "skipped": list(self.skipped),
            "success_rate": float(np.mean([r.success for r in self.rows])) if self.rows else float("nan"),
            "comparison": self.comparison() if self.rows else {"cases": 0},
        }


def ground_truth(data: LawData) -> TruthElbow:
    """The few-shot curve's elbow; backtests need it to have risen significantly."""
    truth = fewshot_truth(data)
    if not truth.emerged:
        raise UserError(
            f"{data.source}: the few-shot curve of task '{data.task}' never rises clearly above chance, so "
            "there is no ground-truth elbow to backtest against (include post-emergence checkpoints)"
        )
    return truth


def _budget_mask(data: LawData, base: np.ndarray, j: int, largest: bool) -> np.ndarray | None:
    budgets = np.unique(data.budget[base & ~data.fewshot])
    if budgets.size - j < 2:
        return None
    drop = budgets[-j:] if largest else budgets[:j]
    return base & ~np.isin(data.budget, drop)


def _single_seed(data: LawData, base: np.ndarray) -> np.ndarray | None:
    seeds = np.unique(data.subset_seed[base & np.isfinite(data.subset_seed)])
    if seeds.size < 2:
        return None
    return base & ((data.subset_seed == seeds[0]) | ~np.isfinite(data.subset_seed))


def _last_n(data: LawData, base: np.ndarray, n: int) -> np.ndarray | None:
    kept = data.subset(base).checkpoints_by_loss()
    if len(kept) <= n:
        return None
    return base & np.isin(data.checkpoint, kept[-n:])


def protocols(data: LawData, truth: TruthElbow) -> dict[str, np.ndarray | None]:
    """The rows each of the paper's protocols keeps (None: not applicable), in the printed order."""
    order = data.checkpoints_by_loss()
    masks = {f"holdout-last-{k}": ~np.isin(data.checkpoint, order[-k:]) for k in range(1, 5)}
    means = {c: data.loss[data.checkpoint == c].mean() for c in np.unique(data.checkpoint)}
    emerged = [c for c, loss in means.items() if loss < truth.elbow]
    pre = masks["pre-emergence"] = ~np.isin(data.checkpoint, emerged)
    masks |= {f"drop-smallest-{j}": _budget_mask(data, pre, j, False) for j in range(1, 4)}
    masks |= {f"drop-largest-{j}": _budget_mask(data, pre, j, True) for j in range(1, 4)}
    masks["single-seed"] = _single_seed(data, pre)
    masks |= {f"last-{n}": _last_n(data, pre, n) for n in (3, 5)}
    return masks


def run_backtests(
    data: LawData,
    settings: FitSettings = FitSettings(),
    progress: Callable[[str], None] | None = None,
) -> BacktestResult:
    """Fit every applicable protocol and score it against the ground truth."""
    truth = ground_truth(data)
    rows, skipped = [], []
    for name, mask in protocols(data, truth).items():
        if mask is None or not mask.any():
            skipped.append(f"{name}: not applicable to this table")
            continue
        subset = data.subset(mask, note=f"backtest {name}")
        try:
            fit = fit_law(subset, settings)
        except UserError as err:
            skipped.append(f"{name}: {err}")
            continue
        summary = fit.emergence()  # mle, median, q05, q95
        point = summary["mle"]
        baselines = fit.baselines()
        rows.append(
            BacktestRow(
                protocol=name,
                n_rows=int(mask.sum()),
                n_checkpoints=int(np.unique(subset.checkpoint).size),
                **summary,
                error=abs(point - truth.elbow),
                success=success(point, truth.elbow),
                warnings=fit.warnings,
                baselines=baselines,
                baseline_errors={b: abs(v - truth.elbow) for b, v in baselines.items()},
            )
        )
        if progress is not None:
            progress(f"{name}: E(D0) {point:.3f} vs truth {truth.elbow:.3f}")
    return BacktestResult(truth, tuple(rows), tuple(skipped))


def format_table(result: BacktestResult) -> str:
    """Plain-text table: protocol, rows, MLE of E(D0) with the posterior's median and 90% interval,
    |error| and success mark, then each baseline's |error|, then the paired comparison."""
    lines = [
        f"ground truth (few-shot ReLU elbow): {result.truth.elbow:.3f} nats; success = |MLE error| <= 0.1",
        f"{'protocol':<18}{'rows':>6}{'ckpts':>6}{'MLE':>8}{'median':>8}{'90% interval':>17}"
        f"{'|error|':>9}  ok" + "".join(f"{'|' + b + '|':>18}" for b in BASELINES),
    ]
    for r in result.rows:
        interval = f"{r.q05:.3f}-{r.q95:.3f}" if np.isfinite(r.q05) else "-"
        mark = "✓" if r.success else "✗"
        lines.append(
            f"{r.protocol:<18}{r.n_rows:>6}{r.n_checkpoints:>6}{r.mle:>8.3f}{r.median:>8.3f}{interval:>17}"
            f"{r.error:>9.3f}  {mark}" + "".join(f"{r.baseline_errors[b]:>18.3f}" for b in BASELINES)
        )
    wins = sum(r.success for r in result.rows)
    lines.append(f"success: {wins}/{len(result.rows)}")
    if result.rows:
        lines.append(format_comparison(result.comparison()))
    lines.extend(f"skipped {s}" for s in result.skipped)
    return "\n".join(lines)
