"""Where a sweep cell's wall time goes: the runner's and the engines' functions, timed in warm sweeps.

``scripts/bench_sweep.py`` splits a cell into compute and overhead; this names the pieces of the
overhead. It wraps the functions below with timers, runs the sweep once cold (compilation), then
``--repeats`` warm sweeps into fresh folders, and prints each function's total and per-cell time in
the last warm sweep. Nested functions are counted in each wrapper (``run_finetune`` includes
``Trainer.fit``); functions run by the background committer (adapter save, records, claim release)
are off the cell's critical path.

    .venv/bin/python scripts/probe_sweep_parts.py [--config configs/sweeps/tiny.yaml] [--repeats 3]

``--files`` instead times, one by one, the files a finetuned cell writes (60 cells of the tiny sweep's
sizes), and creating a bare 100-byte file, the filesystem's unit cost.

``--fold MODEL`` instead times what evaluating a LoRA cell's model costs on MODEL (a fold of rank-4
q/v adapters, as a :class:`SplitModel` and as a module, against ``nnx.merge`` and ``split_static``
of the whole model), ten calls each.
"""

from __future__ import annotations

import argparse
import collections
import functools
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TOTALS: collections.Counter = collections.Counter()
CALLS: collections.Counter = collections.Counter()


def timed(owner, name: str) -> None:
    """Replace ``owner.name`` by a wrapper that adds its wall time to TOTALS."""
    fn = getattr(owner, name)
    label = f"{owner.__name__.rsplit('.', 1)[-1]}.{name}"

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            TOTALS[label] += time.perf_counter() - start
            CALLS[label] += 1

    setattr(owner, name, wrapper)


def probe_cells(config: Path, repeats: int) -> None:
    from emergence.eval import evaluate
    from emergence.sweep import runner, store
    from emergence.sweep.config import load_sweep_config
    from emergence.train import adapters, finetune

    for owner, names in (
        (runner.Runner, ("_execute", "_base", "_loss", "_commit")),
        (runner, ("run_cell", "CellLog")),
        (store.Store, ("claim", "record", "write_record")),
        (store.Claim, ("release", "owned")),
        (finetune, ("run_finetune", "lora_parts", "_check_run_dir", "task_examples")),
        (finetune.Trainer, ("fit", "from_parts")),
        (finetune.FinetuneResult, ("evaluation_model",)),
        (adapters, ("save_lora_adapter",)),
        (evaluate, ("evaluate", "run_requests")),
    ):
        for name in names:
            timed(owner, name)
    with tempfile.TemporaryDirectory(prefix="probe_sweep_") as tmp:
        walls = []
        for i in range(repeats + 1):
            TOTALS.clear()
            CALLS.clear()
            cfg = load_sweep_config(config, [f"out={Path(tmp) / str(i)}"])
            start = time.perf_counter()
            report = runner.Runner(cfg, echo=lambda _: None).run()
            walls.append(time.perf_counter() - start)
    cells = report.done_here
    print(f"{config}: sweeps of {cells} cells, wall ms/cell " + ", ".join(f"{w / cells * 1e3:.0f}" for w in walls)
          + " (the first compiles); per function in the last:")  # fmt: skip
    for label, total in TOTALS.most_common():
        print(
            f"  {label:<36} {total * 1e3:8.1f} ms in {CALLS[label]:3d} calls = {total / cells * 1e3:7.2f} ms/cell"
        )


