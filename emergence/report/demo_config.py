"""The demo config: one YAML that names the ladder, the sweep, the fit and the backtest's held-out set.

Why one file: ``make demo`` must run the whole method — pretrain → sweep → fit → backtest → forecast
→ report — from a single, readable description, and a typo anywhere must stop it *before* minutes of
pretraining, not after. So everything is checked up front with the project's strict loader
(:mod:`emergence.config`): unknown keys, wrong types, unknown tasks, an empty held-out set. The sweep
section uses the keys of a sweep config (:mod:`emergence.sweep.config`) except those the demo fills in
from the ladder it pretrains (checkpoints, output folder, loss corpus, toy data folder).

The held-out set is the backtest's point: the largest/latest checkpoints, those that show the few-shot
emergence, are removed from the fit and used only for the ground truth. They are named by ladder
model (every checkpoint of the model), by checkpoint id, by a compute threshold, or as the k
checkpoints trained with the most compute. A task may name its own held-out set (``holdout`` in its
entry), since tasks emerge at different compute, and its own finetuning keys (``finetune``), since
tasks differ in how many steps teach their answer format.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from emergence.config import apply_overrides, from_dict, read_yaml, to_dict
from emergence.errors import UserError

#: Sweep-config keys the demo sets itself (from the pretrained ladder and its own folders).
DEMO_OWNED_SWEEP_KEYS = ("name", "out", "checkpoints", "ladder", "tasks")


@dataclass(frozen=True)
class Holdout:
    """Checkpoints kept out of the fit (union of the three ways to name them)."""

    models: tuple[str, ...] = ()  # ladder model names: all their checkpoints
    checkpoints: tuple[str, ...] = ()  # checkpoint ids, e.g. d64-l2@800
    flops_above: float | None = None  # every checkpoint trained with more FLOPs than this
    largest: int = 0  # the k checkpoints trained with the most FLOPs
    # every checkpoint trained with more than 1/lookahead of the FLOPs of the task's first checkpoint
    # past its few-shot elbow: a rule fixed before any fit, so no threshold is tuned on the forecast
    lookahead: float | None = None


@dataclass(frozen=True)
class DemoTask:
    """A toy task: how the sweep evaluates it and which metric/chance level the law is fit on."""

    name: str
    metric: str | None = None  # default: the task's first metric with values
    chance: float | None = None  # centre of the law's prior on B (default: estimated from data)
    shots: int | None = None  # few-shot examples (default: the task's own default)
    finetuned_shots: int | None = None
    limit: int | None = None
    budgets: tuple[int, ...] | None = None  # overrides sweep.budgets for this task
    finetune: dict[str, Any] | None = None  # overrides keys of sweep.finetune for this task
    # this task's own backtest future (default: the demo's holdout). Tasks emerge at different
    # compute, and the check "predicted from checkpoints with >= 2x less compute than the first
    # post-emergence one" is about each task's own emergence
    holdout: Holdout | None = None


@dataclass(frozen=True)
class FitSettings:
    """The emergence-law fit (see ``emergence fit --help``) and the extra backtest protocols."""

    form: str = "log-power"
    likelihood: str = "normal"
    delta: bool = True
    samples: int = 1000
    warmup: int = 1000
    chains: int = 4
    seed: int = 0
    d0: float | None = None  # default: the few-shot example count (min 2)
    protocols: bool = True  # also score the paper's backtest protocols (MLE only) on the full table


@dataclass(frozen=True)
class DemoConfig:
    name: str
    ladder: str  # ladder config (YAML) pretrained into <work>/ladder
    tasks: tuple[DemoTask, ...]
    holdout: Holdout
    out: str = "results/demo"  # committed outputs: tables, fit summaries, plots, report.md
    work: str = "runs/demo"  # checkpoints and sweep cells (large; not committed)
    sweep: dict[str, Any] = field(default_factory=dict)
    fit: FitSettings = field(default_factory=FitSettings)
    # processes that share the work: the ladder's models (split_models) and the sweep's cells (the
    # runners claim them): a tiny model's steps keep about one core busy, so one per core is soonest
    workers: int = 1

    @property
    def ladder_dir(self) -> Path:
        return Path(self.work) / "ladder"

    @property
    def sweep_dir(self) -> Path:
        return Path(self.work) / "sweep"


def load_demo_config(
    path: str | Path,
    overrides: tuple[str, ...] | list[str] = (),
    *,
    out: str | None = None,
    work: str | None = None,
):
    """Read and check a demo config; returns ``(DemoConfig, LadderConfig)``. Writes nothing."""
    from emergence.data.tasks import get_task
    from emergence.train.ladder_config import LadderConfig

    source = str(path)
    raw = apply_overrides(read_yaml(path), overrides)
    if isinstance(raw.get("tasks"), list):
        raw["tasks"] = [{"name": t} if isinstance(t, str) else t for t in raw["tasks"]]
    cfg = from_dict(DemoConfig, raw, source=source)
    cfg = replace(cfg, out=out or cfg.out, work=work or cfg.work)
    if not cfg.tasks:
        raise UserError(f"{source}: 'tasks' is empty")
    names = [t.name for t in cfg.tasks]
    if len(set(names)) != len(names):
        raise UserError(f"{source}: tasks: a task is listed twice: {names}")
    for i, task in enumerate(cfg.tasks):
        try:
            get_task(task.name)
        except UserError as err:
            raise UserError(f"{source}: tasks[{i}].name: {err}") from None
    for key in DEMO_OWNED_SWEEP_KEYS:
        if key in cfg.sweep:
            raise UserError(f"{source}: sweep.{key} is set by the demo itself (remove it)")
    _check_fit(cfg.fit, source)
    if not isinstance(cfg.workers, int) or cfg.workers < 1:
        raise UserError(f"{source}: workers must be a whole number >= 1, got {cfg.workers!r}")
    ladder = LadderConfig.from_file(cfg.ladder)
    _check_holdout(cfg.holdout, ladder, source)
    for i, task in enumerate(cfg.tasks):
        if task.holdout is not None:
            _check_holdout(task.holdout, ladder, source, where=f"tasks[{i}].holdout")
    # the sweep section's keys and types, checked now (its checkpoints exist only after pretraining)
    sweep_section(cfg, ladder_manifest=Path(cfg.ladder_dir) / "ladder.yaml", check_only=True, source=source)
    return cfg, ladder


def _check_fit(fit: FitSettings, source: str) -> None:
    from emergence.laws.emergence_law import LawSpec

    try:
        LawSpec(form=fit.form, use_delta=fit.delta, likelihood=fit.likelihood)
    except UserError as err:
        raise UserError(f"{source}: fit: {err}") from None
    if fit.samples < 1 or fit.warmup < 0 or fit.chains < 1:
        raise UserError(f"{source}: fit: samples and chains must be >= 1 and warmup >= 0")
    if fit.d0 is not None and fit.d0 < 2:
        raise UserError(f"{source}: fit.d0 must be at least 2, got {fit.d0}")


def _check_holdout(holdout: Holdout, ladder, source: str, where: str = "holdout") -> None:
    models = {m.name for m in ladder.models}
    for i, name in enumerate(holdout.models):
        if name not in models:
            raise UserError(
                f"{source}: {where}.models[{i}]: no model '{name}' in {ladder.name} (has {', '.join(sorted(models))})"
            )
    ids = {f"{m.name}@{s}" for m in ladder.models for s in m.checkpoints}
    for i, cid in enumerate(holdout.checkpoints):
        if cid not in ids:
            raise UserError(
                f"{source}: {where}.checkpoints[{i}]: no checkpoint '{cid}' in ladder {ladder.name}"
            )
    n_ckpt = sum(len(m.checkpoints) for m in ladder.models)
    if not 0 <= holdout.largest < n_ckpt:
        raise UserError(
            f"{source}: {where}.largest must be in 0..{n_ckpt - 1} (the ladder has {n_ckpt} checkpoints)"
        )
    if holdout.lookahead is not None and not holdout.lookahead >= 1:
        raise UserError(f"{source}: {where}.lookahead must be >= 1, got {holdout.lookahead}")
    named = holdout.models or holdout.checkpoints or holdout.largest
    if not (named or holdout.flops_above is not None or holdout.lookahead is not None):
        raise UserError(
            f"{source}: {where}: name the held-out checkpoints (models, checkpoints, flops_above, largest or "
            "lookahead); the backtest needs them"
        )


def held_out(holdout: Holdout, entries: list[dict], first_post_flops: float | None = None) -> set[str]:
    """Ids of the held-out checkpoints among the ladder manifest's entries (``read_manifest``);
    ``first_post_flops`` (the task's first checkpoint past its few-shot elbow) serves ``lookahead``."""
    by_compute = sorted(entries, key=lambda e: float(e["flops"]), reverse=True)
    out = {e["id"] for e in by_compute[: holdout.largest]}
    for e in entries:
        if (
            e.get("ladder_model") in holdout.models
            or e["id"] in holdout.checkpoints
            or (holdout.flops_above is not None and float(e["flops"]) > holdout.flops_above)
            or (
                holdout.lookahead is not None
                and first_post_flops is not None
                and float(e["flops"]) * holdout.lookahead > first_post_flops
            )
        ):
            out.add(e["id"])
    return out


def sweep_section(
    cfg: DemoConfig, ladder_manifest: Path, *, check_only: bool = False, source: str = "demo"
) -> dict[str, Any]:
    """The resolved sweep config (plain data) for the pretrained ladder; structure-checked."""
    from emergence.sweep.config import SweepConfig, TaskEntry

    world = ladder_manifest.resolve().parent / "world"
    raw: dict[str, Any] = json.loads(json.dumps(cfg.sweep))  # a deep copy of plain data
    raw["name"] = f"{cfg.name}-sweep"
    raw["out"] = str(cfg.sweep_dir.resolve())  # absolute: the written sweep.yaml runs from any folder
    raw["ladder"] = str(ladder_manifest.resolve())
    raw["tasks"] = [
        {k: v for k, v in to_dict(t).items() if k in TaskEntry.__dataclass_fields__ and v is not None}
        for t in cfg.tasks
    ]
    loss = raw.setdefault("loss", {})
    if isinstance(loss, dict) and loss.get("corpus") is None and loss.get("hub") is None:
        loss["corpus"] = str(world / "heldout.jsonl")
    evaluation = raw.setdefault("eval", {})
    if isinstance(evaluation, dict):
        evaluation.setdefault("data_dir", str(world))
    if check_only:
        checked = {k: v for k, v in raw.items() if k != "ladder"}
        sweep = from_dict(SweepConfig, checked, source=f"{source}: sweep")
        for task in sweep.tasks:  # a task's own finetuning keys: known names, right types
            sweep.task_finetune(task.name, source=f"{source}: sweep")
    return raw


def fingerprint(data: Any) -> str:
    """A short stable hash of plain data (what decides a stage's outputs)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
