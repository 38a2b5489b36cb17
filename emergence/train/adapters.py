"""A finetuning result on disk, and putting it back onto a loaded model (``emergence eval --adapter``).

A result directory holds ``adapter_config.json`` (method, base model, LoRA shape, task, budget) and
either ``adapter_model.safetensors`` (LoRA weights by dotted module path, fp32) or ``model/`` (a
complete HF directory, for full finetuning). The config is written last, so its presence means the
weights beside it are complete.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from emergence import fileio
from emergence.config import from_dict
from emergence.errors import UserError
from emergence.models.registry import LoadedModel, load_model, save_model
from emergence.train.config import LoraConfig
from emergence.train.lora import apply_lora, folds_at_evaluation, load_lora_state, merge_lora

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
FULL_MODEL_DIR = "model"


def save_lora_adapter(directory: str | Path, lora: LoraConfig, info: dict[str, Any], weights: dict) -> Path:
    """Write adapter weights (dotted path → array, as :func:`lora_state` or the trainer's
    ``flat_params`` give them) and their config."""
    from safetensors.numpy import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = {k: np.ascontiguousarray(np.asarray(v, np.float32)) for k, v in weights.items()}
    with fileio.atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(weights, str(tmp))  # safetensors creates it 0600; atomic_path gives the umask's mode
    fileio.write_json(directory / CONFIG_FILE, {"method": "lora", "lora": dataclasses.asdict(lora), **info})
    return directory


def save_full_model(directory: str | Path, loaded: LoadedModel, info: dict[str, Any]) -> Path:
    """Write a fully finetuned model as an HF directory under ``model/`` and its config."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_model(loaded, directory / FULL_MODEL_DIR, extra_meta={"finetune": info})
    fileio.write_json(directory / CONFIG_FILE, {"method": "full", **info})
    return directory


def read_adapter_config(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise UserError(f"{directory}: not a finetuning result ({CONFIG_FILE} missing)")
    return fileio.read_json_object(path, "finetuning result")


def load_adapter(loaded: LoadedModel, directory: str | Path, *, merge: bool | None = None) -> LoadedModel:
    """The base model with the result in ``directory`` applied.

    LoRA: wraps ``loaded.model`` in place with the saved adapter and merges it when ``merge`` (by
    default as evaluation does: :func:`~emergence.train.lora.folds_at_evaluation`); full: loads ``model/`` in the base model's compute dtype. Raises
    :class:`UserError` when the adapter does not fit the model.
    """
    directory = Path(directory)
    info = read_adapter_config(directory)
    if info.get("method") == "full":
        return load_model(str(directory / FULL_MODEL_DIR), dtype=loaded.config.dtype)
    if info.get("method") != "lora":
        raise UserError(f"{directory / CONFIG_FILE}: unknown method {info.get('method')!r}")
    from safetensors.numpy import load_file

    lora = from_dict(LoraConfig, info.get("lora"), source=str(directory / CONFIG_FILE), prefix="lora")
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.is_file():
        raise UserError(f"{directory}: {WEIGHTS_FILE} missing")
    try:
        state = load_file(str(weights_path))
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error type for a bad file
        raise UserError(f"{weights_path}: cannot read safetensors ({' '.join(str(err).split())}; truncated?)") from None
    model = apply_lora(loaded.model, lora)
    load_lora_state(model, state, str(weights_path))
    if merge if merge is not None else folds_at_evaluation(loaded.config.param_dtype):
        model = merge_lora(model)
    return dataclasses.replace(loaded, model=model)
