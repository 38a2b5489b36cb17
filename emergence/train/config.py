"""Frozen configs for a finetuning run: what to train, how, and on which devices.

A run is fully described by a :class:`FinetuneConfig`; its :meth:`~FinetuneConfig.fingerprint` (a
hash of every field that changes the numbers) decides whether an output directory holds a checkpoint
of *this* run, so that rerunning the same command resumes and a changed command refuses to mix runs.
Validation happens here, once, and raises :class:`~emergence.errors.UserError` with one line naming
the bad option, so the trainer can assume sane values.
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


@dataclass(frozen=True)
class LoraConfig:
    """LoRA adapter shape: ``W x + (alpha / rank) · B A x``, with dropout on the adapter's input.

    ``targets`` are regular expressions searched in each linear module's dotted path
    (``layers.3.attn.q_proj``); a pattern that matches no linear module is an error.
    """

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = DEFAULT_LORA_TARGETS

    def __post_init__(self) -> None:
        if self.rank <= 0:
            raise UserError(f"--rank must be a positive integer, got {self.rank}")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"--lora-dropout must be in [0, 1), got {self.dropout}")
        if not self.targets:
            raise UserError("--target needs at least one module-name pattern")
        if not math.isfinite(self.alpha) or self.alpha <= 0:
            raise UserError(f"--alpha must be a finite number > 0, got {self.alpha}")

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
            raise UserError(f"--lr must be a finite number > 0, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise UserError(f"--weight-decay must be a finite number >= 0, got {self.weight_decay}")
        if not 0.0 <= self.end_lr_ratio <= 1.0:
            raise UserError(f"end_lr_ratio must be in [0, 1], got {self.end_lr_ratio}")
        if not (0.0 <= self.b1 < 1.0 and 0.0 <= self.b2 < 1.0 and self.eps > 0):
            raise UserError(f"AdamW needs b1, b2 in [0, 1) and eps > 0, got {self.b1}, {self.b2}, {self.eps}")
        if self.clip_norm is not None and not (math.isfinite(self.clip_norm) and self.clip_norm > 0):
            raise UserError(f"clip_norm must be a finite number > 0 (or none), got {self.clip_norm}")
        if self.schedule not in SCHEDULES:
            raise UserError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise UserError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")


@dataclass(frozen=True)
class MeshConfig:
    """Device mesh sizes along (data, fsdp, tensor); -1 in one axis takes the remaining devices.

    The default is a single device. ``distributed`` calls ``jax.distributed.initialize()`` first
    (multi-host: coordinator, process count and id come from the environment, as JAX documents).
    """

    data: int = 1
    fsdp: int = 1
    tensor: int = 1
    distributed: bool = False

    def __post_init__(self) -> None:
        sizes = (self.data, self.fsdp, self.tensor)
        if any(s == 0 or s < -1 for s in sizes) or sizes.count(-1) > 1:
            raise UserError(f"mesh sizes must be positive (one of them may be -1), got {sizes}")


@dataclass(frozen=True)
class FinetuneConfig:
    """One finetuning run: model, task, data budget, subset seed, method and optimization.

    Steps policy (see :func:`emergence.train.budgets.plan_steps`): ``steps`` if given, else
    ``epochs`` passes over the D examples, but never fewer than ``min_steps`` optimizer steps.
    """

    model: str
    task: str
    budget: int
    subset_seed: int = 0
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
    dtype: str = "float32"
    seed: int = 0
    data_dir: str | None = None
    save_every: int = 50
    log_every: int = 1

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UserError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.budget <= 0:
            raise UserError(f"--budget must be a positive number of examples, got {self.budget}")
        for name in ("batch_size", "grad_accum", "max_seq_len", "save_every", "log_every"):
            if getattr(self, name) <= 0:
                raise UserError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.steps is not None and self.steps <= 0:
            raise UserError(f"--steps must be positive, got {self.steps}")
        if not (math.isfinite(self.epochs) and self.epochs > 0):
            raise UserError(f"--epochs must be a finite number > 0, got {self.epochs}")
        if self.seed < 0 or self.subset_seed < 0:
            raise UserError(f"--seed and --subset-seed must be >= 0, got {self.seed} and {self.subset_seed}")
        if self.min_steps < 0:
            raise UserError(f"min_steps must be >= 0, got {self.min_steps}")
        if self.dtype not in DTYPES:
            raise UserError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")

    @property
    def examples_per_step(self) -> int:
        return self.batch_size * self.grad_accum

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """A hash of everything that changes the trained weights (logging cadence excluded)."""
        raw = self.to_dict()
        for key in ("save_every", "log_every", "data_dir"):
            raw.pop(key)
        raw.pop("mesh")  # the same run on another device count is the same run (resume across meshes)
        return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FinetuneConfig:
        raw = dict(raw)
        lora = dict(raw.pop("lora", {}))
        lora["targets"] = tuple(lora.get("targets", DEFAULT_LORA_TARGETS))
        return cls(
            lora=LoraConfig(**lora),
            optim=OptimConfig(**raw.pop("optim", {})),
            mesh=MeshConfig(**raw.pop("mesh", {})),
            **raw,
        )
