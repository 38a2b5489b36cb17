"""The domain of every results-table column, checked when a table is read.

Why a separate gate: :func:`emergence.laws.table.read_results` made sure numeric columns *parse*,
but a value that parses can still be impossible, and each such value ran on into the fit and ended
as a crash deep in NumPyro (an infinite ``pretrain_loss``) or as NaN and nonsense with exit 0 (a
negative count, an accuracy of 7). And a metric cell with text in it was coerced to NaN and dropped
with at most a note, so a typo silently shrank the data. Here each such cell is a
:class:`~emergence.errors.UserError` naming the file, the row (as a spreadsheet shows it: the header
is row 1) and the column. Blank cells stay allowed: DESIGN.md writes unknown values as empty.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from emergence.errors import UserError
from emergence.sweep.schema import COUNT_COLUMNS, KNOWN_METRICS, RESULT_COLUMNS

# column -> (test on a finite value, what it must be)
_RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    "pretrain_loss": (lambda v: v > 0, "a loss > 0 (nats/token)"),
    "params": (lambda v: v > 0, "a parameter count > 0"),
    "tokens": (lambda v: v >= 0, "a token count >= 0"),
    "flops": (lambda v: v >= 0, "a FLOP count >= 0"),
    "mcc": (lambda v: -1 <= v <= 1, "in [-1, 1]"),
    **{m: (lambda v: 0 <= v <= 1, "in [0, 1]") for m in KNOWN_METRICS if m != "mcc"},
}
_FIXED_RANGES = ("pretrain_loss", "params", "tokens", "flops")


def check_domains(frame: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """``frame`` with its metric columns made numeric; a value outside its column's domain is a
    UserError naming file, row and column. Numeric fixed columns must already be floats."""
    for column in _FIXED_RANGES:
        if column in frame.columns:
            _check(frame[column], column, path, _RANGES[column])
    for column in COUNT_COLUMNS:
        if column in frame.columns:
            _check(frame[column], column, path, (lambda v: v >= 0 and float(v).is_integer(), "a whole number >= 0"))
    if "n_eval" in frame.columns and "n_correct" in frame.columns:
        over = (frame["n_correct"] > frame["n_eval"]).to_numpy()
        if over.any():
            row = int(np.flatnonzero(over)[0])
            raise UserError(
                f"{path}: row {row + 2}, column 'n_correct': {frame['n_correct'].iloc[row]:g} is more than "
                f"n_eval {frame['n_eval'].iloc[row]:g}"
            )
    for column in _metric_like(frame):
        frame[column] = _strict_numeric(frame[column], column, path)
        rule = _RANGES.get(column, (lambda v: True, ""))
        _check(frame[column], column, path, rule)
    return frame


def _metric_like(frame: pd.DataFrame) -> list[str]:
    """The known metric columns, and any other column after the fixed ones that holds a number:
    a text column (notes, a run name) is left alone, a number column with a typo in it is not."""
    out = []
    for column in frame.columns:
        if column in RESULT_COLUMNS:
            continue
        numeric = pd.api.types.is_numeric_dtype(frame[column])
        if column in KNOWN_METRICS or numeric or pd.to_numeric(frame[column], errors="coerce").notna().any():
            out.append(column)
    return out


def _strict_numeric(series: pd.Series, column: str, path: str | Path) -> pd.Series:
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
    values = series.to_numpy(dtype=float)
    for row, value in enumerate(values):
        if math.isnan(value):
            continue  # unknown
        if not math.isfinite(value):
            raise UserError(f"{path}: row {row + 2}, column '{column}': {value} is not a finite number")
        if not test(value):
            raise UserError(f"{path}: row {row + 2}, column '{column}': {value:g} is not {what}")
