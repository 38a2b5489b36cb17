"""The sweep config: which checkpoints, tasks, budgets and seeds, how to finetune and evaluate, where to write.

:func:`load_sweep_config` reads it through the one loader (:mod:`emergence.config`) and checks what can
be checked without the network and without writing anything, so a hub-scale config can be planned on a
laptop. Paths are relative to the current directory, except those inside a ladder manifest, which are
relative to the manifest so a ladder folder can carry its own.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from emergence import harness
from emergence.config import from_dict, load_config, read_yaml, updated
from emergence.errors import UserError, check_fields, finite_positive
from emergence.fileio import read_json_object
from emergence.train.config import (
    DTYPES,
    EvalSettings,
    FinetuneConfig,
    FinetuneSettings,
    MeshConfig,
    precision,
)


@dataclass(frozen=True)
class CheckpointSpec:
    """One checkpoint of the ladder; params/tokens/flops override what the weights' metadata says;
    ``mesh``: the devices its cells run on, when not the sweep's (a 13B checkpoint on 8, a 3B on 1);
    ``architecture``: a preset (``models/presets.py``) or model directory of its shape, for ``sweep
    plan`` to estimate its memory without the weights (a hub checkpoint, offline)."""

    model: str
    id: str | None = None
    params: int | None = None
    tokens: float | None = None
    flops: float | None = None
    mesh: MeshConfig | None = None
    architecture: str | None = None

    def __post_init__(self) -> None:
        check_fields(self, finite_positive, "a finite count > 0", "params")
        check_fields(self, lambda v: math.isfinite(v) and v >= 0, "a finite count >= 0", "tokens", "flops")


@dataclass(frozen=True)
class LossSpec:
    """Held-out corpus for the pretraining loss: a local .txt/.jsonl file, or a hub dataset (online)."""

    corpus: str | None = None
    hub: str | None = None
    hub_config: str | None = None
    split: str = "validation"
    field: str = "text"
    tokens: int = 100_000
    seq_len: int | None = None  # default: the model's context window, at most 2048
    batch_size: int = 8
    # the table's loss column: nats-per-token (pretrain_loss) or also bits-per-byte
    # (pretrain_bits_per_byte, comparable across tokenizers); both are measured either way
    unit: str = "nats-per-token"

    def __post_init__(self) -> None:
        from emergence.results_table import LOSS_COLUMNS

        check_fields(self, lambda v: v > 0, "positive", "tokens", "batch_size")
        check_fields(self, lambda v: v >= 2, ">= 2", "seq_len")
        check_fields(self, LOSS_COLUMNS.__contains__, f"one of {', '.join(LOSS_COLUMNS)}", "unit")

    def scoring(self) -> dict[str, Any]:
        """The keyword arguments of :func:`~emergence.eval.pretrain_loss.corpus_loss`: all but the unit."""
        options = asdict(self)
        options.pop("unit")
        return options


@dataclass(frozen=True)
class TaskEntry:
    name: str
    shots: int | None = None  # None: eval.shots, else the task's harness default
    budgets: tuple[int, ...] | None = None  # overrides the sweep's budgets for this task
    limit: int | None = None  # overrides eval.limit for this task
    finetuned_shots: int | None = None  # shots when evaluating finetuned cells (None: same as shots)
    # keys of the sweep's ``finetune`` section that differ for this task, e.g. {epochs: 3}: tasks differ
    # in how many steps teach their format, as learning rates are tuned per benchmark in practice
    finetune: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        check_fields(self, lambda v: v >= 0, ">= 0", "shots", "finetuned_shots")
        check_fields(self, lambda v: v > 0, "a positive number of examples", "limit")
        if self.budgets is not None:
            check_axis("budgets", self.budgets)


def check_axis(key: str, values: tuple[int, ...]) -> None:
    """Budgets (0: few-shot only) and subset seeds: an empty axis would be an empty sweep."""
    if not values or min(values) < 0 or len(set(values)) != len(values):
        raise UserError(f"{key} must be a non-empty list of distinct numbers >= 0, got {list(values)}")


def task_finetune(finetune: FinetuneSettings, entry: TaskEntry, *, source: str, where: str) -> FinetuneSettings:
    """The finetuning settings of one task: ``finetune`` with the task's own keys on top."""
    if not entry.finetune:
        return finetune
    return updated(finetune, entry.finetune, source=source, prefix=f"{where}.finetune")


def check_tasks(
    tasks: tuple[TaskEntry, ...], finetune: FinetuneSettings, source: str, harness_include: str | None = None
) -> None:
    """Each task is known and its own finetuning keys are valid (a sweep's and a demo's tasks);
    a ``harness:NAME`` task is looked up in lm-eval (and ``harness_include``)."""
    from emergence.data.tasks import get_task

    if not tasks:
        raise UserError(f"{source}: 'tasks' is empty")
    for i, task in enumerate(tasks):
        try:
            name = harness.task_name(task.name)
            if name is None:
                get_task(task.name)
            else:
                from emergence.harness.tasks import check_names

                check_names([name], harness_include)
        except UserError as err:
            raise UserError(f"{source}: tasks[{i}].name: {err}") from None
        task_finetune(finetune, task, source=source, where=f"tasks[{i}]")


@dataclass(frozen=True)
class SweepSettings:
    """How every cell of a sweep is run: the part of a sweep config that a demo config writes too
    (:mod:`emergence.report.demo_config`); the demo fills in the rest from the ladder it pretrains."""

    loss: LossSpec = field(default_factory=LossSpec)
    budgets: tuple[int, ...] = (0,)
    subset_seeds: tuple[int, ...] = (0,)
    # a sweep runs many short cells: orbax checkpoints and log lines are rarer than a single run's
    finetune: FinetuneSettings = field(default_factory=lambda: FinetuneSettings(save_every=1000, log_every=10))
    eval: EvalSettings = field(default_factory=EvalSettings)
    # compute and stored dtypes of every cell's model; None: by backend and finetune.method (precision)
    dtype: str | None = None
    param_dtype: str | None = None
    lock_ttl: float = 600.0  # seconds without a heartbeat after which a claimed cell is taken over
    compile_cache: str | None = None  # a JAX persistent compilation cache: restarts skip recompiling

    def __post_init__(self) -> None:
        check_axis("budgets", self.budgets)
        check_axis("subset_seeds", self.subset_seeds)
        check_fields(self, DTYPES.__contains__, f"one of {', '.join(DTYPES)}", "dtype", "param_dtype")
        check_fields(self, finite_positive, "> 0 seconds", "lock_ttl")

    def precision(self) -> tuple[str, str]:
        """(compute dtype, parameter dtype) of every cell: one loaded base serves a checkpoint's
        few-shot and finetuned cells, so the sweep's ``finetune.method`` decides the default."""
        return precision(self.finetune.method, self.dtype, self.param_dtype)


@dataclass(frozen=True, kw_only=True)
class SweepConfig(SweepSettings):
    name: str
    out: str
    tasks: tuple[TaskEntry, ...]
    checkpoints: tuple[CheckpointSpec, ...] = ()
    ladder: str | None = None
    # the devices every cell runs on (loading, finetuning, evaluation), unless its checkpoint names
    # its own; not part of a cell's key: a mesh changes where a cell runs, not what it computes
    mesh: MeshConfig = field(default_factory=MeshConfig)

    def checkpoint_mesh(self, checkpoint: CheckpointSpec) -> MeshConfig:
        """A checkpoint's own mesh or the sweep's; a multi-host job (``mesh.distributed``) is the sweep's."""
        if checkpoint.mesh is None:
            return self.mesh
        return replace(checkpoint.mesh, distributed=self.mesh.distributed)

    def task_budgets(self, task: TaskEntry) -> tuple[int, ...]:
        return task.budgets if task.budgets is not None else self.budgets

    def task_finetune(self, task: str) -> FinetuneSettings:
        """The finetuning settings of one task: the sweep's, with the task's own keys on top."""
        i, entry = next(((i, t) for i, t in enumerate(self.tasks) if t.name == task), (0, TaskEntry(task)))
        return task_finetune(self.finetune, entry, source="sweep", where=f"tasks[{i}]")


def checkpoint_id(spec: CheckpointSpec) -> str:
    if spec.id:
        return spec.id
    path = Path(spec.model)
    return path.stem if spec.model.endswith(".gguf") else (path.name if path.exists() else spec.model)


def is_hub_id(reference: str) -> bool:
    """``owner/name[@revision]`` that is not a local path: fetched from the hub at run time, never at
    plan time."""
    from emergence.models.references import hub_reference

    return hub_reference(reference) is not None


def load_sweep_config(path: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> SweepConfig:
    """Read, override, validate; every problem is one UserError line naming the key and file."""
    source = str(path)
    cfg = load_config(SweepConfig, path, overrides)
    if cfg.ladder:
        cfg = replace(cfg, checkpoints=cfg.checkpoints + read_ladder(cfg.ladder))
    validate(cfg, source)
    return cfg


def read_ladder(path: str | Path) -> tuple[CheckpointSpec, ...]:
    """A ladder manifest: YAML (or JSON) with a ``checkpoints:`` list of checkpoint entries."""
    path = Path(path)
    entries = read_yaml(path).get("checkpoints")
    if not isinstance(entries, list):
        raise UserError(f"{path}: a ladder manifest needs a 'checkpoints' list")
    out = []
    for i, entry in enumerate(entries):
        spec = from_dict(CheckpointSpec, entry, source=str(path), prefix=f"checkpoints[{i}]")
        if not Path(spec.model).is_absolute() and (path.parent / spec.model).exists():
            spec = replace(spec, model=str(path.parent / spec.model))
        out.append(spec)
    return tuple(out)


def validate(cfg: SweepConfig, source: str) -> None:
    """Checks that need no network and write nothing (plan and run both call this)."""
    if not cfg.checkpoints:
        raise UserError(f"{source}: no checkpoints (give 'checkpoints' or a 'ladder' manifest)")
    seen: dict[str, int] = {}
    for i, ckpt in enumerate(cfg.checkpoints):
        cid = checkpoint_id(ckpt)
        if cid in seen:
            raise UserError(
                f"{source}: duplicate checkpoint id '{cid}' (checkpoints[{seen[cid]}] and checkpoints[{i}])"
            )
        seen[cid] = i
        _check_reference(ckpt.model, f"{source}: checkpoints[{i}].model")
    check_shared_tokenizer(cfg.checkpoints, source)
    check_tasks(cfg.tasks, cfg.finetune, source, cfg.eval.harness_include)
    _check_harness_tasks(cfg, source)
    check_meshes(cfg, source)
    if (cfg.loss.corpus is None) == (cfg.loss.hub is None):
        raise UserError(f"{source}: loss: give exactly one of 'corpus' (a local file) or 'hub' (a dataset id)")
    if cfg.loss.corpus is not None and not Path(cfg.loss.corpus).is_file():
        raise UserError(f"{source}: loss.corpus: file not found: {cfg.loss.corpus}")
    if cfg.eval.data_dir is not None and not Path(cfg.eval.data_dir).is_dir():
        raise UserError(f"{source}: eval.data_dir: benchmark data dir not found: {cfg.eval.data_dir}")


def check_meshes(cfg: SweepConfig, source: str) -> None:
    """One place sets a cell's devices: the sweep's ``mesh`` or its checkpoint's, never ``finetune.mesh``
    (finetuning and evaluation share the loaded model); a multi-host job spans the whole sweep."""
    for i, task in enumerate(cfg.tasks):
        if cfg.task_finetune(task.name).mesh != MeshConfig():
            where = "finetune.mesh" if cfg.finetune.mesh != MeshConfig() else f"tasks[{i}].finetune.mesh"
            raise UserError(
                f"{source}: {where}: a sweep runs each cell, evaluation too, on the top-level 'mesh' "
                "or its checkpoint's 'mesh'; set it there"
            )
    for i, ckpt in enumerate(cfg.checkpoints):
        if ckpt.mesh is not None and ckpt.mesh.distributed and not cfg.mesh.distributed:
            raise UserError(
                f"{source}: checkpoints[{i}].mesh.distributed: a multi-host job runs the whole sweep; "
                "set 'mesh.distributed' at the top level"
            )


def _check_harness_tasks(cfg: SweepConfig, source: str) -> None:
    """A ``harness:NAME`` task with finetuned cells needs a training split; its learning curve
    (``finetune.eval_every``) is not supported: a harness task is scored on its own split."""
    if cfg.eval.harness_include is not None and not Path(cfg.eval.harness_include).is_dir():
        raise UserError(f"{source}: eval.harness_include: folder not found: {cfg.eval.harness_include}")
    for i, task in enumerate(cfg.tasks):
        name = harness.task_name(task.name)
        if name is None or not any(cfg.task_budgets(task)):
            continue
        from emergence.harness.tasks import training_docs

        try:
            training_docs(name, cfg.eval.harness_include)
        except UserError as err:
            raise UserError(f"{source}: tasks[{i}]: {err}") from None
        if cfg.task_finetune(task.name).eval_every is not None:
            raise UserError(f"{source}: tasks[{i}]: finetune.eval_every (a learning curve) is not supported "
                            "for harness tasks")


def _check_reference(reference: str, where: str) -> None:
    from emergence.models.references import ALIASES

    if reference in ALIASES or is_hub_id(reference):
        return
    path = Path(reference)
    if path.is_file() and path.suffix == ".gguf":
        return
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"{where}: {reference} has no config.json (not an HF model directory)")
        return
    raise UserError(
        f"{where}: checkpoint not found: {reference} (not a model directory, .gguf file, alias or hub id)"
    )


