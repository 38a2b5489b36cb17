"""Launcher and ledger overhead of `sweep run --workers` on the tiny sweep (results/bench/sweep_overhead.md).

ledger    what working by checkpoint adds inside a runner, per cell: one write of the worker's state
          file (cell started) and a share of the checkpoint's claim and release (one per
          checkpoint, shared by its cells), timed alone in a loop on a fresh folder;
launcher  the tiny sweep as one ``sweep run`` process and as ``sweep run --workers 1`` (the launcher
          with one worker: one more process and its polling, without workers competing for CPUs),
          each into a fresh output folder with a warm compilation cache, alternating; the differences
          of the fastest wall times and of the CPU times (user + system, all processes: less
          sensitive to a loaded machine) are the launcher's cost, paid once per sweep.

    python scripts/bench_launch.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TINY = REPO / "configs" / "sweeps" / "tiny.yaml"


def ledger_ms_per_cell(folder: Path, cells_per_checkpoint: int, batches: int = 10) -> tuple[float, float]:
    """(the state write per cell, checkpoint claim + release per cell) in ms: the fastest of
    ``batches`` batches of 50 (a loaded machine's file creates vary by 10x)."""
    from emergence.sweep.store import Store
    from emergence.sweep.workers import WorkerState

    store = Store(folder, ttl=60)
    state = WorkerState(store, "0", worker="0/1")
    writes, claims = [], []
    for b in range(batches):
        started = time.perf_counter()
        for i in range(50):
            state.update(checkpoint="c", cell=f"cell {i}", done=i, failed=0)
        writes.append((time.perf_counter() - started) / 50)
        started = time.perf_counter()
        for i in range(50):
            store.claim(f"ckpt-{b}-{i}").release()
        claims.append((time.perf_counter() - started) / 50 / cells_per_checkpoint)
    state.close("finished")
    return min(writes) * 1000, min(claims) * 1000


def sweep_run(out: Path, env: dict[str, str], workers: int | None) -> tuple[float, float]:
    """(wall, CPU) seconds of one ``sweep run``, its workers included."""
    cmd = [sys.executable, "-m", "emergence.cli", "sweep", "run", str(TINY), f"out={out}"]
    cmd += ["--workers", str(workers)] if workers else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each kind")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_launch_") as tmp:
        writes, claim = ledger_ms_per_cell(Path(tmp) / "ledger", cells_per_checkpoint=5)
        print(
            f"ledger: worker-state write {writes:.2f} ms/cell + checkpoint claim {claim:.2f} ms/cell "
            f"(one per 5 cells) = {writes + claim:.2f} ms/cell"
        )
        env = {
            **os.environ,
            "JAX_PLATFORMS": "cpu",
            "PYTHONPATH": str(REPO),
            "EMERGENCE_CODE_VERSION": "bench",
            "JAX_COMPILATION_CACHE_DIR": str(Path(tmp) / "cache"),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        }
        sweep_run(Path(tmp) / "warmup", env, None)  # fills the compilation cache
        runs: dict[str, list[tuple[float, float]]] = {"plain": [], "workers1": []}
        for i in range(args.rounds):
            runs["plain"].append(sweep_run(Path(tmp) / f"plain{i}", env, None))
            runs["workers1"].append(sweep_run(Path(tmp) / f"w1_{i}", env, 1))
    for kind, values in runs.items():
        print(
            f"{kind}: wall {', '.join(f'{w:.2f}' for w, _ in values)} s; "
            f"CPU {', '.join(f'{c:.2f}' for _, c in values)} s"
        )
    wall = min(w for w, _ in runs["workers1"]) - min(w for w, _ in runs["plain"])
    cpu = min(c for _, c in runs["workers1"]) - min(c for _, c in runs["plain"])
    print(
        f"launcher (fastest vs fastest): wall {wall:+.2f} s, CPU {cpu:+.2f} s per sweep = "
        f"{wall / 10 * 1000:+.0f} / {cpu / 10 * 1000:+.0f} ms/cell over the tiny sweep's 10 cells"
    )


if __name__ == "__main__":
    main()