def probe_files(cells: int = 60) -> None:
    import numpy as np

    from emergence.eval.evaluate import write_records
    from emergence.sweep.cell import CellLog
    from emergence.sweep.store import Store
    from emergence.train.adapters import save_lora_adapter
    from emergence.train.config import LoraConfig

    examples = [{"doc_id": i, "loglikelihoods": [-1.0, -2.0], "pred": 0, "gold": 1} for i in range(12)]
    record = {"status": "done", "row": {"acc": 0.75}, "timings": {"train": 0.03}}
    weights = {"w": np.zeros(4000, np.float32)}  # a tiny-sweep adapter's size
    parts = dict.fromkeys(("claim", "run log", "adapter", "records", "record", "release"), 0.0)
    with tempfile.TemporaryDirectory(prefix="probe_files_") as tmp:
        store = Store(tmp, ttl=60)
        start = time.perf_counter()
        for i in range(cells):
            (Path(tmp) / f"bare{i}").write_bytes(b"x" * 100)
        bare = (time.perf_counter() - start) / cells
        for i in range(cells):
            key, t = f"cell{i}", [time.perf_counter()]
            claim = store.claim(key)
            t.append(time.perf_counter())
            log = CellLog(store.work_dir(key) / "run.log")
            log("start")
            t.append(time.perf_counter())
            save_lora_adapter(store.work_dir(key) / "finetune", LoraConfig(), {}, weights)
            t.append(time.perf_counter())
            write_records(store.work_dir(key) / "records.jsonl", examples)
            t.append(time.perf_counter())
            log("done")
            log.close()
            store.write_record(key, record)
            t.append(time.perf_counter())
            claim.release()
            t.append(time.perf_counter())
            for name, a, b in zip(parts, t[:-1], t[1:], strict=True):
                parts[name] += b - a
    print(
        f"creating a 100-byte file: {bare * 1e3:.2f} ms; a finetuned cell's files, ms each (mean of {cells}):"
    )
    print("  " + ", ".join(f"{name} {total / cells * 1e3:.2f}" for name, total in parts.items())
          + f"; all {sum(parts.values()) / cells * 1e3:.2f}")  # fmt: skip


def probe_fold(model_ref: str) -> None:
    import numpy as np
    from flax import nnx

    from emergence.models.registry import load_model
    from emergence.models.static_graph import split_static
    from emergence.train.lora import base_split, fold_into_base, folded_split
    from emergence.train.mesh import place_on_default_mesh

    base = load_model(model_ref).model
    place_on_default_mesh(base)
    split = base_split(base)
    adapter = {}
    for path in split.index:
        if path.endswith(("q_proj.kernel", "v_proj.kernel")):
            kernel = split.flat[split.index[path]][1].get_value()
            linear = path.rsplit(".kernel", 1)[0]
            adapter[f"{linear}.lora.lora_a"] = np.zeros((kernel.shape[0], 4), np.float32)
            adapter[f"{linear}.lora.lora_b"] = np.zeros((4, kernel.shape[1]), np.float32)
    module = fold_into_base(base, adapter, 2.0)
    steps = {
        "folded_split (what a sweep evaluates)": lambda: folded_split(base, adapter, 2.0),
        "fold_into_base (split + module)": lambda: fold_into_base(base, adapter, 2.0),
        "nnx.merge of the whole model": lambda: nnx.merge(split.graphdef, split.state, copy=True),
        "split_static of a module": lambda: split_static(module),
    }
    print(f"{model_ref}: {len(adapter) // 2} adapted kernels, ms per call (fastest of 3 rounds of 10)")
    for label, step in steps.items():
        step()
        rounds = []
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(10):
                step()
            rounds.append((time.perf_counter() - start) / 10)
        print(f"  {label:<40} {min(rounds) * 1e3:7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "sweeps" / "tiny.yaml")
    parser.add_argument("--repeats", type=int, default=3, help="warm sweeps after the cold one")
    parser.add_argument("--fold", metavar="MODEL", help="time the evaluation model's parts on MODEL instead")
    parser.add_argument(
        "--files", action="store_true", help="time a finetuned cell's files one by one instead"
    )
    args = parser.parse_args()
    if args.files:
        probe_files()
    elif args.fold:
        probe_fold(args.fold)
    else:
        probe_cells(args.config, args.repeats)


if __name__ == "__main__":
    main()