def tokenizer_fingerprint(tokenizer) -> str:
    """Identity of a tokenizer: its vocabulary (with added tokens) and BOS policy."""
    vocab = sorted(tokenizer.backend.get_vocab(with_added_tokens=True).items())
    raw = json.dumps([vocab, tokenizer.bos_token_id, tokenizer.add_bos], ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


class TokenizerMismatch(UserError):
    """Checkpoints of one sweep with different tokenizers: a config error, fatal for the whole run."""


def check_tokenizer(cid: str, fingerprint: str, known: list[tuple[str, str]], prefix: str = "") -> None:
    """Checkpoint ``cid``'s tokenizer is each of ``known`` (checkpoint, fingerprint)."""
    for first, other in known:
        if other != fingerprint:
            raise TokenizerMismatch(
                f"{prefix}checkpoint '{cid}' has a different tokenizer than '{first}'; all checkpoints of a "
                "sweep must share a tokenizer (losses in nats/token are not comparable otherwise)"
            )


def check_shared_tokenizer(checkpoints: tuple[CheckpointSpec, ...], source: str) -> None:
    """Local HF checkpoints must share one tokenizer (losses in nats/token are only comparable then).

    Hub checkpoints and GGUF files are checked when the runner loads them."""
    from emergence.models.tokenizer import TextTokenizer

    first: list[tuple[str, str]] = []
    for ckpt in checkpoints:
        path = Path(ckpt.model)
        if is_hub_id(ckpt.model) or not path.is_dir():
            continue
        config = read_json_object(path / "config.json", "model config")
        fp = tokenizer_fingerprint(TextTokenizer.from_directory(path, config))
        check_tokenizer(checkpoint_id(ckpt), fp, first, f"{source}: ")
        first = first or [(checkpoint_id(ckpt), fp)]


def finetune_config(
    cfg: SweepConfig, model: str, task: str, budget: int, subset_seed: int, mesh: MeshConfig | None = None
) -> FinetuneConfig:
    """The engine's FinetuneConfig for one cell: the task's settings on one (checkpoint, budget, seed),
    on the cell's ``mesh`` (default: the sweep's)."""
    dtype, param_dtype = cfg.precision()
    return FinetuneConfig.of(
        replace(cfg.task_finetune(task), mesh=mesh or cfg.mesh),
        model=model,
        task=task,
        budget=budget,
        subset_seed=subset_seed,
        dtype=dtype,
        param_dtype=param_dtype,
        data_dir=cfg.eval.data_dir,
        harness_include=cfg.eval.harness_include,
    )
