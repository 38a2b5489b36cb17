"""The ladder config: which tiny LLaMA models to pretrain on the toy corpus, for how long, saved when.

A YAML file (``configs/ladders/*.yaml``)::

    name: toy
    world: {seed: 0, n_entities: 200}        # the toy world (emergence.data.toy.world.WorldConfig)
    seq_len: 128
    batch_size: 16
    seed: 0                                   # init and data order; same for every model (like Pythia)
    optim: {lr: 0.003, warmup_ratio: 0.05, end_lr_ratio: 0.1}
    models:
      - {name: d64-l2, hidden_size: 64, layers: 2, heads: 4, steps: 800, checkpoints: [100, 200, 400, 800]}

Unknown keys are errors naming the key, like every config of the project.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from emergence.data.toy.world import WorldConfig
from emergence.errors import UserError
from emergence.fileio import check_name
from emergence.train.config import OptimConfig


def _check_keys(raw: dict, cls: type, where: str) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r}; known: {', '.join(sorted(known))}")


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
    checkpoints: tuple[int, ...]
    kv_heads: int | None = None
    intermediate_size: int | None = None  # default 4 · hidden_size (SwiGLU)

    def __post_init__(self) -> None:
        # the name is a folder under --out (<out>/<name>/step_N): nothing that climbs out of it
        check_name(self.name, "ladder model name", reserved=RESERVED_NAMES)
        where = f"ladder model {self.name!r}"
        for key in ("hidden_size", "layers", "heads", "steps"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int):
                raise UserError(f"{where}: {key} must be an integer, got {value!r}")
        for key in ("kv_heads", "intermediate_size"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise UserError(f"{where}: {key} must be a positive integer, got {value!r}")
        for key in ("hidden_size", "layers", "heads", "steps"):
            if getattr(self, key) <= 0:
                raise UserError(f"{where}: {key} must be positive, got {getattr(self, key)}")
        if self.hidden_size % self.heads:
            raise UserError(
                f"{where}: hidden_size {self.hidden_size} is not a multiple of heads {self.heads}"
            )
        bad = [c for c in self.checkpoints if not 0 < c <= self.steps]
        if not self.checkpoints or bad:
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
    name: str
    models: tuple[LadderModel, ...]
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
        for key in ("seq_len", "batch_size", "log_every", "seed"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int):
                raise UserError(f"ladder {self.name!r}: {key} must be an integer, got {value!r}")
        if self.seed < 0:
            raise UserError(f"ladder {self.name!r}: seed must be >= 0, got {self.seed}")
        if not self.models:
            raise UserError(f"ladder {self.name!r}: no models")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise UserError(f"ladder {self.name!r}: duplicate model names {names}")
        for key in ("seq_len", "batch_size", "log_every"):
            if getattr(self, key) <= 0:
                raise UserError(f"ladder {self.name!r}: {key} must be positive, got {getattr(self, key)}")

    @classmethod
    def from_dict(cls, raw: Any, where: str = "ladder config") -> LadderConfig:
        if not isinstance(raw, dict):
            raise UserError(f"{where}: expected a mapping at the top level")
        raw = dict(raw)
        _check_keys(raw, cls, where)
        models = []
        listed = raw.pop("models", None) or []
        if not isinstance(listed, list):
            raise UserError(f"{where}: models: expected a list of models, got {listed!r}")
        for i, m in enumerate(listed):
            if not isinstance(m, dict):
                raise UserError(f"{where}: models[{i}] is not a mapping")
            _check_keys(m, LadderModel, f"{where}: models[{i}]")
            m = dict(m)
            checkpoints = m.get("checkpoints", [m.get("steps", 0)])
            if not isinstance(checkpoints, list) or any(
                isinstance(c, bool) or not isinstance(c, int) for c in checkpoints
            ):
                raise UserError(f"{where}: models[{i}].checkpoints: expected a list of integers, got {checkpoints!r}")
            m["checkpoints"] = tuple(checkpoints)
            try:
                models.append(LadderModel(**m))
            except TypeError as err:
                raise UserError(f"{where}: models[{i}]: {err}") from None
            except UserError as err:
                raise UserError(f"{where}: models[{i}]: {err}") from None
        optim = raw.pop("optim", None) or {}
        _check_keys(optim, OptimConfig, f"{where}: optim")
        defaults = {"lr": 3e-3, "warmup_ratio": 0.05, "end_lr_ratio": 0.1}
        if not isinstance(optim, dict):
            raise UserError(f"{where}: optim: expected a mapping, got {optim!r}")
        try:
            world = WorldConfig.from_dict(raw.pop("world", None))
        except (TypeError, ValueError, AttributeError) as err:
            raise UserError(f"{where}: world: {err}") from None
        try:
            optim_config = OptimConfig(**{**defaults, **optim})
        except (TypeError, ValueError) as err:
            raise UserError(f"{where}: optim: {err}") from None
        try:
            return cls(name=raw.pop("name", "ladder"), models=tuple(models), world=world, optim=optim_config, **raw)
        except UserError as err:
            raise UserError(f"{where}: {err}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> LadderConfig:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"ladder config not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise UserError(f"{path}: invalid YAML ({str(err).splitlines()[0]})") from None
        return cls.from_dict(raw, str(path))
