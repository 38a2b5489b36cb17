"""Hugging Face model directories: config.json + safetensors or PyTorch ``.bin`` weights (single or
sharded) + tokenizer files.

Read by our own header parser over a memory map, one tensor at a time in its stored dtype (no torch,
and no widening of bf16 checkpoints to fp32). Written atomically per directory, so an interrupted
export never leaves a half-written model that would later load as garbage.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from emergence.errors import UserError
from emergence.fileio import read_json_object, share, share_dir
from emergence.models.config import LlamaConfig
from emergence.models.families import config_from_hf, config_to_hf
from emergence.models.torch_bin import read_torch_bin
from emergence.models.weights import LazyTensors

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
BIN_INDEX_FILE = "pytorch_model.bin.index.json"
BIN_SINGLE_FILE = "pytorch_model.bin"


#: safetensors dtypes a LLaMA checkpoint holds, as numpy dtypes (numpy has no bf16; JAX's is one).
STORED_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": jnp.bfloat16, "F64": np.float64}


def read_safetensors(path: Path) -> dict[str, tuple[tuple[int, ...], Callable[..., np.ndarray]]]:
    """Per tensor of one file, its shape and a reader giving a fresh array in its stored dtype, of
    the whole tensor or of the part its argument indexes (a tuple of slices).

    Only the header is read here; the file is memory-mapped, so a tensor costs host memory once
    it is read (only the part asked for), and the loader converts it to the model's dtype before
    reading the next."""
    try:
        with path.open("rb") as handle:
            header_len = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(header_len))
        mapped = np.memmap(path, np.uint8, "r")
    except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise UserError(f"{path}: cannot read safetensors ({' '.join(str(err).split())})") from None
    base = 8 + header_len
    readers: dict[str, tuple[tuple[int, ...], Callable[..., np.ndarray]]] = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            stored, shape, (start, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{path}: cannot read safetensors (bad header entry for {key!r})") from None
        if base + end > mapped.size:
            raise UserError(f"{path}: cannot read safetensors (tensor {key!r} ends past the file; truncated?)")
        readers[key] = shape, functools.partial(_read_tensor, path, mapped, key, stored, shape, base + start, base + end)
    return readers


def _read_tensor(
    path: Path, mapped: np.ndarray, key: str, stored: str, shape: tuple[int, ...], start: int, end: int,
    index: tuple = (...,),
) -> np.ndarray:
    if stored not in STORED_DTYPES:
        raise UserError(f"{path}: tensor {key!r} has unsupported dtype {stored}")
    dtype = np.dtype(STORED_DTYPES[stored])
    if end - start != math.prod(shape) * dtype.itemsize:
        raise UserError(f"{path}: cannot read safetensors (tensor {key!r} has {end - start} bytes for shape {shape})")
    return np.array(mapped[start:end].view(dtype).reshape(shape)[index])


def _indexed_files(directory: Path, index_name: str) -> list[Path]:
    index = directory / index_name
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise UserError(f"{index}: not a valid weight index ({err})") from None
    files = [directory / name for name in dict.fromkeys(weight_map.values())]
    for file in files:
        if not file.exists():
            raise UserError(f"{file}: shard listed in {index_name} is missing")
    return files


def weight_files(directory: Path) -> list[Path]:
    """The weight files of an HF directory: safetensors when there are any, else PyTorch ``.bin``."""
    if (directory / INDEX_FILE).exists():
        return _indexed_files(directory, INDEX_FILE)
    single = directory / SINGLE_FILE
    if single.exists():
        return [single]
    others = sorted(directory.glob("*.safetensors"))
    if others:
        return others
    if (directory / BIN_INDEX_FILE).exists():
        return _indexed_files(directory, BIN_INDEX_FILE)
    if (directory / BIN_SINGLE_FILE).exists():
        return [directory / BIN_SINGLE_FILE]
    raise UserError(f"{directory}: no weights (model.safetensors, {BIN_SINGLE_FILE} or their index)")


def load_hf_directory(directory: str | Path) -> tuple[LlamaConfig, LazyTensors, dict]:
    """Config, HF-named tensors (read on access, in their stored dtype) and the raw config dict of
    a local HF model directory."""
    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.exists():
        raise UserError(f"{config_path}: missing config.json in the model directory")
    raw = read_json_object(config_path, "model config")
    config = config_from_hf(raw, source=str(config_path))
    readers: dict[str, Callable[[], np.ndarray]] = {}
    parts: dict[str, tuple[tuple[int, ...], Callable[..., np.ndarray]]] = {}
    for file in weight_files(directory):
        if file.suffix == ".safetensors":  # readable in parts: each host reads only its slices
            parts.update(read_safetensors(file))
        else:
            readers.update(read_torch_bin(file))
    readers.update({name: read for name, (_, read) in parts.items()})
    return config, LazyTensors(readers, parts), raw


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
        (staging / "config.json").write_text(json.dumps(config_to_hf(config), indent=2))
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
