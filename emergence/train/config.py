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

from emergence.errors import UserError, check_fields, finite_positive
from emergence.models.config import DTYPES, REMAT_POLICIES
from emergence.models.families import FAMILIES

#: Module-name patterns LoRA wraps by default: every attention and MLP projection of the model's
#: family (:attr:`emergence.models.families.Family.lora_targets`; these are LLaMA's).
DEFAULT_LORA_TARGETS = FAMILIES["LlamaForCausalLM"].lora_targets
METHODS = ("lora", "full")
SCHEDULES = ("cosine", "constant")
#: FinetuneConfig fields that never change the trained weights: not part of a run's fingerprint.
NOT_FINGERPRINTED = (
    "save_every", "log_every", "eval_every", "eval_split", "keep_checkpoints", "data_dir", "harness_include",
    "mesh", "remat", "peak_tflops",
)  # fmt: skip


def precision(
    method: str, dtype: str | None = None, param_dtype: str | None = None, accelerated: bool | None = None
) -> tuple[str, str]:
    """(compute dtype, parameter dtype) of a run whose ``method`` is ``lora``, ``full`` or ``none``
    (evaluation only) on this backend, or on an accelerator when ``accelerated`` (what
    ``emergence memory`` plans for on a laptop); given values win.

    On CPU both default to float32, where the parity fixtures live. On accelerators compute is
    bfloat16; parameters that are not trained (LoRA's frozen base, an evaluated model) are stored
    in bfloat16 too, halving their memory, while full finetuning keeps float32 master weights (and
    so float32 Adam moments). LoRA adapters are float32 whatever the base (:mod:`.lora`)."""
    if accelerated is None:
        import jax

        accelerated = jax.default_backend() != "cpu"
    dtype = dtype or ("bfloat16" if accelerated else "float32")
    if param_dtype is None:
        frozen_bf16 = accelerated and dtype == "bfloat16" and method != "full"
        param_dtype = "bfloat16" if frozen_bf16 else "float32"
    return dtype, param_dtype


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
        check_fields(self, lambda v: v > 0, "a positive integer", "rank")
        check_fields(self, lambda v: 0.0 <= v < 1.0, "in [0, 1)", "dropout")
        if not self.targets:
            raise UserError("targets needs at least one module-name pattern")
        check_fields(self, finite_positive, "a finite number > 0", "alpha")

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
        check_fields(self, finite_positive, "a finite number > 0", "lr")
        check_fields(self, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0", "weight_decay")
        check_fields(self, lambda v: 0.0 <= v <= 1.0, "in [0, 1]", "end_lr_ratio")
        check_fields(self, lambda v: 0.0 <= v < 1.0, "in [0, 1)", "b1", "b2", "warmup_ratio")
        check_fields(self, lambda v: v > 0, "> 0", "eps")
        check_fields(self, finite_positive, "a finite number > 0 (or null)", "clip_norm")
        check_fields(self, SCHEDULES.__contains__, f"one of {', '.join(SCHEDULES)}", "schedule")


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

    @property
    def min_devices(self) -> int:
        """The fewest devices the mesh needs (an axis of -1 takes at least one)."""
        return math.prod(max(1, s) for s in (self.data, self.fsdp, self.tensor))


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
    remat: str = "none"  # what each block keeps for the backward pass (models.config.REMAT_POLICIES)
    peak_tflops: float | None = None  # the MFU reference per device (default: the device kind's peak)

    def __post_init__(self) -> None:
        check_fields(self, METHODS.__contains__, f"one of {', '.join(METHODS)}", "method")
        check_fields(self, REMAT_POLICIES.__contains__, f"one of {', '.join(REMAT_POLICIES)}", "remat")
        check_fields(self, finite_positive, "a finite number > 0 (or null)", "peak_tflops")
        positive = ("batch_size", "grad_accum", "max_seq_len", "save_every", "log_every")
        check_fields(self, lambda v: v > 0, "positive", *positive)
        check_fields(self, lambda v: v > 0, "a positive number of steps", "steps", "eval_every")
        check_fields(self, finite_positive, "a finite number > 0", "epochs")
        check_fields(self, lambda v: v >= 0, ">= 0", "seed", "min_steps")

    @property
    def examples_per_step(self) -> int:
        return self.batch_size * self.grad_accum


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig(FinetuneSettings):
    """One finetuning run: the settings, applied to ``budget`` examples of ``task`` for ``model``
    (``dtype``, ``param_dtype``: the compute and stored dtypes the model is loaded in, None for
    :func:`precision`'s default; ``data_dir``: the benchmark files; ``harness_include``: a folder of
    harness task YAML, for a ``harness:NAME`` task)."""

    model: str
    task: str
    budget: int
    subset_seed: int = 0  # which nested subset of the training split
    dtype: str | None = None
    param_dtype: str | None = None
    data_dir: str | None = None
    harness_include: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fields(self, lambda v: v > 0, "a positive number of examples", "budget")
        check_fields(self, lambda v: v >= 0, ">= 0", "subset_seed")
        check_fields(self, DTYPES.__contains__, f"one of {', '.join(DTYPES)}", "dtype", "param_dtype")
        dtype, param_dtype = precision(self.method, self.dtype, self.param_dtype)
        object.__setattr__(self, "dtype", dtype)  # resolved once: the fingerprint names real dtypes
        object.__setattr__(self, "param_dtype", param_dtype)

    @classmethod
    def of(cls, settings: FinetuneSettings, **run: Any) -> FinetuneConfig:
        """``settings`` applied to one run (``model``, ``task``, ``budget`` and the other fields here)."""
        return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(FinetuneSettings)}, **run)

    def identity(self) -> dict[str, Any]:
        """Every field that changes the trained weights (what :meth:`fingerprint` hashes);
        ``param_dtype`` only when it is not float32, so runs from before it existed keep theirs."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if k not in NOT_FINGERPRINTED}
        if out["param_dtype"] == "float32":
            del out["param_dtype"]
        return out

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
    harness_include: str | None = None  # a folder of lm-evaluation-harness task YAML (harness:NAME tasks)
    fewshot_seed: int = 1234
    # how much one device takes at once (None: by backend, emergence.eval.sizing); not in a cell key
    batch_tokens: int | None = None  # padded tokens per scoring batch
    generation_rows: int | None = None  # prompts decoded together (None: at most batch_size)

    def __post_init__(self) -> None:
        check_fields(self, lambda v: v >= 0, ">= 0", "shots", "fewshot_seed")
        check_fields(self, lambda v: v > 0, "a positive number of examples", "limit")
        check_fields(self, lambda v: v > 0, "> 0", "batch_size", "batch_tokens", "generation_rows")

    def options(self, **given: Any) -> dict[str, Any]:
        """Keyword arguments of ``evaluate``/``scorer``; ``given`` ones win."""
        return {
            "shots": self.shots, "limit": self.limit, "batch_size": self.batch_size,
            "data_dir": self.data_dir, "source": self.source, "seed": self.fewshot_seed,
            "batch_tokens": self.batch_tokens, "generation_rows": self.generation_rows,
        } | given  # fmt: skip


@dataclass(frozen=True)
class FinetuneFile:
    """What ``emergence finetune --config`` and its overrides set: a sweep config's ``finetune:`` and
    ``eval:`` sections, for one run (so a setting has one name in both)."""

    finetune: FinetuneSettings = field(default_factory=FinetuneSettings)
    # the learning curve's prompts (finetune.eval_every): zero-shot, the format a finetuned model learns
    eval: EvalSettings = field(default_factory=lambda: EvalSettings(shots=0))
