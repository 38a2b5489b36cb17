"""Load, join, filter and clean public models' score tables (the ObsScaling CSV format).

The authors' tables carry metadata columns (``Model``, ``Model Family``, ``Model Size (B)``,
``Pretraining Data Size (T)``, ``FLOPs (1E21)``) next to benchmark scores. Everything that can go wrong
with a user's table is a :class:`~emergence.errors.UserError` naming the file, row and column, and every
row we drop or distrust is *reported* (``ObsTable.notes``), never silently fixed: the data has real
quirks (models without FLOPs, sizes that disagree with the name, duplicated rows).

The authors' own tables ship in ``emergence/data/obsscaling/`` (Apache-2.0, PROVENANCE.md there), so
the commands run on a fresh clone or install: one is the default, a bare file name picks another.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from emergence.errors import UserError

MODEL_COL = "Model"
FAMILY_COL = "Model Family"
SIZE_COL = "Model Size (B)"
DATA_COL = "Pretraining Data Size (T)"

#: The ObsScaling release's tables, shipped inside the package; the base-model table is the default.
SHIPPED_TABLES = Path(__file__).resolve().parents[2] / "data" / "obsscaling"
DEFAULT_TABLE = SHIPPED_TABLES / "base_llm_benchmark_eval.csv"

#: The paper's standard benchmarks, plus the instruct table's spelling of Winograd.
DEFAULT_BENCHMARKS: tuple[str, ...] = (
    "MMLU",
    "ARC-C",
    "HellaSwag",
    "Winograd",
    "Winogrande",
    "TruthfulQA",
    "GSM8K",
    "XWinograd",
    "HumanEval",
)

#: The paper's default base-model set: 21 families minus three models released after pre-registration.
PAPER_BASE_FAMILIES: tuple[str, ...] = (
    "BLOOM", "CodeLlama", "DeepSeek-Coder", "Falcon", "GPT-Neo/J", "Gemma", "Llama", "Llama-2",
    "Llama-3", "MPT", "Mistral", "Mixtral", "OPT", "Phi", "Pythia", "Qwen", "Qwen1.5", "StarCoder",
    "StarCoder2", "XGLM", "Yi",
)  # fmt: skip
PAPER_BASE_EXCLUDED: tuple[str, ...] = (
    "Qwen/Qwen1.5-110B",
    "mistralai/Mixtral-8x22B-v0.1",
    "mistralai/Mistral-Nemo-Base-2407",
)

_LINE_LEFT, _LINE_RIGHT = "__line_data__", "__line_join__"
_FLOPS_RE = re.compile(r"^FLOPs(?:\s*\(\s*1E(\d+)\s*\))?$", re.IGNORECASE)
_NAME_SIZE_RE = re.compile(r"(?<![\dx.])(\d+(?:[._]\d+)?)([bBmM])(?![a-zA-Z])")


@dataclass
class ObsTable:
    """A cleaned table plus the story of how it got that way (dropped rows, warnings)."""

    frame: pd.DataFrame
    source: str
    flops_col: str | None
    flops_unit: float  # multiply the FLOPs column by this to get FLOPs
    notes: list[str] = field(default_factory=list)
    #: column → (file it came from, hidden column holding each row's line number in that file)
    origins: dict[str, tuple[str, str]] = field(default_factory=dict)

    def flops(self) -> np.ndarray:
        """Training FLOPs per row (NaN where unknown), in FLOPs."""
        if self.flops_col is None:
            return np.full(len(self.frame), np.nan)
        return self.frame[self.flops_col].to_numpy(float) * self.flops_unit

    def params_b(self) -> np.ndarray:
        """Parameter count in billions (NaN where unknown)."""
        if SIZE_COL not in self.frame:
            return np.full(len(self.frame), np.nan)
        return self.frame[SIZE_COL].to_numpy(float)


def table_path(path: str | Path) -> Path:
    """The table a user means: the file at PATH, else the shipped table of that bare name."""
    path = Path(path)
    if not path.exists() and len(path.parts) == 1 and (SHIPPED_TABLES / path.name).is_file():
        return SHIPPED_TABLES / path.name
    return path


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a CSV as strings so that number parsing (and its errors) is ours, per cell."""
    path = Path(path)
    if not path.is_file():
        shipped = ", ".join(sorted(p.name for p in SHIPPED_TABLES.glob("*.csv")))
        hint = f" (the shipped tables: {shipped})" if len(path.parts) == 1 else ""
        raise UserError(f"file not found: {path}{hint}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not a readable CSV ({str(err).splitlines()[0]})") from None
    if MODEL_COL not in frame.columns:
        raise UserError(f"{path}: missing column {MODEL_COL!r}")
    return frame


