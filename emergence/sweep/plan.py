"""Expand a sweep config into cells with stable keys, and estimate what the grid will cost.

A cell is one (checkpoint, task, budget, subset seed). Its key is a hash of its *resolved* config —
everything that changes its numbers (model reference, task, shots, eval limit, budget, seed, method and
every finetuning hyperparameter, loss corpus), nothing that does not (output folder, batch sizes for
evaluation, data folder location). Rerunning a config therefore finds its finished cells, a changed
learning rate makes new ones, and two hosts with different mount points agree on every key (local
checkpoints and corpora enter by content: :mod:`emergence.sweep.identity`).

Few-shot cells (budget 0) do not depend on a training subset, so there is one per (checkpoint, task),
with ``subset_seed`` empty (NaN in the table) rather than one copy per seed. A checkpoint's pretraining
loss is a cell of its own (:class:`LossCell`), run before its task cells and joined into their rows
when the table is consolidated, so no task cell waits on it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emergence import harness
from emergence.data.tasks import TaskSpec, get_task
from emergence.errors import UserError
from emergence.sweep.config import CheckpointSpec, SweepConfig, checkpoint_id, finetune_config, is_hub_id
from emergence.sweep.identity import checkpoint_identity, loss_identity

EFFECTIVE_FLOPS = 100e12  # per accelerator, for the hours column of the estimate


@dataclass(frozen=True)
class Cell:
    key: str
    checkpoint: CheckpointSpec
    checkpoint_id: str
    task: str
    shots: int
    limit: int | None
    budget: int
    subset_seed: int | None
    method: str  # none | lora | full
    resolved: dict[str, Any]
    est_flops: float | None = None

    def label(self) -> str:
        seed = "-" if self.subset_seed is None else str(self.subset_seed)
        return f"{self.checkpoint_id} {self.task} D={self.budget} seed={seed}"


@dataclass(frozen=True)
class LossCell:
    """A checkpoint's pretraining loss; its key is the name its record had before it was a cell."""

    key: str
    checkpoint: CheckpointSpec
    checkpoint_id: str
    resolved: dict[str, Any]  # {"checkpoint": identity, "loss": loss identity}

    def label(self) -> str:
        return f"{self.checkpoint_id} pretraining loss"


def loss_key(resolved: dict[str, Any]) -> str:
    """The key of the loss cell of a task cell's checkpoint, from the task cell's resolved config."""
    return stable_hash({"checkpoint": resolved["checkpoint"], "loss": resolved["loss"]})


def with_loss_cells(cells: list[Cell]) -> list[LossCell | Cell]:
    """``cells`` in order, each checkpoint's loss cell before its first task cell."""
    out: list[LossCell | Cell] = []
    seen: set[str] = set()
    for cell in cells:
        if cell.checkpoint_id not in seen:
            seen.add(cell.checkpoint_id)
            resolved = {"checkpoint": cell.resolved["checkpoint"], "loss": cell.resolved["loss"]}
            out.append(LossCell(loss_key(resolved), cell.checkpoint, cell.checkpoint_id, resolved))
        out.append(cell)
    return out


def stable_hash(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def expand(cfg: SweepConfig) -> list[Cell]:
    """Every cell, in plan order: checkpoint, task, budget, seed (a runner keeps one model loaded)."""
    cells: list[Cell] = []
    loss = loss_identity(cfg)
    dtype, param_dtype = cfg.precision()
    # float32 parameters were the only kind before param_dtype existed: absent then, keys stay valid
    precision = {"dtype": dtype} | ({} if param_dtype == "float32" else {"param_dtype": param_dtype})
    for ckpt in cfg.checkpoints:
        params = _params(ckpt)
        identity = checkpoint_identity(ckpt)
        for task in cfg.tasks:
            spec, default_shots, split = _task_facts(task.name, cfg.eval.harness_include)
            few_shots = next(s for s in (task.shots, cfg.eval.shots, default_shots) if s is not None)
            limit = task.limit if task.limit is not None else cfg.eval.limit
            task_ft = cfg.task_finetune(task.name)  # merged once per task, not per cell
            # what a finetuned cell's learning curve scores; absent when off, so earlier keys stay valid
            curve = None
            if task_ft.eval_every is not None:
                curve = {"every": task_ft.eval_every, "split": task_ft.eval_split}
            for budget in sorted(cfg.task_budgets(task)):
                for seed in (None,) if budget == 0 else cfg.subset_seeds:
                    method = "none" if budget == 0 else task_ft.method
                    shots = few_shots if budget == 0 or task.finetuned_shots is None else task.finetuned_shots
                    resolved: dict[str, Any] = {
                        "checkpoint": identity,
                        "task": task.name,
                        "split": split,
                        "shots": shots,
                        "limit": limit,
                        "budget": budget,
                        "subset_seed": seed,
                        "method": method,
                        "eval": {"fewshot_seed": cfg.eval.fewshot_seed, "source": cfg.eval.source},
                        "loss": loss,
                        **precision,
                    }
                    if budget > 0:
                        raw = finetune_config(cfg, ckpt.model, task.name, budget, seed).identity()
                        raw.pop("model")  # the checkpoint enters by content, above
                        resolved["finetune"] = raw
                        if curve is not None:
                            resolved["finetune_curve"] = curve
                    cells.append(
                        Cell(
                            key=stable_hash(resolved),
                            checkpoint=ckpt,
                            checkpoint_id=checkpoint_id(ckpt),
                            task=task.name,
                            shots=shots,
                            limit=limit,
                            budget=budget,
                            subset_seed=seed,
                            method=method,
                            resolved=resolved,
                            est_flops=_estimate(cfg, spec, shots, limit, budget, params),
                        )
                    )
    return cells


def _task_facts(task: str, harness_include: str | None) -> tuple[TaskSpec | None, int, str]:
    """(built-in spec or None, default shots, evaluation split) of a task line."""
    name = harness.task_name(task)
    if name is None:
        spec = get_task(task)
        return spec, spec.default_shots, spec.eval_split
    from emergence.harness.tasks import default_shots, eval_split

    return None, default_shots(name, harness_include), eval_split(name, harness_include)


def parse_shard(text: str | None, option: str = "--shard") -> tuple[int, int]:
    """``"i/n"`` (0-based i) → (i, n); None → the whole sweep."""
    if not text:
        return 0, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UserError(f"{option} {text!r}: expected i/n, e.g. 0/4") from None
    if n <= 0 or not 0 <= i < n:
        raise UserError(f"{option} {text!r}: need 0 <= i < n")
    return i, n


def _params(ckpt: CheckpointSpec) -> float | None:
    if ckpt.params is not None:
        return float(ckpt.params)
    path = Path(ckpt.model)
    if is_hub_id(ckpt.model) or not (path / "config.json").is_file():
        return None
    from emergence.models.families import config_from_hf

    try:
        return float(config_from_hf(json.loads((path / "config.json").read_text())).num_params())
    except Exception:  # noqa: BLE001 - the estimate is best effort; loading reports real problems
        return None


def _estimate(
    cfg: SweepConfig, task: TaskSpec | None, shots: int, limit: int | None, budget: int, params: float | None
) -> float | None:
    """Forward 2N per evaluated token, training 6N (full) or 4N (LoRA) per trained token, from the
    task's typical size (none for the toy tasks: no estimate)."""
    if params is None or task is None or task.eval_docs is None or task.example_tokens is None:
        return None
    per_example = task.example_tokens
    docs = task.eval_docs if limit is None else min(limit, task.eval_docs)
    eval_tokens = docs * (per_example * (shots + 1) + (task.max_gen_toks if task.is_generation else 0))
    flops = 2 * params * eval_tokens
    if budget > 0:
        ft = cfg.task_finetune(task.name)
        from emergence.train.budgets import plan_steps

        steps = plan_steps(
            budget, ft.batch_size * ft.grad_accum, steps=ft.steps, epochs=ft.epochs, min_steps=ft.min_steps
        )
        train_tokens = steps * ft.batch_size * ft.grad_accum * per_example
        flops += (6 if ft.method == "full" else 4) * params * train_tokens
    return float(flops)


def format_plan(cfg: SweepConfig, cells: list[Cell], *, rows: int | None = None) -> str:
    """The plan as a plain-text table plus a cost summary (an estimate: sizes are typical, not measured)."""
    from emergence.sweep.placement import mesh_label

    shown = cells if rows is None else cells[:rows]
    # names are shown whole (a harness task's or a hub checkpoint's name is what the user must recognise)
    ckpt_width = max([len("checkpoint"), *(len(c.checkpoint_id) for c in shown)])
    task_width = max([len("task"), *(len(c.task) for c in shown)])
    names = f"{{:{ckpt_width}}}  {{:{task_width}}}"
    row = "{:16}  " + names + "  {:>5}  {:>6}  {:>4}  {:6}  {:>9}  {:>7}"
    header = row.format("key", "checkpoint", "task", "shots", "budget", "seed", "method", "est PFLOP", "mesh")
    lines = [header, "-" * len(header)]
    for c in shown:
        seed = "-" if c.subset_seed is None else str(c.subset_seed)
        est = "?" if c.est_flops is None else f"{c.est_flops / 1e15:.3g}"
        mesh = mesh_label(cfg.checkpoint_mesh(c.checkpoint))
        fields = (c.key, c.checkpoint_id, c.task, c.shots, c.budget, seed, c.method, est, mesh)
        lines.append(row.format(*fields))
    if len(shown) < len(cells):
        lines.append(f"... {len(cells) - len(shown)} more cells")
    known = [c.est_flops for c in cells if c.est_flops is not None]
    total = sum(known)
    n_ft = sum(c.budget > 0 for c in cells)
    lines.append("")
    lines.append(
        f"{cfg.name}: {len(cells)} cells ({len(cells) - n_ft} few-shot, {n_ft} finetuned) over "
        f"{len(cfg.checkpoints)} checkpoints × {len(cfg.tasks)} tasks; output {cfg.out}"
    )
    unknown = len(cells) - len(known)
    lines.append(
        f"estimated cost: {total / 1e15:.4g} PFLOP ≈ {total / EFFECTIVE_FLOPS / 3600:.3g} accelerator-hours at "
        f"{EFFECTIVE_FLOPS / 1e12:.0f} TFLOP/s effective"
        + (f" (+{unknown} cells of unknown size: give their 'params')" if unknown else "")
        + f", plus the pretraining loss of {len(cfg.checkpoints)} checkpoints on {cfg.loss.tokens} tokens"
    )
    return "\n".join(lines)


def format_checkpoints(cfg: SweepConfig) -> str:
    """Each checkpoint's scale as the config states it (no weights are read): parameters, pretraining
    tokens and FLOPs, the x-axis of a forecast in compute; ``?`` where the config leaves it unknown."""
    row = "{:28}  {:>10}  {:>10}  {:>17}"
    header = row.format("checkpoint", "params", "tokens", "pretraining FLOPs")
    lines = [header, "-" * len(header)]
    for ckpt in cfg.checkpoints:
        scale = (f"{v:.4g}" if v is not None else "?" for v in (ckpt.params, ckpt.tokens, ckpt.flops))
        lines.append(row.format(checkpoint_id(ckpt)[:28], *scale))
    return "\n".join(lines)
