"""A GGUF file's metadata and tensor views, parsed as ``gguf.GGUFReader`` parses them.

Why not the library's reader alone: it makes one numpy view per string and array element (about
250k for SmolLM2's vocabulary and merges), which makes parsing the largest part of loading a small
checkpoint (``results/bench/engines_cache.md``). Here lengths are read with ``struct`` and arrays with
one ``np.frombuffer`` each; value types, tensor types and sizes still come from the ``gguf`` package,
and ``tests/models/test_gguf.py`` checks the parse against the library's. Big-endian files go to the
library's reader.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

_MAGIC = b"GGUF"
_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")
_STRING, _ARRAY = gguf.GGUFValueType.STRING, gguf.GGUFValueType.ARRAY
#: numbers and booleans: the library's own table of value types, read little-endian
_VALUE_DTYPES = {int(k): np.dtype(v).newbyteorder("<") for k, v in gguf.GGUFReader.gguf_scalar_to_np.items()}
_PLAIN_TENSOR_DTYPES = {
    "F16": np.float16,
    "F32": np.float32,
    "F64": np.float64,
    "I8": np.int8,
    "I16": np.int16,
    "I32": np.int32,
    "I64": np.int64,
}


@dataclass(frozen=True)
class GGUFTensor:
    """One tensor: ``shape`` in GGUF order (fastest axis first), ``data`` a view of the file as
    ``gguf.GGUFReader`` gives it (elements for plain types, bytes per row for quantized ones)."""

    name: str
    tensor_type: Any  # gguf.GGMLQuantizationType
    shape: tuple[int, ...]
    data: np.ndarray


@dataclass(frozen=True)
class GGUFContents:
    fields: dict[str, Any]  # key -> value (str, number, bool, or a list of them)
    tensors: list[GGUFTensor]


class _Cursor:
    def __init__(self, buf: np.ndarray):
        self.buf, self.at = buf, 0

    def u32(self) -> int:
        self.at += 4
        return _U32.unpack_from(self.buf, self.at - 4)[0]

    def u64(self) -> int:
        self.at += 8
        return _U64.unpack_from(self.buf, self.at - 8)[0]

    def string(self) -> str:
        n = self.u64()
        text = self.buf[self.at : self.at + n].tobytes().decode("utf-8")
        self.at += n
        return text

    def value(self, kind: int) -> Any:
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item_kind, n = self.u32(), self.u64()
            if item_kind == _STRING:
                return [self.string() for _ in range(n)]
            if item_kind == _ARRAY:
                return [self.value(_ARRAY) for _ in range(n)]
            return self.numbers(item_kind, n)
        return self.numbers(kind, 1)[0]

    def numbers(self, kind: int, n: int) -> list:
        dtype = _VALUE_DTYPES[kind]
        items = np.frombuffer(self.buf, dtype, n, self.at).tolist()
        self.at += n * dtype.itemsize
        return items


def read_gguf(path: str | Path) -> GGUFContents:
    """Metadata and tensor views of a GGUF file (v2 or v3); raises ``ValueError`` on a bad file."""
    data = np.memmap(path, mode="r").view(np.ndarray)  # a plain view: cheap slices
    if data[:4].tobytes() != _MAGIC:
        raise ValueError("GGUF magic invalid")
    cursor = _Cursor(data)
    cursor.at = 4
    version = cursor.u32()
    if version & 0xFFFF == 0:  # written for the other byte order: the library handles that
        return _from_library(path)
    if version not in (2, 3):
        raise ValueError(f"GGUF version {version} is not supported")
    n_tensors, n_fields = cursor.u64(), cursor.u64()
    fields: dict[str, Any] = {}
    for _ in range(n_fields):
        key = cursor.string()
        fields[key] = cursor.value(cursor.u32())
    infos = []
    for _ in range(n_tensors):
        name = cursor.string()
        dims = tuple(cursor.u64() for _ in range(cursor.u32()))
        infos.append((name, dims, cursor.u32(), cursor.u64()))
    align = int(fields.get("general.alignment", 32))
    start = cursor.at + (-cursor.at % align)
    tensors, names = [], set()
    for name, dims, raw_type, offset in infos:
        if name in names:
            raise ValueError(f"Found duplicated tensor with name {name}")
        names.add(name)
        qtype = gguf.GGMLQuantizationType(raw_type)
        n_elems = int(np.prod(dims))
        np_dims = tuple(reversed(dims))
        plain = _PLAIN_TENSOR_DTYPES.get(qtype.name)
        if plain is not None:
            dtype, count = np.dtype(plain), n_elems
        else:
            block, type_size = gguf.GGML_QUANT_SIZES[qtype]
            dtype, count = np.dtype(np.uint8), n_elems * type_size // block
            np_dims = gguf.quant_shape_to_byte_shape(np_dims, qtype)
        view = np.frombuffer(data, dtype, count, start + offset).reshape(np_dims)
        tensors.append(GGUFTensor(name, qtype, dims, view))
    return GGUFContents(fields, tensors)


def read_fields(reader: gguf.GGUFReader) -> dict[str, Any]:
    """A library reader's metadata as key -> value, without its ``GGUF.*`` header pseudo-fields."""
    return {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}


def _from_library(path: str | Path) -> GGUFContents:
    reader = gguf.GGUFReader(str(path))
    fields = read_fields(reader)
    tensors = [
        GGUFTensor(t.name, t.tensor_type, tuple(int(d) for d in t.shape), t.data) for t in reader.tensors
    ]
    return GGUFContents(fields, tensors)
