"""PyTorch checkpoints (``pytorch_model.bin``: a zip of a pickle and raw storages), read without torch.

Unpickling runs whatever code the file names, so a ``.bin`` is never unpickled in general:
:class:`_StateDictUnpickler` resolves only the globals a saved state dict names (the tensor rebuild
functions, ``collections.OrderedDict`` and the typed storage classes, each replaced by an inert
stand-in) and refuses any other global before it could be called, naming the file. Storages are
not copied out of the zip: torch stores its members uncompressed, so each tensor is a strided view
of a memory map of the file, read (and copied once, contiguous) only when the loader asks for it,
like a safetensors tensor (:func:`emergence.models.hf_checkpoint.read_safetensors`).
"""

from __future__ import annotations

import collections
import functools
import io
import math
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from emergence.errors import UserError

#: torch's typed storage classes (as pickled by ``torch.save``) → the numpy dtype of their bytes.
STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": jnp.bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType(NamedTuple):
    """Stand-in for ``torch.<X>Storage``: only a dtype, not callable."""

    dtype: np.dtype


class _Storage(NamedTuple):
    """A storage as a persistent id names it: the zip member ``data/<key>`` holding ``numel`` items."""

    key: str
    dtype: np.dtype
    numel: int


class _Tensor(NamedTuple):
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


class _Refused(Exception):
    """The pickle asked for something a state dict never holds."""


def _rebuild_tensor(storage, offset, shape, stride, *_ignored) -> _Tensor:
    """``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])``."""
    if not isinstance(storage, _Storage):
        raise _Refused("a tensor whose storage is not a storage")
    return _Tensor(storage, int(offset), tuple(int(n) for n in shape), tuple(int(s) for s in stride))


def _rebuild_parameter(data, *_ignored) -> _Tensor:
    """``torch._utils._rebuild_parameter(data, requires_grad, hooks)``: a Parameter is its tensor."""
    if not isinstance(data, _Tensor):
        raise _Refused("a parameter that is not a tensor")
    return data


_GLOBALS: dict[tuple[str, str], object] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{("torch", name): _StorageType(np.dtype(dtype)) for name, dtype in STORAGE_DTYPES.items()},
}


class _StateDictUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _GLOBALS[(module, name)]
        except KeyError:
            raise _Refused(f"the global {module}.{name}") from None

    def persistent_load(self, pid):
        if not (
            isinstance(pid, tuple)
            and len(pid) == 5
            and pid[0] == "storage"
            and isinstance(pid[1], _StorageType)
        ):
            raise _Refused(f"the persistent id {str(pid)[:80]}")
        return _Storage(str(pid[2]), pid[1].dtype, int(pid[4]))


def _load_state_dict(path: Path, data: bytes) -> dict[str, _Tensor]:
    try:
        state = _StateDictUnpickler(io.BytesIO(data)).load()
    except _Refused as err:
        raise UserError(f"{path}: refused to load: its pickle asks for {err}, which a checkpoint of tensors "
                        "never needs (nothing was executed)") from None  # fmt: skip
    except Exception as err:  # noqa: BLE001 - any other failure is a damaged or foreign file
        raise UserError(f"{path}: cannot read the PyTorch checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, _Tensor) for k, v in state.items()
    ):
        raise UserError(f"{path}: not a state dict (a PyTorch checkpoint of named tensors)")
    return state


def _member_start(mapped: np.ndarray, info: zipfile.ZipInfo) -> int:
    """Where a stored member's bytes begin: after its local header (30 bytes, name, extra field)."""
    header = mapped[info.header_offset : info.header_offset + 30].tobytes()
    name_len, extra_len = int.from_bytes(header[26:28], "little"), int.from_bytes(header[28:30], "little")
    return info.header_offset + 30 + name_len + extra_len


def read_torch_bin(path: Path) -> dict[str, Callable[[], np.ndarray]]:
    """A reader per tensor of one ``.bin`` file, giving a fresh C-contiguous array in its stored dtype."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as err:
        raise UserError(
            f"{path}: not a PyTorch zip checkpoint ({err}; files from torch < 1.6 are not read)"
        ) from None
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
        if len(pickles) != 1:
            raise UserError(
                f"{path}: not a PyTorch zip checkpoint (expected one data.pkl, found {len(pickles)})"
            )
        prefix = pickles[0][: -len("data.pkl")]
        if prefix + "byteorder" in archive.namelist() and archive.read(prefix + "byteorder") != b"little":
            raise UserError(f"{path}: a big-endian PyTorch checkpoint; only little-endian files are read")
        state = _load_state_dict(path, archive.read(pickles[0]))
        members = {}
        for key in {tensor.storage.key for tensor in state.values()}:
            try:
                members[key] = archive.getinfo(f"{prefix}data/{key}")
            except KeyError:
                raise UserError(f"{path}: storage {key!r} is missing from the archive (truncated?)") from None
        compressed = {
            key: archive.read(info)
            for key, info in members.items()
            if info.compress_type != zipfile.ZIP_STORED
        }
    mapped = np.memmap(path, np.uint8, "r")
    storages: dict[str, np.ndarray] = {}
    for key, info in members.items():
        if key in compressed:  # re-zipped by some tool: the bytes are in memory already
            storages[key] = np.frombuffer(compressed[key], np.uint8)
        else:
            start = _member_start(mapped, info)
            storages[key] = mapped[start : start + info.file_size]
    return {
        name: functools.partial(_read_tensor, path, name, tensor, storages[tensor.storage.key])
        for name, tensor in state.items()
    }


def _read_tensor(path: Path, name: str, tensor: _Tensor, raw: np.ndarray) -> np.ndarray:
    storage, count = tensor.storage, math.prod(tensor.shape)
    if min(tensor.shape, default=0) < 0 or len(tensor.stride) != len(tensor.shape):
        raise UserError(f"{path}: tensor {name!r} has shape {tensor.shape} and strides {tensor.stride}")
    if raw.size != storage.numel * storage.dtype.itemsize:
        raise UserError(
            f"{path}: storage of {name!r} has {raw.size} bytes for {storage.numel} {storage.dtype} items"
        )
    if count == 0:
        return np.zeros(tensor.shape, storage.dtype)
    last = tensor.offset + sum((n - 1) * s for n, s in zip(tensor.shape, tensor.stride, strict=True))
    if min(tensor.stride, default=0) < 0 or tensor.offset < 0 or last >= storage.numel:
        raise UserError(f"{path}: tensor {name!r} reaches outside its storage")
    items = raw.view(storage.dtype)[tensor.offset :]
    strides = tuple(s * storage.dtype.itemsize for s in tensor.stride)
    view = np.lib.stride_tricks.as_strided(items, tensor.shape, strides, writeable=False)
    return np.array(view, order="C")  # a plain memcpy when the strides are contiguous (a fresh tensor)
