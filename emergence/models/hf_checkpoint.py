"""Hugging Face model directories: config.json + safetensors (single or sharded) + tokenizer files.

Read through ``safetensors``' numpy interface (no torch). Written atomically per directory, so an
interrupted export never leaves a half-written model that would later load as garbage.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from emergence.errors import UserError
from emergence.fileio import read_json_object, share, share_dir
from emergence.models.config import LlamaConfig

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """All tensors of one file as float32 numpy (bf16 widened by hand: numpy has no bf16)."""
    from safetensors import safe_open

    out: dict[str, np.ndarray] = {}
    try:
        with safe_open(str(path), framework="numpy") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a dict
                out[key] = np.asarray(handle.get_tensor(key), dtype=np.float32)
    except TypeError as err:  # numpy cannot hold bf16: fall back to raw bytes
        if "bfloat16" not in str(err).lower() and "bf16" not in str(err).lower():
            raise UserError(f"{path}: cannot read safetensors ({err})") from None
        out = _read_bf16_file(path)
    except Exception as err:
        raise UserError(f"{path}: cannot read safetensors ({err})") from None
    return out


def _read_bf16_file(path: Path) -> dict[str, np.ndarray]:
    header_len = int.from_bytes(path.open("rb").read(8), "little")
    with path.open("rb") as handle:
        handle.seek(8)
        header = json.loads(handle.read(header_len))
        data = handle.read()
    dtypes = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64}
    out = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        if info["dtype"] not in dtypes:
            raise UserError(f"{path}: tensor {key!r} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        arr = np.frombuffer(data[start:end], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
        bf16 = info["dtype"] == "BF16"  # the upper half of an fp32
        out[key] = (arr.astype(np.uint32) << 16).view(np.float32) if bf16 else arr.astype(np.float32)
    return out


def weight_files(directory: Path) -> list[Path]:
    index = directory / INDEX_FILE
    if index.exists():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as err:
            raise UserError(f"{index}: not a valid safetensors index ({err})") from None
        files = [directory / name for name in dict.fromkeys(weight_map.values())]
        for file in files:
            if not file.exists():
                raise UserError(f"{file}: shard listed in {INDEX_FILE} is missing")
        return files
    single = directory / SINGLE_FILE
    if single.exists():
        return [single]
    others = sorted(directory.glob("*.safetensors"))
    if others:
        return others
    raise UserError(f"{directory}: no safetensors weights (model.safetensors or {INDEX_FILE})")


def load_hf_directory(directory: str | Path) -> tuple[LlamaConfig, dict[str, np.ndarray], dict]:
    """Config, HF-named float32 tensors and the raw config dict of a local HF model directory."""
    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.exists():
        raise UserError(f"{config_path}: missing config.json in the model directory")
    raw = read_json_object(config_path, "model config")
    config = LlamaConfig.from_hf_dict(raw, source=str(config_path))
    tensors: dict[str, np.ndarray] = {}
    for file in weight_files(directory):
        tensors.update(read_safetensors(file))
    return config, tensors, raw


def _check_replaceable(directory: Path) -> None:
    """Refuse to replace anything but an earlier export: a folder that is not an HF model directory
    (no config.json), or a file, is the user's, and a mistaken path must never delete it."""
    if not directory.is_dir() or directory.is_symlink():
        raise UserError(f"{directory}: exists and is not a model folder; not replacing it")
    if not (directory / "config.json").is_file():
        raise UserError(f"{directory}: exists and is not a model folder (no config.json); not replacing it")


def save_hf_directory(directory: str | Path, config: LlamaConfig, tensors: dict[str, np.ndarray], tokenizer=None) -> Path:
    """Write config.json, model.safetensors and the tokenizer; atomically replace ``directory``."""
    from safetensors.numpy import save_file

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        (staging / "config.json").write_text(json.dumps(config.to_hf_dict(), indent=2))
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(staging / SINGLE_FILE), metadata={"format": "pt"})
        share(staging / SINGLE_FILE)  # safetensors creates it 0600
        (staging / "generation_config.json").write_text(
            json.dumps({"bos_token_id": config.bos_token_id, "eos_token_id": config.eos_token_id}, indent=2)
        )
        if tokenizer is not None:
            tokenizer.save(staging)
        share_dir(staging)  # mkdtemp makes it 0700: a group sharing the ladder could not read it
        if directory.exists():
            _check_replaceable(directory)
            backup = directory.with_name(f".{directory.name}.old")
            shutil.rmtree(backup, ignore_errors=True)
            os.replace(directory, backup)
            os.replace(staging, directory)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory
