"""The demo config: one YAML that names the ladder, the sweep, the fit and the backtest's held-out set.

One file, checked up front by the strict loader, so that a typo stops ``make demo`` *before* minutes
of pretraining. The ``sweep`` section is a sweep config's :class:`~emergence.sweep.config.SweepSettings`
and each task a sweep's :class:`~emergence.sweep.config.TaskEntry` plus what the fit needs; the demo
fills in the rest from the ladder it pretrains. The ``fit`` section is ``emergence fit``'s
:class:`~emergence.laws.fit_config.FitSettings`. The held-out checkpoints (those that show the
emergence) are kept out of the fit and used only for the ground truth; a task may name its own,
since tasks emerge at different compute.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from emergence.config import load_config, to_dict
from emergence.errors import UserError, check_fields
from emergence.laws.fit_config import FitSettings
from emergence.sweep.config import SweepSettings, TaskEntry, check_tasks


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

    def __post_init__(self) -> None:
        check_fields(self, lambda v: v >= 1, ">= 1", "lookahead")
        named = self.models or self.checkpoints or self.largest
        if not named and self.flops_above is None and self.lookahead is None:
            raise UserError(
                "name the held-out checkpoints (models, checkpoints, flops_above, largest or lookahead); "
                "the backtest needs them"
            )


@dataclass(frozen=True)
class DemoTask(TaskEntry):
    """A toy task: the sweep's task entry, and which metric/chance level the law is fit on."""

    metric: str | None = None  # default: the task's first metric with values
    chance: float | None = None  # centre of the law's prior on B (default: estimated from data)
    # this task's own backtest future (default: the demo's holdout). Tasks emerge at different
    # compute, and the check "predicted from checkpoints with >= 2x less compute than the first
    # post-emergence one" is about each task's own emergence
    holdout: Holdout | None = None


@dataclass(frozen=True)
class DemoFit(FitSettings):
    """The demo's ``fit:`` section: the law fit's own settings, and one step only the demo takes."""

    protocols: bool = True  # also score the paper's backtest protocols (MLE only) on the full table


@dataclass(frozen=True)
class DemoConfig:
    name: str
    ladder: str  # ladder config (YAML) pretrained into <work>/ladder
    tasks: tuple[DemoTask, ...]
    holdout: Holdout
    out: str = "results/demo"  # committed outputs: tables, fit summaries, plots, report.md
    work: str = "runs/demo"  # checkpoints and sweep cells (large; not committed)
    sweep: SweepSettings = field(default_factory=SweepSettings)
    fit: DemoFit = field(default_factory=DemoFit)
    # processes that share the work: the ladder's models (split_models) and the sweep's cells (the
    # runners claim them): a tiny model's steps keep about one core busy, so one per core is soonest
    workers: int = 1

    def __post_init__(self) -> None:
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise UserError(f"tasks: a task is listed twice: {names}")
        check_fields(self, lambda v: v >= 1, "a whole number >= 1", "workers")

    @property
    def ladder_dir(self) -> Path:
        return Path(self.work) / "ladder"

    @property
    def sweep_dir(self) -> Path:
        return Path(self.work) / "sweep"


def load_demo_config(
    path: str | Path, overrides: Sequence[str] = (), *, out: str | None = None, work: str | None = None
):
    """Read and check a demo config; returns ``(DemoConfig, LadderConfig)``. Writes nothing."""
    from emergence.train.ladder_config import LadderConfig

    source = str(path)
    cfg = load_config(DemoConfig, path, overrides)
    cfg = replace(cfg, out=out or cfg.out, work=work or cfg.work)
    check_tasks(cfg.tasks, cfg.sweep.finetune, source)
    ladder = LadderConfig.from_file(cfg.ladder)
    holdouts = [("holdout", cfg.holdout)]
    holdouts += [(f"tasks[{i}].holdout", t.holdout) for i, t in enumerate(cfg.tasks) if t.holdout is not None]
    for where, holdout in holdouts:
        _check_holdout(holdout, ladder, f"{source}: {where}")
    return cfg, ladder


def _check_holdout(holdout: Holdout, ladder, where: str) -> None:
    models = {m.name for m in ladder.models}
    for i, name in enumerate(holdout.models):
        if name not in models:
            raise UserError(
                f"{where}.models[{i}]: no model '{name}' in {ladder.name} (has {', '.join(sorted(models))})"
            )
    ids = {f"{m.name}@{s}" for m in ladder.models for s in m.checkpoints}
    for i, cid in enumerate(holdout.checkpoints):
        if cid not in ids:
            raise UserError(f"{where}.checkpoints[{i}]: no checkpoint '{cid}' in ladder {ladder.name}")
    n_ckpt = sum(len(m.checkpoints) for m in ladder.models)
    if not 0 <= holdout.largest < n_ckpt:
        raise UserError(f"{where}.largest must be in 0..{n_ckpt - 1} (the ladder has {n_ckpt} checkpoints)")


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


def sweep_section(cfg: DemoConfig, ladder_manifest: Path) -> dict[str, Any]:
    """The sweep config (plain data) for the pretrained ladder: the demo's sweep settings and tasks,
    with the ladder's checkpoints, held-out corpus and toy data folder."""
    world = ladder_manifest.resolve().parent / "world"
    sweep = cfg.sweep
    if sweep.loss.corpus is None and sweep.loss.hub is None:
        sweep = replace(sweep, loss=replace(sweep.loss, corpus=str(world / "heldout.jsonl")))
    if sweep.eval.data_dir is None:
        sweep = replace(sweep, eval=replace(sweep.eval, data_dir=str(world)))
    # each task's sweep entry: its TaskEntry fields, the ones left unset omitted
    entries = [{f.name: to_dict(getattr(t, f.name)) for f in fields(TaskEntry)} for t in cfg.tasks]
    return {
        "name": f"{cfg.name}-sweep",
        "out": str(cfg.sweep_dir.resolve()),  # absolute: the written sweep.yaml runs from any folder
        "ladder": str(ladder_manifest.resolve()),
        "tasks": [{k: v for k, v in e.items() if v is not None} for e in entries],
        **to_dict(sweep),
    }


def fingerprint(data: Any) -> str:
    """A short stable hash of plain data (what decides a stage's outputs)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
