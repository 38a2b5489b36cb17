"""The results-table contract (DESIGN.md "Results row"): one row per sweep cell.

Whoever produces a results table (our sweep runner, a user's own script) writes exactly these
columns; the law fitter reads exactly these. Metric columns (``acc``, ``mcc``, ``em_strict``,
``em_flexible``, …) come after the fixed ones, one per metric. Unknown values are NaN, never made up.
"""

from __future__ import annotations

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

#: Fixed columns that hold numbers (the rest are ids, names and hashes); ``seconds`` is timing, not data.
NUMERIC_COLUMNS: tuple[str, ...] = (
    "params",
    "tokens",
    "flops",
    "pretrain_loss",
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

#: Finetuning methods; "none" marks few-shot (budget 0) rows.
METHODS: tuple[str, ...] = ("none", "lora", "full")
