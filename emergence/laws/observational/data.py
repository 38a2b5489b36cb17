"""Public models' score tables (the ObsScaling CSV format): load, join, filter, parse, report quirks.

The tables carry metadata columns (``Model``, ``Model Family``, ``Model Size (B)``,
``Pretraining Data Size (T)``, ``FLOPs (1E21)``) next to benchmark scores. A bad table is a
:class:`~emergence.errors.UserError` naming the file, line and column, and every row we drop or distrust
is *reported* (``ObsTable.notes``), never silently fixed: the real tables have models without FLOPs,
sizes that disagree with the name, duplicated rows. The authors' tables ship in
``emergence/data/obsscaling/`` (Apache-2.0, PROVENANCE.md there): one is the default, a bare file name
picks another.
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

SHIPPED_TABLES = Path(__file__).resolve().parents[2] / "data" / "obsscaling"
DEFAULT_TABLE = SHIPPED_TABLES / "base_llm_benchmark_eval.csv"

#: The paper's standard benchmarks, plus the instruct table's spelling of Winograd.
DEFAULT_BENCHMARKS: tuple[str, ...] = (
    "MMLU", "ARC-C", "HellaSwag", "Winograd", "Winogrande", "TruthfulQA", "GSM8K", "XWinograd", "HumanEval",
)  # fmt: skip

#: The paper's default base-model set: 21 families minus three models released after pre-registration.
PAPER_BASE_FAMILIES: tuple[str, ...] = (
    "BLOOM", "CodeLlama", "DeepSeek-Coder", "Falcon", "GPT-Neo/J", "Gemma", "Llama", "Llama-2",
    "Llama-3", "MPT", "Mistral", "Mixtral", "OPT", "Phi", "Pythia", "Qwen", "Qwen1.5", "StarCoder",
    "StarCoder2", "XGLM", "Yi",
)  # fmt: skip
PAPER_BASE_EXCLUDED: tuple[str, ...] = (
    "Qwen/Qwen1.5-110B", "mistralai/Mixtral-8x22B-v0.1", "mistralai/Mistral-Nemo-Base-2407",
)  # fmt: skip

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
        """Training FLOPs per row (NaN where unknown)."""
        if self.flops_col is None:
            return np.full(len(self.frame), np.nan)
        return self.frame[self.flops_col].to_numpy(float) * self.flops_unit


def table_path(path: str | Path) -> Path:
    """The table a user means: the file at PATH, else the shipped table of that bare name."""
    path = Path(path)
    if not path.exists() and len(path.parts) == 1 and (SHIPPED_TABLES / path.name).is_file():
        return SHIPPED_TABLES / path.name
    return path


def _read(path: Path, line_col: str, notes: list[str]) -> pd.DataFrame:
    """Read a CSV as strings (number parsing and its errors are ours, per cell), numbering its lines
    in ``line_col`` and dropping (noted) duplicate models."""
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
    frame[line_col] = np.arange(len(frame)) + 2  # header is line 1
    dup = frame[MODEL_COL].duplicated(keep="first")
    for model in frame.loc[dup, MODEL_COL]:
        notes.append(f"dropped duplicate row for model {model!r} in {path} (kept the first)")
    return frame.loc[~dup]


def load_table(path: str | Path | None, join: str | Path | None = None) -> ObsTable:
    """Load DATA.csv (None: the shipped default table), optionally inner-joined on ``Model`` with
    OTHER.csv (DATA's columns win)."""
    path = DEFAULT_TABLE if path is None else table_path(path)
    notes: list[str] = []
    frame = _read(path, _LINE_LEFT, notes)
    origins = dict.fromkeys(frame.columns, (str(path), _LINE_LEFT))
    source = str(path)
    if join is not None:
        join = table_path(join)
        right = _read(join, _LINE_RIGHT, notes)
        shared = [c for c in right.columns if c in frame.columns and c != MODEL_COL]
        notes += [f"column {col!r} is in both tables; using the one from {path}" for col in shared]
        lost = sorted(set(frame[MODEL_COL]) - set(right[MODEL_COL]))
        notes += [f"dropped model {model!r}: in {path} but not in {join}" for model in lost]
        right = right.drop(columns=shared)
        origins.update(dict.fromkeys(right.columns, (str(join), _LINE_RIGHT)))
        frame = frame.merge(right, on=MODEL_COL, how="inner", sort=False)
        source = f"{path} ⋈ {join}"
    flops_col = next((c for c in frame.columns if _FLOPS_RE.match(c.strip())), None)
    unit = 10.0 ** int(_FLOPS_RE.match(flops_col.strip()).group(1) or 0) if flops_col else 1.0
    return ObsTable(frame.reset_index(drop=True), source, flops_col, unit, notes, origins)


def select_models(table: ObsTable, families: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> None:
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


def parse_numeric_columns(table: ObsTable, columns: list[str]) -> None:
    """Turn the named columns (and the metadata columns present) into floats, in place: empty cells
    become NaN, and any other non-numeric cell is an error naming its file, line, model and column."""
    meta = [c for c in (SIZE_COL, DATA_COL, table.flops_col) if c and c in table.frame]
    frame = table.frame
    for col in dict.fromkeys([*columns, *meta]):
        text = frame[col].str.strip()
        empty = text.str.lower().isin({"", "nan", "na", "n/a"})
        values = pd.to_numeric(text.where(~empty, None), errors="coerce")
        bad = np.flatnonzero((values.isna() & ~empty).to_numpy())
        if bad.size:
            file, line_col = table.origins[col]
            i = bad[0]
            model, line, value = frame[MODEL_COL].iloc[i], frame[line_col].iloc[i], text.iloc[i]
            raise UserError(
                f"{file}: line {line} (model {model!r}), column {col!r}: non-numeric value {value!r}"
            )
        frame[col] = values.astype(float)


def _size_from_name(model: str) -> float | None:
    """Parameter count (billions) written in a model's name, e.g. ``opt-6.7b``; None for MoE names."""
    name = model.split("/")[-1]
    match = None if re.search(r"\d+x\d+", name, re.IGNORECASE) else _NAME_SIZE_RE.search(name)
    if not match:
        return None
    value = float(match.group(1).replace("_", "."))
    return value / 1000.0 if match.group(2).lower() == "m" else value


def check_quirks(table: ObsTable) -> None:
    """Note (not fix) metadata that disagrees with itself: a size unlike the name, FLOPs ≠ 6·N·D."""
    for _, row in table.frame.iterrows():
        model, size, tokens = row[MODEL_COL], row.get(SIZE_COL, np.nan), row.get(DATA_COL, np.nan)
        named, said = _size_from_name(str(model)), []
        if named and size == size and not 0.7 <= float(size) / named <= 1.3:
            said.append(f"{SIZE_COL} is {size:g} but the name says {named:g}B (kept as given)")
        flops = row[table.flops_col] if table.flops_col else 0.0
        if flops != flops:
            said.append("no FLOPs (test under a FLOPs cutoff; left out of the ln-FLOPs baseline)")
        elif table.flops_col and size == size and tokens == tokens and size > 0:
            expected, actual = 6.0 * size * 1e9 * tokens * 1e12, flops * table.flops_unit
            if expected > 0 and abs(math.log(actual / expected)) > math.log(1.2):
                said.append(f"FLOPs {actual:.3g} differ from 6·N·D = {expected:.3g} (kept as given)")
            if tokens * 1e12 / (size * 1e9) > 5e4:
                said.append(f"{tokens:g}T tokens for {size:g}B params is implausible (kept as given)")
        table.notes += [f"model {model!r}: {text}" for text in said]


def default_benchmarks(columns: list[str], target: str) -> list[str]:
    """The standard benchmarks present in the table; GSM8K is dropped when the target is GSM8K-like."""
    chosen = [b for b in DEFAULT_BENCHMARKS if b in columns and b != target]
    return [b for b in chosen if b.lower() != "gsm8k"] if "gsm8k" in target.lower() else chosen


def benchmark_columns(table: ObsTable, requested: tuple[str, ...], target: str = "") -> list[str]:
    """The predictor columns: those requested, else the standard ones present; each must exist."""
    chosen = list(requested) or default_benchmarks(list(table.frame.columns), target)
    for bench in chosen:
        if bench not in table.frame:
            raise UserError(f"{table.source}: missing benchmark column {bench!r}")
    if target and target in chosen:
        raise UserError(f"target {target!r} cannot also be a predictor (--benchmarks)")
    if not chosen:
        raise UserError(f"{table.source}: no benchmark columns to build capabilities from; use --benchmarks")
    return chosen
