"""Cut out of a results table (read and checked by :mod:`emergence.results_table`) what the emergence
law needs: one task and metric, with D0 and the chance level fixed, as a frozen :class:`LawData` of
numpy arrays. Unusable rows (NaN metric or loss) are dropped with a note, never silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

import numpy as np
import pandas as pd

from emergence.data.tasks import chance_level
from emergence.errors import UserError
from emergence.results_table import LOSS_COLUMNS, metric_columns


@dataclass(frozen=True)
class LawData:
    """One task/metric slice of a results table, as arrays (one entry per usable row)."""

    source: str
    task: str
    metric: str
    loss: np.ndarray  # pretraining loss, in ``loss_unit``
    budget: np.ndarray  # finetuning examples; 0 marks few-shot rows
    y: np.ndarray  # the metric
    n_eval: np.ndarray  # NaN where unknown
    n_correct: np.ndarray  # NaN where unknown
    checkpoint: np.ndarray  # str ids
    subset_seed: np.ndarray  # NaN where unknown
    flops: np.ndarray  # per row, NaN where unknown
    params: np.ndarray
    tokens: np.ndarray
    d0: float  # few-shot extrapolation limit D0
    chance: float  # B (sampled around it only when not known)
    notes: tuple[str, ...] = field(default_factory=tuple)
    chance_known: bool = True  # False: estimated from the weakest rows, so the law samples B
    loss_unit: str = "nats-per-token"  # which loss column: results_table.LOSS_COLUMNS

    @property
    def fewshot(self) -> np.ndarray:
        return self.budget == 0

    @property
    def finetuned_budgets(self) -> np.ndarray:
        return np.unique(self.budget[~self.fewshot])

    def subset(self, mask: np.ndarray, note: str | None = None) -> LawData:
        """The same slice restricted to ``mask`` rows (backtests hold rows out this way)."""
        arrays = {f.name: getattr(self, f.name)[mask] for f in fields(self) if f.type == "np.ndarray"}
        return replace(self, notes=self.notes + ((note,) if note else ()), **arrays)

    def checkpoints_by_loss(self) -> list[str]:
        """Checkpoint ids from weakest (highest loss) to strongest; the "last" ones are most capable."""
        frame = pd.DataFrame({"c": self.checkpoint, "l": self.loss}).groupby("c")["l"].mean()
        return list(frame.sort_values(ascending=False).index)


def select(
    frame: pd.DataFrame,
    task: str,
    metric: str | None = None,
    d0: float | None = None,
    chance: float | None = None,
    source: str = "results",
    loss_unit: str = "nats-per-token",
) -> LawData:
    """Cut the rows of one task and metric, drop unusable rows (with a note), and fix D0 and chance.
    The loss is the table's column for ``loss_unit`` (:data:`~emergence.results_table.LOSS_COLUMNS`)."""
    loss_column = LOSS_COLUMNS[loss_unit]
    if loss_column not in frame.columns:
        raise UserError(f"{source}: missing column '{loss_column}' (the loss in {loss_unit}; a sweep writes it "
                        "with loss.unit: bits-per-byte)")  # fmt: skip
    tasks = sorted(str(t) for t in frame["task"].dropna().unique())
    if task not in tasks:
        raise UserError(f"{source}: unknown task '{task}' (table has: {', '.join(tasks) or 'none'})")
    rows = frame[frame["task"].astype(str) == task]
    metrics = [m for m in metric_columns(rows) if rows[m].notna().any()]
    if metric is None:
        if not metrics:
            raise UserError(f"{source}: no metric column with values for task '{task}'")
        metric = metrics[0]
    elif metric not in rows.columns:
        raise UserError(f"{source}: missing column '{metric}' (metrics here: {', '.join(metrics) or 'none'})")
    y = pd.to_numeric(rows[metric], errors="coerce")
    notes: list[str] = []
    usable = y.notna() & rows[loss_column].notna() & rows["budget"].notna()
    if (~usable).any():
        notes.append(f"dropped {int((~usable).sum())} row(s) with NaN {metric}, {loss_column} or budget")
    rows, y = rows[usable], y[usable]
    if len(rows) == 0:
        raise UserError(f"{source}: task '{task}' has no rows with {metric}, {loss_column} and budget")
    if (rows["budget"] < 0).any():
        raise UserError(f"{source}: column 'budget' has a negative value")

    def column(name: str) -> np.ndarray:
        return rows[name].to_numpy(dtype=float) if name in rows.columns else np.full(len(rows), np.nan)

    budget = column("budget")
    fewshot = budget == 0
    d0, d0_note = resolve_d0(d0, column("shots")[fewshot])
    if d0_note:
        notes.append(d0_note)
    chance_known = True
    if chance is None:
        chance, chance_note = _resolve_chance(task, metric, y.to_numpy(float), column(loss_column))
        chance_known = chance_level(task, metric) is not None
        notes.append(chance_note)
    checkpoint = (
        rows["checkpoint"].astype(str).to_numpy()
        if "checkpoint" in rows.columns
        else np.array([f"loss={v:.6g}" for v in column(loss_column)])
    )
    return LawData(
        source=source,
        task=task,
        metric=metric,
        loss=column(loss_column),
        budget=budget,
        y=y.to_numpy(float),
        n_eval=column("n_eval"),
        n_correct=column("n_correct"),
        checkpoint=checkpoint,
        subset_seed=column("subset_seed"),
        flops=column("flops"),
        params=column("params"),
        tokens=column("tokens"),
        d0=float(d0),
        chance=float(chance),
        chance_known=chance_known,
        notes=tuple(notes),
        loss_unit=loss_unit,
    )


def resolve_d0(d0: float | None, shots: np.ndarray) -> tuple[float, str | None]:
    """D0 defaults to the few-shot example count (min 2): E(D) in log D needs D0 > 1."""
    if d0 is not None:
        if not d0 >= 2:
            raise UserError(f"--d0 must be at least 2 (got {d0})")
        return float(d0), None
    known = shots[np.isfinite(shots)]
    if known.size == 0:
        return 2.0, "D0 = 2 (no 'shots' on few-shot rows; set fit.d0 to change)"
    return float(max(2.0, np.max(known))), None


def _resolve_chance(task: str, metric: str, y: np.ndarray, loss: np.ndarray) -> tuple[float, str]:
    """A task's declared chance level (B's prior is centred there), else the weakest third of rows
    (still at chance): a user's task, or a toy task."""
    known = chance_level(task, metric)
    if known is not None:
        return known, f"chance level {known:g} ({task}/{metric})"
    weakest = y[loss >= np.quantile(loss, 2 / 3)]
    value = float(np.median(weakest)) if weakest.size else float(np.median(y))
    if not math.isfinite(value):
        value = 0.0
    return value, f"chance level {value:.3g} estimated from the weakest third of rows (pass --chance to set)"
