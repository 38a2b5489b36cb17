"""One cell's work: few-shot evaluation (budget 0), or finetune on the budget subset then evaluate.

The base model stays loaded across the cells of a checkpoint and is never changed: a LoRA cell trains
fresh adapters over a clone and is evaluated with them folded into a new model over the base's arrays
(a float32 base; a bfloat16 one is evaluated with its adapters unfused, :mod:`emergence.train.lora`);
a full-finetuning cell trains a copy of the weights (the trainer donates the arrays it updates). The
finetuning run lives in the cell's work folder, so an interrupted cell resumes from its last orbax
checkpoint when a runner takes it over.

Timings separate the sweep's cost from the engines' compute: ``train`` is the trainer's step loop,
``eval`` the scoring; ``finetune_call``, ``adapter_load`` and ``eval_call`` are the wall times of the
engine calls around them; the rest of a cell's wall time is the sweep's overhead (scripts/bench_sweep.py).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emergence import harness
from emergence.models.registry import LoadedModel
from emergence.sweep.config import SweepConfig, finetune_config
from emergence.sweep.plan import Cell


class CellLog:
    """Timestamped lines appended to the cell's run.log (flushed, so a killed run leaves its trace);
    no path: lines go nowhere (a multi-host job's processes but the first)."""

    def __init__(self, path: Path | None):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = None if path is None else path.open("a", encoding="utf-8")

    def __call__(self, message: str) -> None:
        if self.handle is not None:
            self.handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
            self.handle.flush()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


@dataclass
class CellOutcome:
    metrics: dict[str, float]
    n_eval: int
    n_correct: int
    records: list[dict[str, Any]] = field(repr=False)
    timings: dict[str, float] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    cleanup: list[Path] = field(default_factory=list)  # deletable once the cell's record is written


def fresh_copy(loaded: LoadedModel, *, copy_arrays: bool) -> LoadedModel:
    """A model object independent of ``loaded`` (new variables; new arrays when they will be donated)."""
    from flax import nnx

    return dataclasses.replace(loaded, model=nnx.clone(loaded.model, arrays=copy_arrays))


def run_cell(cell: Cell, cfg: SweepConfig, base: LoadedModel, work: Path, log: CellLog) -> CellOutcome:
    """Evaluate ``base`` on the cell's task, after finetuning a copy of it when the budget is > 0."""
    from emergence.eval.evaluate import scorer

    # how the cell scores its model; a learning curve scores the same way on its own split
    eval_options = cfg.eval.options(shots=cell.shots, limit=cell.limit)
    timings: dict[str, float] = {"train": 0.0, "eval": 0.0}
    cleanup: list[Path] = []
    train_info: dict[str, Any] = {}
    if cell.budget == 0:
        model = base
    else:
        from emergence.train.adapters import load_adapter
        from emergence.train.finetune import CHECKPOINT_DIR, eval_curve, run_finetune, trained_model
        from emergence.train.throughput import describe

        mesh = cfg.checkpoint_mesh(cell.checkpoint)
        ft_cfg = finetune_config(cfg, cell.checkpoint.model, cell.task, cell.budget, cell.subset_seed, mesh)
        curve = {}
        if ft_cfg.eval_every is not None:
            curve = {"evaluator": scorer(cell.task, split=ft_cfg.eval_split, **eval_options)}
        ft_dir = work / "finetune"
        t0 = time.perf_counter()
        log(
            f"finetune {ft_cfg.method} D={cell.budget} seed={cell.subset_seed} lr={ft_cfg.optim.lr} -> {ft_dir}"
        )
        result = run_finetune(
            ft_cfg,
            ft_dir,
            loaded=base if ft_cfg.method == "lora" else fresh_copy(base, copy_arrays=True),
            on_log=lambda m: log(f"step {m['step']} loss {m['loss']:.4f} lr {m['lr']:.3g}  {describe(m)}"),
            on_plan=lambda p: log(
                f"plan: {p.total_steps} steps, {p.n_train} training examples ({p.data_note})"
            ),
            on_eval=lambda line: log(f"step {line['step']} {ft_cfg.eval_split} {line['eval']}"),
            **curve,
        )
        timings["finetune_call"] = time.perf_counter() - t0
        if result.history:
            timings["train"] = float(result.history[-1]["seconds"])
        train_info = {
            "steps": result.total_steps,
            "resumed_from": result.start_step,
            "already_done": result.already_done,
            "data": result.data_note,
            "final_loss": result.history[-1]["loss"] if result.history else None,
        }
        if curve:
            train_info["curve"] = eval_curve(ft_dir)
        if not ft_cfg.keep_checkpoints:
            cleanup.append(ft_dir / CHECKPOINT_DIR)
        t0 = time.perf_counter()
        if result.trainer is not None:  # trained just now: no reload
            trained = trained_model(result.trainer, base.model, result.lora)
            model = dataclasses.replace(base, model=trained)
        else:  # finished by an earlier runner: the saved adapter is the result
            model = load_adapter(fresh_copy(base, copy_arrays=False), ft_dir)
        timings["adapter_load"] = time.perf_counter() - t0
    log(f"evaluate {cell.task} shots={cell.shots} limit={cell.limit}")
    t0 = time.perf_counter()
    res = _evaluate(model, cell, cfg, eval_options)
    timings["eval_call"] = time.perf_counter() - t0
    timings["eval"] = float(res.seconds)
    log(f"metrics {res.metrics} n={res.n} correct={res.n_correct} ({res.seconds:.2f}s)")
    return CellOutcome(dict(res.metrics), res.n, res.n_correct, res.records, timings, train_info, cleanup)


def _evaluate(model: LoadedModel, cell: Cell, cfg: SweepConfig, options: dict[str, Any]):
    """The cell's scores: a built-in task through :func:`~emergence.eval.evaluate.evaluate`, a
    ``harness:NAME`` task through the harness with our backend (same shots, limit, batch sizes)."""
    name = harness.task_name(cell.task)
    if name is None:
        from emergence.eval.evaluate import evaluate

        return evaluate(model, cell.task, **options)
    from emergence.harness.run import evaluate_tasks

    sizes = {k: options[k] for k in ("batch_size", "batch_tokens", "generation_rows")}
    [result], _ = evaluate_tasks(model, [name], shots=cell.shots, limit=cell.limit, include=cfg.eval.harness_include,
                                 seed=cfg.eval.fewshot_seed, **sizes)
    return result


def results_row(cell: Cell, base: LoadedModel, outcome: CellOutcome, seconds: float, version: str):
    """The cell's row of the results table (docs/design.md): the checkpoint's scale (the config's
    values, else what the checkpoint says), the cell's coordinates, its metrics. ``pretrain_loss`` is
    joined from the checkpoint's loss cell when the table is consolidated."""
    meta, spec = base.meta, cell.checkpoint
    row: dict[str, Any] = {
        "checkpoint": cell.checkpoint_id,
        "params": spec.params if spec.params is not None else meta.params,
        "tokens": spec.tokens if spec.tokens is not None else meta.tokens,
        "flops": spec.flops if spec.flops is not None else meta.flops,
        "task": cell.task,
        "shots": cell.shots,
        "budget": cell.budget,
        "subset_seed": cell.subset_seed,
        "method": cell.method,
        "n_eval": outcome.n_eval,
        "n_correct": outcome.n_correct,
        "seconds": round(seconds, 4),
        "config_hash": cell.key,
        # a hub revision is a branch or tag; the commit it resolved to says which weights were scored
        "code_version": version if meta.commit is None else f"{version} model@{meta.commit}",
    }
    row.update(outcome.metrics)
    return row
