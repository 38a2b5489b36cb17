"""The ladder config: which tiny LLaMA models to pretrain on the toy corpus, for how long, saved when.

A YAML file (examples: ``configs/ladders/*.yaml``) read by the strict loader (:mod:`emergence.config`).
One ``seed`` sets init and data order for every model (like Pythia); a model's ``checkpoints``
default to its last step; ``optim`` is read over the ladder's defaults below.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from emergence.config import load_config
from emergence.data.toy.world import WorldConfig
from emergence.errors import UserError, check_fields
from emergence.fileio import check_name
from emergence.train.config import OptimConfig

# names a ladder's output folder already uses next to the model folders (pretrain.WORLD_DIR, the
# manifest, the demo's stamp): a model named so would overwrite them
RESERVED_NAMES = ("world", "ladder.yaml", "demo_ladder.json")


@dataclass(frozen=True)
class LadderModel:
    """One model of the ladder and the steps at which it is exported."""

    name: str
    hidden_size: int
    layers: int
    heads: int
    steps: int
    checkpoints: tuple[int, ...] = ()  # default: the last step only
    kv_heads: int | None = None
    intermediate_size: int | None = None  # default 4 · hidden_size (SwiGLU)

    def __post_init__(self) -> None:
        # the name is a folder under --out (<out>/<name>/step_N): nothing that climbs out of it
        check_name(self.name, "ladder model name", reserved=RESERVED_NAMES)
        where = f"ladder model {self.name!r}"
        sizes = ("hidden_size", "layers", "heads", "steps", "kv_heads", "intermediate_size")
        check_fields(self, lambda v: v > 0, "positive", *sizes, where=f"{where}: ")
        if not self.checkpoints:
            object.__setattr__(self, "checkpoints", (self.steps,))
        if self.hidden_size % self.heads:
            raise UserError(
                f"{where}: hidden_size {self.hidden_size} is not a multiple of heads {self.heads}"
            )
        bad = [c for c in self.checkpoints if not 0 < c <= self.steps]
        if bad:
            raise UserError(
                f"{where}: checkpoints must be steps in 1..{self.steps}, got {list(self.checkpoints)}"
            )
        if self.steps not in self.checkpoints:
            raise UserError(f"{where}: checkpoints must include the last step {self.steps}")

    @property
    def save_every(self) -> int:
        """Training state is saved at every multiple of this (the gcd of the export steps)."""
        return math.gcd(*self.checkpoints)


@dataclass(frozen=True)
class LadderConfig:
    models: tuple[LadderModel, ...]
    name: str = "ladder"
    world: WorldConfig = field(default_factory=WorldConfig)
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=3e-3, warmup_ratio=0.05, end_lr_ratio=0.1)
    )
    seq_len: int = 128
    batch_size: int = 16
    seed: int = 0
    log_every: int = 50

    def __post_init__(self) -> None:
        check_name(self.name, "ladder name")  # the default output folder is runs/ladders/<name>
        where = f"ladder {self.name!r}: "
        check_fields(self, lambda v: v >= 0, ">= 0", "seed", where=where)
        if not self.models:
            raise UserError(f"{where}no models")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise UserError(f"{where}duplicate model names {names}")
        check_fields(self, lambda v: v > 0, "positive", "seq_len", "batch_size", "log_every", where=where)

    @classmethod
    def from_file(cls, path: str | Path, overrides: Sequence[str] = ()) -> LadderConfig:
        return load_config(cls, path, overrides)
