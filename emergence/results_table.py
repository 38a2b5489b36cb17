"""The results table (docs/design.md "Results row"): the hinge between running and fitting.

The contract lives here, below both ``sweep/`` and ``laws/``, because whoever produces a table (our
sweep runner, a user's own script) writes these columns and the law fitter reads them. Reading is
the single gate for a table whoever produced it: a value that parses can still be impossible (an
infinite loss, a negative count, an accuracy of 7, text in a metric cell), and would otherwise end as
a crash deep in NumPyro or as a fit of nonsense, so each is a :class:`~emergence.errors.UserError`
naming the file, the row (as a spreadsheet shows it: the header is row 1) and the column.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from emergence.errors import UserError
from emergence.fileio import atomic_path

#: Fixed columns, in order. Metric columns follow.
RESULT_COLUMNS: tuple[str, ...] = (
    "checkpoint",
    "params",
    "tokens",
    "flops",
    "pretrain_loss",
    "task",
    "shots",
    "budget",
    "subset_seed",
    "method",
    "n_eval",
    "n_correct",
    "seconds",
    "config_hash",
    "code_version",
)

#: The pretraining loss in each unit a table can carry it in (``loss.unit`` of a sweep, ``fit.loss_unit``):
#: ``pretrain_loss`` always; ``pretrain_bits_per_byte``, comparable across tokenizers, when asked for.
LOSS_COLUMNS: dict[str, str] = {"nats-per-token": "pretrain_loss", "bits-per-byte": "pretrain_bits_per_byte"}

#: Fixed columns that hold numbers (the rest are ids, names and hashes); ``seconds`` is timing, not data.
NUMERIC_COLUMNS: tuple[str, ...] = (
    "params",
    "tokens",
    "flops",
    "pretrain_loss",
    "pretrain_bits_per_byte",
    "shots",
    "budget",
    "subset_seed",
    "n_eval",
    "n_correct",
)

#: Numeric columns that are whole numbers (printed as such; empty where unknown).
COUNT_COLUMNS: tuple[str, ...] = ("params", "shots", "budget", "subset_seed", "n_eval", "n_correct")

#: Metric columns the project knows; any other numeric column after the fixed ones is a metric too.
KNOWN_METRICS: tuple[str, ...] = ("acc", "acc_macro", "mcc", "em_strict", "em_flexible")

#: Formats a results table is written in (``results --format``).
TABLE_FORMATS: tuple[str, ...] = ("parquet", "csv")

#: Columns without which a table says nothing about emergence (no law can be fitted to it).
REQUIRED_COLUMNS: tuple[str, ...] = ("pretrain_loss", "task", "budget")

# column -> (test on a finite value, what it must be)
_RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    "pretrain_loss": (lambda v: v > 0, "a loss > 0 (nats/token)"),
    "pretrain_bits_per_byte": (lambda v: v > 0, "a loss > 0 (bits/byte)"),
    "params": (lambda v: v > 0 and float(v).is_integer(), "a whole parameter count > 0"),
    "tokens": (lambda v: v >= 0, "a token count >= 0"),
    "flops": (lambda v: v >= 0, "a FLOP count >= 0"),
    **{c: (lambda v: v >= 0 and float(v).is_integer(), "a whole number >= 0") for c in COUNT_COLUMNS if c != "params"},
    "mcc": (lambda v: -1 <= v <= 1, "in [-1, 1]"),
    **{m: (lambda v: 0 <= v <= 1, "in [0, 1]") for m in KNOWN_METRICS if m != "mcc"},
}


def read_results(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet results table with numeric columns as floats; a missing or unreadable
    file, a missing required column or an impossible value is a UserError naming file, row and column."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"results table not found: {path}")
    try:
        frame = pd.read_parquet(path) if _is_parquet(path) else pd.read_csv(path)
    except Exception as err:  # noqa: BLE001 - any parse failure is the user's file
        raise UserError(f"{path}: cannot read results table ({type(err).__name__}: {err})") from err
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(
            f"{path}: missing column '{missing[0]}' (results tables need {', '.join(REQUIRED_COLUMNS)})"
        )
    fixed = [c for c in NUMERIC_COLUMNS if c in frame.columns]
    for column in fixed:
        frame[column] = _numeric(frame[column], column, path)
    for column in fixed:
        _check(frame[column], column, path, _RANGES.get(column, (lambda v: True, "")))
    if "n_eval" in frame.columns and "n_correct" in frame.columns:
        over = (frame["n_correct"] > frame["n_eval"]).to_numpy()
        if over.any():
            row = int(np.flatnonzero(over)[0])
            raise UserError(
                f"{path}: row {row + 2}, column 'n_correct': {frame['n_correct'].iloc[row]:g} is more than "
                f"n_eval {frame['n_eval'].iloc[row]:g}"
            )
    for column in metric_columns(frame, holding_text=True):
        frame[column] = _numeric(frame[column], column, path)
        _check(frame[column], column, path, _RANGES.get(column, (lambda v: True, "")))
    return frame


def write_results(frame: pd.DataFrame, path: str | Path, fmt: str | None = None) -> Path:
    """Write a results table atomically (a reader never sees half of it) as ``fmt``, or, when not
    given, as :func:`read_results` reads it back: Parquet for ``.parquet``/``.pq``, CSV otherwise."""
    path = Path(path)
    fmt = fmt or ("parquet" if _is_parquet(path) else "csv")
    if fmt not in TABLE_FORMATS:
        raise UserError(f"--format must be one of {', '.join(TABLE_FORMATS)}, got {fmt!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        if fmt == "csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    return path


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def metric_columns(frame: pd.DataFrame, *, holding_text: bool = False) -> list[str]:
    """Metric columns: the known ones, then any other column after the fixed schema that holds numbers.
    ``holding_text`` (while reading): also a text column with a number in it, whose typo must be
    named, not dropped; a pure text column (notes, a run name) is never a metric."""

    def holds_numbers(column: str) -> bool:
        if pd.api.types.is_numeric_dtype(frame[column]):
            return True
        return holding_text and bool(pd.to_numeric(frame[column], errors="coerce").notna().any())

    known = [m for m in KNOWN_METRICS if m in frame.columns]
    fixed = {*RESULT_COLUMNS, *LOSS_COLUMNS.values(), *known}
    return known + [c for c in frame.columns if c not in fixed and holds_numbers(c)]


def _numeric(series: pd.Series, column: str, path: str | Path) -> pd.Series:
    """The column as floats; blank cells (and spelled-out blanks) become NaN, anything else that is
    not a number is a UserError."""
    if pd.api.types.is_bool_dtype(series):
        raise UserError(f"{path}: column '{column}': expected numbers, got true/false values")
    converted = pd.to_numeric(series, errors="coerce")
    text = series.astype(str).str.strip()
    blank = series.isna() | (text == "") | text.str.lower().isin(("nan", "na", "n/a", "none", "null"))
    bad = converted.isna() & ~blank
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise UserError(f"{path}: row {row + 2}, column '{column}': not a number: {series.iloc[row]!r}")
    return converted.astype(float)


def _check(series: pd.Series, column: str, path: str | Path, rule: tuple[Callable[[float], bool], str]) -> None:
    test, what = rule
    for row, value in enumerate(series.to_numpy(dtype=float)):
        if math.isnan(value):
            continue  # unknown
        if not math.isfinite(value):
            raise UserError(f"{path}: row {row + 2}, column '{column}': {value} is not a finite number")
        if not test(value):
            raise UserError(f"{path}: row {row + 2}, column '{column}': {value:g} is not {what}")
