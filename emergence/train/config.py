"""Frozen settings for finetuning and evaluation, declared once and read by the strict loader.

:class:`FinetuneSettings` is the ``finetune:`` section of a sweep config (and so of a demo) and of
``emergence finetune --config``; :class:`FinetuneConfig`, one run, adds what is trained (model, task,
budget, subset) and how it is read. :class:`EvalSettings` is the ``eval:`` section of both. All are
read by :mod:`emergence.config`, so a new hyperparameter is one field here and every YAML file and
dotted override (``finetune.optim.lr=3e-4``) accepts it. Validation happens here, once, and raises
:class:`~emergence.errors.UserError` naming the bad key.

A run's :meth:`~FinetuneConfig.fingerprint` hashes every field that changes the trained weights: it
decides whether an output directory holds a checkpoint of *this* run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from emergence.errors import UserError

#: Module-name patterns LoRA wraps by default: every attention and MLP projection.
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
METHODS = ("lora", "full")
SCHEDULES = ("cosine", "constant")
DTYPES = ("float32", "bfloat16")
#: FinetuneConfig fields that never change the trained weights: not part of a run's fingerprint.
NOT_FINGERPRINTED = (
    "save_every", "log_every", "eval_every", "eval_split", "keep_checkpoints", "data_dir", "mesh"
)  # fmt: skip


@dataclass(frozen=True)
class LoraConfig:
    """LoRA adapter shape: ``W x + (alpha / rank) · B A x``, with dropout on the adapter's input.
    ``targets`` are regular expressions searched in each linear module's dotted path
    (``layers.3.attn.q_proj``); a pattern that matches no linear module is an error."""

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = DEFAULT_LORA_TARGETS

    def __post_init__(self) -> None:
        if self.rank <= 0:
            raise UserError(f"rank must be a positive integer, got {self.rank}")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.targets:
            raise UserError("targets needs at least one module-name pattern")
        if not math.isfinite(self.alpha) or self.alpha <= 0:
            raise UserError(f"alpha must be a finite number > 0, got {self.alpha}")

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warmup then cosine decay to ``end_lr_ratio`` (or constant), and clipping."""

    lr: float = 1e-4
    schedule: str = "cosine"
    warmup_ratio: float = 0.06
    end_lr_ratio: float = 0.0
    weight_decay: float = 0.0
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    clip_norm: float | None = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise UserError(f"lr must be a finite number > 0, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise UserError(f"weight_decay must be a finite number >= 0, got {self.weight_decay}")
        if not 0.0 <= self.end_lr_ratio <= 1.0:
            raise UserError(f"end_lr_ratio must be in [0, 1], got {self.end_lr_ratio}")
        if not (0.0 <= self.b1 < 1.0 and 0.0 <= self.b2 < 1.0 and self.eps > 0):
            raise UserError(f"AdamW needs b1, b2 in [0, 1) and eps > 0, got {self.b1}, {self.b2}, {self.eps}")
        if self.clip_norm is not None and not (math.isfinite(self.clip_norm) and self.clip_norm > 0):
            raise UserError(f"clip_norm must be a finite number > 0 (or null), got {self.clip_norm}")
        if self.schedule not in SCHEDULES:
            raise UserError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise UserError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")


@dataclass(frozen=True)
class MeshConfig:
    """Device mesh sizes along (data, fsdp, tensor), one device by default; -1 in one axis takes the
    remaining devices. ``distributed`` calls ``jax.distributed.initialize()`` first (multi-host)."""

    data: int = 1
    fsdp: int = 1
    tensor: int = 1
    distributed: bool = False

    def __post_init__(self) -> None:
        sizes = (self.data, self.fsdp, self.tensor)
        if any(s == 0 or s < -1 for s in sizes) or sizes.count(-1) > 1:
            raise UserError(f"mesh sizes must be positive (one of them may be -1), got {sizes}")


@dataclass(frozen=True)
class FinetuneSettings:
    """How to finetune, whatever the model, task and budget: method, adapter, optimizer, steps, devices.

    ``steps`` if given, else ``epochs`` passes over the D examples, but never fewer than
    ``min_steps`` optimizer steps. ``eval_every`` records a learning curve on ``eval_split``."""

    method: str = "lora"
    lora: LoraConfig = field(default_factory=LoraConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    batch_size: int = 8
    grad_accum: int = 1
    steps: int | None = None
    epochs: float = 3.0
    min_steps: int = 20
    max_seq_len: int = 512
    seed: int = 0  # adapter init, data order and dropout
    save_every: int = 50  # orbax checkpoints (resume)
    log_every: int = 1
    eval_every: int | None = None
    eval_split: str = "validation"
    keep_checkpoints: bool = False  # keep the orbax checkpoints once a sweep cell's result is written

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UserError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        for name in ("batch_size", "grad_accum", "max_seq_len", "save_every", "log_every"):
            if getattr(self, name) <= 0:
                raise UserError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("steps", "eval_every"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise UserError(f"{name} must be a positive number of steps, got {getattr(self, name)}")
        if not (math.isfinite(self.epochs) and self.epochs > 0):
            raise UserError(f"epochs must be a finite number > 0, got {self.epochs}")
        if self.seed < 0 or self.min_steps < 0:
            raise UserError(f"seed and min_steps must be >= 0, got {self.seed} and {self.min_steps}")

    @property
    def examples_per_step(self) -> int:
        return self.batch_size * self.grad_accum


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig(FinetuneSettings):
    """One finetuning run: the settings, applied to ``budget`` examples of ``task`` for ``model``
    (``dtype``: the compute dtype the model is loaded in; ``data_dir``: the benchmark files)."""

    model: str
    task: str
    budget: int
    subset_seed: int = 0  # which nested subset of the training split
    dtype: str = "float32"
    data_dir: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.budget <= 0:
            raise UserError(f"budget must be a positive number of examples, got {self.budget}")
        if self.subset_seed < 0:
            raise UserError(f"subset_seed must be >= 0, got {self.subset_seed}")
        if self.dtype not in DTYPES:
            raise UserError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")

    @classmethod
    def of(cls, settings: FinetuneSettings, **run: Any) -> FinetuneConfig:
        """``settings`` applied to one run (``model``, ``task``, ``budget`` and the other fields here)."""
        return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(FinetuneSettings)}, **run)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """Every field that changes the trained weights (what :meth:`fingerprint` hashes)."""
        return {k: v for k, v in self.to_dict().items() if k not in NOT_FINGERPRINTED}

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class EvalSettings:
    """How a model is scored on a task (:func:`emergence.eval.evaluate.evaluate`'s options).

    ``shots`` and ``limit`` are defaults that a sweep's task entries may set per task."""

    shots: int | None = None  # few-shot examples (None: the task's harness default)
    limit: int | None = None  # the first N examples
    batch_size: int = 64
    data_dir: str | None = None  # benchmark files (default: $EMERGENCE_DATA)
    source: str = "local"  # local | hub | a folder of hub-format files
    fewshot_seed: int = 1234

    def __post_init__(self) -> None:
        if self.shots is not None and self.shots < 0:
            raise UserError(f"shots must be >= 0, got {self.shots}")
        if self.limit is not None and self.limit <= 0:
            raise UserError(f"limit must be a positive number of examples, got {self.limit}")
        if self.batch_size <= 0:
            raise UserError(f"batch_size must be > 0, got {self.batch_size}")
        if self.fewshot_seed < 0:
            raise UserError(f"fewshot_seed must be >= 0, got {self.fewshot_seed}")

    def options(self, **given: Any) -> dict[str, Any]:
        """Keyword arguments of ``evaluate``/``scorer``; ``given`` ones win."""
        return {
            "shots": self.shots, "limit": self.limit, "batch_size": self.batch_size,
            "data_dir": self.data_dir, "source": self.source, "seed": self.fewshot_seed,
        } | given  # fmt: skip
