"""What a cell's key says about its checkpoint and its loss corpus: their contents, not where they lie.

A cell key must survive a move (hosts mount a shared sweep folder at different paths; a ladder is
copied to another machine) but not a change of content (a checkpoint re-trained into the same folder
is another model). So a local checkpoint or corpus is identified by a fingerprint of its bytes, never
by its path; hub ids and aliases name immutable things and stay as written. A file over 2 MiB is read
by its size, first and last MiB: the header and first tensors of a safetensors or GGUF file differ
between any two trainings, and ``sweep plan`` need not hash gigabytes. Only the files that define the
model count (config, weights, tokenizer), so a README added next to the weights changes nothing.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from emergence.sweep.config import CheckpointSpec, SweepConfig, checkpoint_id

_EDGE = 1 << 20  # bytes read from each end of a large file
_MODEL_FILES = ("config.json", "tokenizer.json", "tokenizer.model", "tokenizer_config.json")
_WEIGHT_SUFFIXES = (".safetensors", ".gguf")


@functools.lru_cache(maxsize=4096)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    """(size, mtime) are part of the cache key only: a rewritten file is read again."""
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        if size <= 2 * _EDGE:
            h.update(f.read())
        else:
            h.update(f.read(_EDGE))
            f.seek(size - _EDGE)
            h.update(f.read(_EDGE))
    return h.hexdigest()


def file_fingerprint(path: str | Path) -> str:
    stat = Path(path).stat()
    return _file_digest(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)[:16]


def model_fingerprint(path: str | Path) -> str:
    """A local model (a .gguf file or an HF directory) by the contents of the files that define it."""
    path = Path(path)
    if path.is_file():
        return file_fingerprint(path)
    files = sorted(p for p in path.iterdir() if p.is_file() and (p.name in _MODEL_FILES or _is_weights(p)))
    h = hashlib.sha256()
    for p in files:
        h.update(f"{p.name}\0{file_fingerprint(p)}\0".encode())
    return h.hexdigest()[:16]


def _is_weights(path: Path) -> bool:
    return path.suffix in _WEIGHT_SUFFIXES or (path.suffix == ".bin" and path.name.startswith("pytorch_model"))


def checkpoint_identity(ckpt: CheckpointSpec) -> dict[str, Any]:
    model = ckpt.model
    return {
        "id": checkpoint_id(ckpt),
        "model": {"content": model_fingerprint(model)} if Path(model).exists() else model,
        "params": ckpt.params,
        "tokens": ckpt.tokens,
        "flops": ckpt.flops,
    }


def loss_identity(cfg: SweepConfig) -> dict[str, Any]:
    """Every loss setting but the batch size, which does not change the loss, and the unit: both
    units are measured, the unit only picks the table's column."""
    identity = cfg.loss.scoring()
    identity.pop("batch_size")
    if identity["corpus"] and Path(identity["corpus"]).exists():
        identity["corpus"] = {"content": file_fingerprint(identity["corpus"])}
    return identity
