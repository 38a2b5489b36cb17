"""Launcher and ledger overhead of `sweep run --workers` on the tiny sweep (results/bench/sweep_overhead.md).

ledger    what working by checkpoint adds inside a runner, per cell: one write of the worker's state
          file (cell started) and a share of the checkpoint's claim and release (one per
          checkpoint, shared by its cells), timed alone in a loop on a fresh folder;
launcher  the tiny sweep as one ``sweep run`` process and as ``sweep run --workers 1`` (the launcher
          with one worker: one more process and its polling, without workers competing for CPUs),
          each into a fresh output folder with a warm compilation cache, alternating; the difference
          of the wall times is the launcher's cost, paid once per sweep (and per worker start).

    python scripts/bench_launch.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TINY = REPO / "configs" / "sweeps" / "tiny.yaml"


def ledger_ms_per_cell(folder: Path, cells_per_checkpoint: int, repeats: int = 200) -> tuple[float, float]:
    """(the state write per cell, checkpoint claim + release per cell) in ms."""
    from emergence.sweep.store import Store
    from emergence.sweep.workers import WorkerState

    store = Store(folder, ttl=60)
    state = WorkerState(store, "0", worker="0/1")
    started = time.perf_counter()
    for i in range(repeats):
        state.update(checkpoint="c", cell=f"cell {i}", done=i, failed=0)
    writes = (time.perf_counter() - started) / repeats
    state.close("finished")
    started = time.perf_counter()
    for i in range(repeats):
        store.claim(f"ckpt-{i}").release()
    claim = (time.perf_counter() - started) / repeats / cells_per_checkpoint
    return writes * 1000, claim * 1000


def sweep_wall(out: Path, env: dict[str, str], workers: int | None) -> float:
    cmd = [sys.executable, "-m", "emergence.cli", "sweep", "run", str(TINY), f"out={out}"]
    cmd += ["--workers", str(workers)] if workers else []
    started = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each kind")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_launch_") as tmp:
        writes, claim = ledger_ms_per_cell(Path(tmp) / "ledger", cells_per_checkpoint=5)
        print(f"ledger: worker-state write {writes:.2f} ms/cell + checkpoint claim {claim:.2f} ms/cell "
              f"(one per 5 cells) = {writes + claim:.2f} ms/cell")
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO), "EMERGENCE_CODE_VERSION": "bench",
               "JAX_COMPILATION_CACHE_DIR": str(Path(tmp) / "cache"),
               "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
        sweep_wall(Path(tmp) / "warmup", env, None)  # fills the compilation cache
        walls: dict[str, list[float]] = {"plain": [], "workers1": []}
        for i in range(args.rounds):
            walls["plain"].append(sweep_wall(Path(tmp) / f"plain{i}", env, None))
            walls["workers1"].append(sweep_wall(Path(tmp) / f"w1_{i}", env, 1))
    for kind, values in walls.items():
        print(f"{kind}: wall {', '.join(f'{v:.2f}' for v in values)} s; median {statistics.median(values):.2f} s")
    extra = statistics.median(walls["workers1"]) - statistics.median(walls["plain"])
    print(f"launcher: {extra:+.2f} s per sweep (median difference) = {extra / 10 * 1000:+.0f} ms/cell over 10 cells")


if __name__ == "__main__":
    main()
