"""Consolidate a sweep's cell records into the results table, and report where a sweep stands.

The table has exactly the :data:`emergence.results_table.RESULT_COLUMNS` followed by one column per
metric (known metrics first, in their usual order), one row per finished task cell, sorted by
checkpoint, task, budget and subset seed so two runs of the same sweep give the same file. A row's
``pretrain_loss`` is joined from its checkpoint's loss cell. Unknown values (tokens, FLOPs of a
checkpoint without metadata; the subset seed of a few-shot row) are empty, never invented. Failed
cells are not rows: they show in ``status``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from emergence.errors import UserError
from emergence.results_table import COUNT_COLUMNS, KNOWN_METRICS, NUMERIC_COLUMNS, RESULT_COLUMNS
from emergence.sweep.plan import loss_key
from emergence.sweep.store import Store, read_json


def _check_out(out: str | Path) -> Store:
    store = Store(out)
    if not store.out.is_dir():
        raise UserError(f"sweep output folder not found: {out}")
    if not (store.out / "sweep.json").is_file() and not store.cells.is_dir():
        raise UserError(f"{out}: not a sweep output folder (no sweep.json or cells/)")
    return store


def _manifest(store: Store) -> dict | None:
    """``sweep.json`` ({} before a run has written it, or when it is not an object); None when it
    does not parse."""
    data = read_json(store.out / "sweep.json")
    if data is None and (store.out / "sweep.json").exists():
        return None
    return data if isinstance(data, dict) else {}


def incomplete_cells(out: str | Path) -> list[str]:
    """One line per cell the table would lack: a record file that is corrupt (named by path), a cell
    recorded as failed, a planned cell (sweep.json) with no record yet, a finished cell's checkpoint
    without its pretraining loss. Empty when the table is whole."""
    store = _check_out(out)
    records, corrupt = store.scan_records()
    lines = [f"corrupt record {path} (truncated or not a cell record; rerun the sweep to redo it)"
             for path in corrupt]
    done = [r for r in records.values() if r.get("status") == "done"]
    losses = {loss_key(r["config"]) for r in done if "pretrain_loss" not in r["row"]}
    for key in sorted(losses):
        loss = store.loss_record(key)
        if loss is None or loss["status"] != "done":
            why = f"failed: {loss.get('error', '')}" if loss else "no record"
            lines.append(f"pretraining loss {store.loss_path(key)} {why}")
    manifest = _manifest(store)
    if manifest is None:
        lines.append(f"corrupt {store.out / 'sweep.json'}: the plan is unreadable, so missing cells cannot "
                     "be named (a `sweep run` rewrites it)")
    cells = (manifest or {}).get("cells", [])
    bad = {path.stem for path in corrupt}
    for cell in cells:
        if not isinstance(cell, dict) or "key" not in cell:
            continue
        key, label = cell["key"], cell.get("label", cell["key"])
        status = records.get(key, {}).get("status")
        if status == "failed":
            lines.append(f"failed cell {label} ({store.record_path(key)}): {records[key].get('error', '')}")
        elif status != "done" and key not in bad:
            lines.append(f"missing cell {label}: no record {store.record_path(key)}")
    return lines


def results_table(out: str | Path) -> pd.DataFrame:
    """One row per finished cell: the fixed columns (with ``pretrain_bits_per_byte`` after
    ``pretrain_loss`` when the sweep's ``loss.unit`` is bits-per-byte), then the metric columns."""
    store = _check_out(out)
    config = (_manifest(store) or {}).get("config", {})
    in_bytes = (config.get("loss") or {}).get("unit") == "bits-per-byte"
    rows, losses = [], {}
    for rec in store.records().values():
        if rec.get("status") == "done":
            row = rec["row"]
            if "pretrain_loss" not in row or in_bytes:  # rows recorded before loss cells carry their own
                key = loss_key(rec["config"])
                if key not in losses:
                    losses[key] = store.loss_record(key) or {}
                row = {"pretrain_loss": losses[key].get("loss"), **row}
                if in_bytes:
                    row["pretrain_bits_per_byte"] = losses[key].get("bits_per_byte")
            rows.append(row)
    fixed = list(RESULT_COLUMNS)
    if in_bytes:
        fixed.insert(fixed.index("pretrain_loss") + 1, "pretrain_bits_per_byte")
    metrics = sorted(
        {k for r in rows for k in r if k not in fixed},
        key=lambda m: (KNOWN_METRICS.index(m) if m in KNOWN_METRICS else len(KNOWN_METRICS), m),
    )
    frame = pd.DataFrame([{c: r.get(c) for c in (*fixed, *metrics)} for r in rows], columns=[*fixed, *metrics])
    for column in (*(c for c in NUMERIC_COLUMNS if c in fixed), "seconds", *metrics):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    for column in COUNT_COLUMNS:  # whole numbers print as such (empty where unknown), not as 16.0
        frame[column] = frame[column].round().astype("Int64")
    for column in ("checkpoint", "task", "method", "config_hash", "code_version"):
        frame[column] = frame[column].astype(str)
    order = ["checkpoint", "task", "budget", "subset_seed", "config_hash"]
    return frame.sort_values(order, na_position="first", kind="mergesort").reset_index(drop=True)


@dataclass(frozen=True)
class SweepStatus:
    total: int | None  # cells in the plan (None when no run has written sweep.json yet)
    done: int
    running: int
    failed: int
    pending: int | None
    failures: tuple[tuple[str, str, str], ...]  # (key, label, error)
    running_cells: tuple[tuple[str, str, str], ...]  # (key, label, host:pid)


def sweep_status(out: str | Path) -> SweepStatus:
    store = _check_out(out)
    manifest = _manifest(store)
    if manifest is None:
        raise UserError(f"{store.out / 'sweep.json'}: not valid JSON (truncated or corrupt; `sweep run` rewrites it)")
    labels = {c["key"]: c["label"] for c in manifest.get("cells", [])}
    keys = set(labels) if labels else None
    records = {k: v for k, v in store.records().items() if keys is None or k in keys}
    done = sum(r.get("status") == "done" for r in records.values())
    failed = [
        (k, labels.get(k, k), r.get("error", "")) for k, r in records.items() if r.get("status") == "failed"
    ]
    live = {k: v for k, v in store.running().items() if (keys is None or k in keys) and k not in records}
    running = tuple(
        (k, labels.get(k, k), f"{v.get('host', '?')}:{v.get('pid', '?')}") for k, v in sorted(live.items())
    )
    total = len(labels) if labels else None
    pending = None if total is None else total - done - len(failed) - len(running)
    return SweepStatus(total, done, len(running), len(failed), pending, tuple(failed), running)


def format_status(status: SweepStatus) -> str:
    total = "?" if status.total is None else str(status.total)
    pending = "?" if status.pending is None else str(status.pending)
    lines = [
        f"cells: {total}  done: {status.done}  running: {status.running}  failed: {status.failed}  pending: {pending}"
    ]
    lines += [f"  running {key}  {label}  ({who})" for key, label, who in status.running_cells]
    lines += [f"  failed  {key}  {label}: {error}" for key, label, error in status.failures]
    return "\n".join(lines)