def to_numeric(frame: pd.DataFrame, column: str, source: str, line_col: str | None = None) -> pd.Series:
    """Parse one column as floats: empty cells become NaN, anything else non-numeric is an error.

    The error names the file, the line in that file (when ``line_col`` holds line numbers), the
    model and the column, so the user can go straight to the cell.
    """
    if column not in frame.columns:
        raise UserError(f"{source}: missing column {column!r}")
    raw = frame[column]
    if pd.api.types.is_numeric_dtype(raw):
        return raw.astype(float)
    text = pd.Series([("" if v is None else str(v)).strip() for v in raw], index=raw.index, dtype=object)
    empty = text.str.lower().isin({"", "nan", "na", "n/a"})
    values = pd.to_numeric(text.where(~empty, None), errors="coerce")
    bad = values.isna() & ~empty
    if bad.any():
        idx = int(np.flatnonzero(bad.to_numpy())[0])
        model = frame[MODEL_COL].iloc[idx] if MODEL_COL in frame else "?"
        line = int(frame[line_col].iloc[idx]) if line_col and line_col in frame else idx + 2
        raise UserError(
            f"{source}: line {line} (model {model!r}), column {column!r}: "
            f"non-numeric value {text.iloc[idx]!r}"
        )
    return values.astype(float)


def _dedupe(frame: pd.DataFrame, source: str, notes: list[str]) -> pd.DataFrame:
    dup = frame[MODEL_COL].duplicated(keep="first")
    for model in frame.loc[dup, MODEL_COL]:
        notes.append(f"dropped duplicate row for model {model!r} in {source} (kept the first)")
    return frame.loc[~dup]


def load_table(path: str | Path | None, join: str | Path | None = None) -> ObsTable:
    """Load DATA.csv (None: the shipped default table), optionally inner-joined on ``Model`` with
    OTHER.csv (DATA's columns win)."""
    path = DEFAULT_TABLE if path is None else table_path(path)
    join = None if join is None else table_path(join)
    notes: list[str] = []
    left = read_csv(path)
    left[_LINE_LEFT] = np.arange(len(left)) + 2  # header is line 1
    origins = {c: (str(path), _LINE_LEFT) for c in left.columns}
    source = str(path)
    left = _dedupe(left, str(path), notes)
    if join is not None:
        right = read_csv(join)
        right[_LINE_RIGHT] = np.arange(len(right)) + 2
        right = _dedupe(right, str(join), notes)
        shared = [c for c in right.columns if c in left.columns and c != MODEL_COL]
        origins.update({c: (str(join), _LINE_RIGHT) for c in right.columns if c not in shared})
        for col in shared:
            notes.append(f"column {col!r} is in both tables; using the one from {path}")
        right = right.drop(columns=shared)
        missing = sorted(set(left[MODEL_COL]) - set(right[MODEL_COL]))
        for model in missing:
            notes.append(f"dropped model {model!r}: in {path} but not in {join}")
        left = left.merge(right, on=MODEL_COL, how="inner", sort=False)
        source = f"{path} ⋈ {join}"
    flops_col, unit = None, 1.0
    for col in left.columns:
        match = _FLOPS_RE.match(col.strip())
        if match:
            flops_col, unit = col, 10.0 ** int(match.group(1) or 0)
            break
    frame = left.reset_index(drop=True)
    return ObsTable(frame, source, flops_col, unit, notes, origins)


