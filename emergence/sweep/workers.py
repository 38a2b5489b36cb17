"""Each runner's state in the sweep's folder, so `sweep status` and the launcher show every worker.

``OUT/workers/<name>.json`` says where a runner is (its checkpoint and cell), what it has done and
which checkpoints it loaded. The runner rewrites it when it starts a cell or loads a checkpoint (one
write per cell: the counts are those of the cells before), when it waits and when it ends, and it
has a claim's heartbeat; a file that says "running" but is stale by the claims' rule (no heartbeat for
``ttl``, or its process gone on this host) belongs to a lost worker: killed, preempted, its node gone.
Nothing reads these files to decide what to run: the cell records and claims stay the only ledger.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from emergence.sweep.store import HOST, Heartbeat, Store, read_json


class WorkerState:
    def __init__(self, store: Store, name: str, **info: Any):
        self.store = store
        self.path = store.out / "workers" / f"{name}.json"
        self.state: dict[str, Any] = {
            "name": name,
            "host": HOST,
            "pid": os.getpid(),
            "started": time.time(),
            "state": "running",
            "checkpoint": None,
            "cell": None,
            "done": 0,
            "failed": 0,
            "loaded": [],
            **info,
        }
        self.update()
        self._heartbeat = Heartbeat(self.path, store.ttl)

    def update(self, **changes: Any) -> None:
        self.state.update(changes, updated=time.time())
        self.store.write(self.path, self.state)

    def close(self, state: str, **changes: Any) -> None:
        self._heartbeat.stop()
        self.update(state=state, cell=None, **changes)


def read_workers(store: Store) -> list[dict[str, Any]]:
    """Every worker's last state; "lost" replaces "running" where its heartbeat stopped."""
    out = []
    for path in sorted((store.out / "workers").glob("*.json"), key=_natural):
        info = read_json(path)
        if isinstance(info, dict):
            if info.get("state") == "running" and store.is_stale(path):
                info["state"] = "lost"
            out.append(info)
    return out


def format_workers(workers: list[dict[str, Any]]) -> list[str]:
    lines = []
    for w in workers:
        where = f"  {w['cell']}" if w.get("cell") else (f"  {w['checkpoint']}" if w.get("checkpoint") else "")
        loaded = ", ".join(w.get("loaded", [])) or "-"
        lines.append(
            f"  worker {w.get('name')}  {w.get('host')}:{w.get('pid')}  {w.get('state')}{where}  "
            f"done {w.get('done', 0)}, failed {w.get('failed', 0)}; loaded {loaded}"
        )
    return lines


def _natural(path: Path) -> tuple:
    stem = path.stem
    return (0, int(stem), "") if stem.isdigit() else (1, 0, stem)
