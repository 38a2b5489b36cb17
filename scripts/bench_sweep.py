"""Per-cell overhead of the sweep runner on the tiny CI sweep: everything except training and evaluation compute.

Runs configs/sweeps/tiny.yaml several times in one process, each into a fresh output folder:
  cold — a new process's first sweep (compilation happens inside the train / eval compute),
  warm — the same sweep again (``--repeats`` times, the fastest counts), jitted steps already
         compiled: the steady state of a long sweep.
Each cell record carries timings (emergence/sweep/cell.py); the wall time of the run is split into
  compute      the trainer's step loop + evaluation scoring + the pretraining-loss forward passes,
  engine I/O   the rest of the engine calls: training data, LoRA setup, the trainer's final orbax
               checkpoint, adapter save + load, eval request building (emergence/train, emergence/eval),
  model load   reading each checkpoint once,
  sweep        everything the sweep itself adds: plan, claims + heartbeats, model copies, records,
               logs, status checks (emergence/sweep).
Overhead = wall − compute, as a fraction of the wall time; the goal is ≤ 5 %.

``--rename-latency-ms L`` makes every ``os.replace`` (each atomic write: records, adapters, run files)
sleep L ms first, as on a network filesystem where a rename is a round trip to the server: it shows
which writes sit on a cell's critical path.

    python scripts/bench_sweep.py [--config configs/sweeps/tiny.yaml] [--repeats 3] [--rename-latency-ms L] [overrides...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def measure(config: Path, overrides: list[str], out: Path) -> dict[str, float]:
    from emergence.sweep.config import load_sweep_config
    from emergence.sweep.runner import Runner

    cfg = load_sweep_config(config, [*overrides, f"out={out}"])
    started = time.perf_counter()
    report = Runner(cfg, echo=lambda _: None).run()
    wall = time.perf_counter() - started
    parts = dict.fromkeys(("train", "eval", "loss", "load", "engine_io"), 0.0)
    for path in [*(out / "cells").glob("*.json"), *(out / "loss").glob("*.json")]:  # task and loss cells
        t = json.loads(path.read_text())["timings"]
        parts["train"] += t.get("train", 0.0)
        parts["eval"] += t.get("eval", 0.0)
        parts["loss"] += t.get("loss", 0.0)
        parts["load"] += t["load"]
        parts["engine_io"] += (t.get("finetune_call", 0.0) - t.get("train", 0.0)) + t.get("adapter_load", 0.0)
        parts["engine_io"] += t.get("eval_call", 0.0) - t.get("eval", 0.0)
    compute = parts["train"] + parts["eval"] + parts["loss"]
    sweep = wall - compute - parts["engine_io"] - parts["load"]
    return {"cells": report.done_here, "wall": wall, "compute": compute, **parts, "sweep": sweep}


def io_floor(out: Path, cell: Path, repeats: int = 50) -> float:
    """Seconds per cell of the file work every finished cell must do, and nothing else: take and
    release its claim, write its run log, per-example records, adapter and record (the sizes of the
    warm sweep's last cell, read back from ``cell``)."""
    import numpy as np

    from emergence.eval.evaluate import write_records
    from emergence.sweep.cell import CellLog
    from emergence.sweep.store import Store, read_json
    from emergence.train.adapters import save_lora_adapter
    from emergence.train.config import LoraConfig

    record = read_json(cell)
    examples = [
        json.loads(line) for line in (cell.parent / cell.stem / "records.jsonl").read_text().splitlines()
    ]
    adapter = cell.parent / cell.stem / "finetune" / "adapter_model.safetensors"
    weights = {"w": np.zeros(adapter.stat().st_size // 4 if adapter.exists() else 1, np.float32)}
    store = Store(out / "floor", ttl=60)
    started = time.perf_counter()
    for i in range(repeats):
        key = f"floor{i}"
        claim = store.claim(key)
        log = CellLog(store.work_dir(key) / "run.log")
        log("start")
        write_records(store.work_dir(key) / "records.jsonl", examples)
        save_lora_adapter(store.work_dir(key) / "finetune", LoraConfig(), {}, weights)
        log("done")
        log.close()
        store.write(store.record_path(key), record)
        claim.release()
    return (time.perf_counter() - started) / repeats


def slow_renames(seconds: float) -> None:
    """Every ``os.replace`` in this process sleeps ``seconds`` first (the sleep releases the GIL, as
    waiting for a file server does)."""
    import os

    replace = os.replace

    def slow_replace(src, dst, **kwargs):
        time.sleep(seconds)
        return replace(src, dst, **kwargs)

    os.replace = slow_replace


def show(name: str, m: dict[str, float]) -> None:
    n, wall = m["cells"], m["wall"]
    overhead = wall - m["compute"]
    print(
        f"{name}: {n} cells in {wall:.2f} s ({wall / n * 1000:.0f} ms/cell); compute {m['compute']:.2f} s "
        f"(train {m['train']:.2f}, eval {m['eval']:.2f}, loss {m['loss']:.2f})"
    )
    print(
        f"  overhead {overhead / n * 1000:.0f} ms/cell = {overhead / wall:.1%} of cell time: "
        f"engine I/O {m['engine_io'] / n * 1000:.0f} ms/cell ({m['engine_io'] / wall:.1%}), "
        f"model load {m['load'] / n * 1000:.0f} ms/cell ({m['load'] / wall:.1%}), "
        f"sweep {m['sweep'] / n * 1000:.0f} ms/cell ({m['sweep'] / wall:.1%})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "sweeps" / "tiny.yaml"))
    parser.add_argument("overrides", nargs="*", help="dotted overrides for the config")
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="warm sweeps to run; the fastest counts (this machine's speed drifts from run to run)",
    )
    parser.add_argument(
        "--rename-latency-ms",
        type=float,
        default=0.0,
        help="sleep this long in every os.replace (a network filesystem's round trip); 0 = off",
    )
    args = parser.parse_args()
    if args.rename_latency_ms > 0:
        slow_renames(args.rename_latency_ms / 1000)
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        cold = measure(Path(args.config), args.overrides, Path(tmp) / "cold")
        warms = [
            measure(Path(args.config), args.overrides, Path(tmp) / f"warm{i}")
            for i in range(max(1, args.repeats))
        ]
        if len(warms) > 1:
            print("warm sweeps, ms/cell: " + ", ".join(f"{w['wall'] / w['cells'] * 1000:.0f}" for w in warms))
        fastest = min(range(len(warms)), key=lambda i: warms[i]["wall"])
        warm = warms[fastest]
        warm_dir = Path(tmp) / f"warm{fastest}"
        finetuned = [
            p
            for p in sorted((warm_dir / "cells").glob("*.json"))
            if (p.parent / p.stem / "finetune").is_dir()
        ]
        floor = io_floor(Path(tmp), finetuned[-1] if finetuned else next((warm_dir / "cells").glob("*.json")))
    show("cold (first sweep in a process, compilation included in compute)", cold)
    show("warm (steady state: steps already compiled)", warm)
    print(
        f"per-cell overhead, warm: {(warm['wall'] - warm['compute']) / warm['wall']:.1%} "
        f"(sweep machinery alone {warm['sweep'] / warm['wall']:.1%}); goal <= 5%"
    )
    compute = warm["compute"] / warm["cells"]
    print(
        f"floor: a cell's claim, log, records, adapter and record files alone take {floor * 1000:.1f} ms, "
        f"{floor / (compute + floor):.1%} of a cell computing {compute * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