def select_models(table: ObsTable, families: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> ObsTable:
    """Keep only the given families (if any) and drop the excluded models, noting unknown names."""
    frame = table.frame
    if families:
        if FAMILY_COL not in frame:
            raise UserError(f"{table.source}: --families needs a {FAMILY_COL!r} column")
        unknown = sorted(set(families) - set(frame[FAMILY_COL]))
        if unknown:
            raise UserError(f"{table.source}: unknown model families: {', '.join(unknown)}")
        frame = frame[frame[FAMILY_COL].isin(families)]
    if exclude:
        unknown = sorted(set(exclude) - set(table.frame[MODEL_COL]))
        if unknown:
            table.notes.append(f"--exclude-models names not in the table: {', '.join(unknown)}")
        for model in frame.loc[frame[MODEL_COL].isin(exclude), MODEL_COL]:
            table.notes.append(f"excluded model {model!r} (--exclude-models)")
        frame = frame[~frame[MODEL_COL].isin(exclude)]
    table.frame = frame.reset_index(drop=True)
    return table


def parse_numeric_columns(table: ObsTable, columns: list[str]) -> None:
    """Turn the named columns (and the metadata columns present) into floats, in place."""
    meta = [c for c in (SIZE_COL, DATA_COL, table.flops_col) if c and c in table.frame]
    for col in dict.fromkeys(list(columns) + meta):
        file, line_col = table.origins.get(col, (table.source, None))
        table.frame[col] = to_numeric(table.frame, col, file, line_col)


def _size_from_name(model: str) -> float | None:
    """Parameter count (billions) written in a model's name, e.g. ``opt-6.7b``; None for MoE names."""
    name = model.split("/")[-1]
    if re.search(r"\d+x\d+", name, re.IGNORECASE):
        return None
    match = _NAME_SIZE_RE.search(name)
    if not match:
        return None
    value = float(match.group(1).replace("_", "."))
    return value / 1000.0 if match.group(2).lower() == "m" else value


def check_quirks(table: ObsTable) -> None:
    """Note (not fix) metadata that disagrees with itself: a size unlike the name, FLOPs ≠ 6·N·D."""
    frame = table.frame
    for _, row in frame.iterrows():
        model = row[MODEL_COL]
        size = row.get(SIZE_COL, np.nan)
        named = _size_from_name(str(model))
        if named and size == size and not 0.7 <= float(size) / named <= 1.3:
            table.notes.append(
                f"model {model!r}: {SIZE_COL} is {size:g} but the name says {named:g}B (kept as given)"
            )
        if table.flops_col is None:
            continue
        flops = row[table.flops_col]
        if flops != flops:
            table.notes.append(
                f"model {model!r}: no FLOPs (test under a FLOPs cutoff; left out of the ln-FLOPs baseline)"
            )
            continue
        tokens = row.get(DATA_COL, np.nan)
        if size == size and tokens == tokens and size > 0:
            expected = 6.0 * size * 1e9 * tokens * 1e12
            actual = flops * table.flops_unit
            if expected > 0 and abs(math.log(actual / expected)) > math.log(1.2):
                table.notes.append(
                    f"model {model!r}: FLOPs {actual:.3g} differ from 6·N·D = {expected:.3g} (kept as given)"
                )
            if tokens * 1e12 / (size * 1e9) > 5e4:
                table.notes.append(
                    f"model {model!r}: {tokens:g}T tokens for {size:g}B params is implausible (kept as given)"
                )


def default_benchmarks(columns: list[str], target: str) -> list[str]:
    """The standard benchmarks present in the table; GSM8K is dropped when the target is GSM8K-like."""
    chosen = [b for b in DEFAULT_BENCHMARKS if b in columns and b != target]
    if "gsm8k" in target.lower():
        chosen = [b for b in chosen if b.lower() != "gsm8k"]
    return chosen
