"""Files the way every command writes and reads them: atomic, group-readable, confined, and honest.

Why one writer: ``tempfile.mkstemp`` creates its file mode 0600, so a "temp file + rename" written
by hand is private even in a folder a group shares. Here a temp file gets the mode an ordinary
``open()`` would have given it (``0o666 & ~umask``) before it is renamed into place.

The readers turn a malformed file (truncated JSON, garbage, a directory where a file belongs) into a
:class:`~emergence.errors.UserError` that names the file, so no command ends in a traceback because a
file on disk is damaged. :func:`check_name` is the one rule for names from a config that become path
components (ladder and ladder-model names): a name that could climb out of the output folder (``..``,
an absolute path, a separator, a NUL) is refused before anything is written.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from emergence.errors import UserError

# a path component that stays where it is put: starts with a letter or digit (so never "." or ".."
# and never hidden), then letters, digits and . _ @ + - only (no separator, no NUL, no space)
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]*")
MAX_NAME = 128

_umask_lock = threading.Lock()
_umask: int | None = None


def check_name(name: Any, what: str, *, reserved: tuple[str, ...] = ()) -> str:
    """``name`` if it is a safe single path component, else a UserError naming ``what``."""
    text = str(name)
    if (
        not isinstance(name, str)
        or not SAFE_NAME.fullmatch(text)
        or len(text) > MAX_NAME
        or text in reserved
    ):
        why = f"'{text}' is reserved" if text in reserved else f"{text!r} is not a safe name"
        raise UserError(
            f"{what}: {why} (use letters, digits and . _ @ + -, starting with a letter or digit, "
            f"at most {MAX_NAME} characters; it becomes a folder name)"
        )
    return text


def file_mode() -> int:
    """The mode ``open()`` gives a new file under this process's umask (0o644 under umask 022)."""
    global _umask
    with _umask_lock:
        if _umask is None:
            # os.umask can only be read by setting it; do it once, under a lock, and restore it
            current = os.umask(0o022)
            os.umask(current)
            _umask = current
        return 0o666 & ~_umask


def share_dir(path: str | Path) -> None:
    """Give a folder made by ``mkdtemp`` (mode 0700) the mode ``mkdir`` would have (0755 usually)."""
    file_mode()  # reads the umask once
    os.chmod(path, 0o777 & ~(_umask or 0))


def share(path: str | Path) -> None:
    """Give a file made by ``mkstemp`` (mode 0600) the mode an ordinary ``open()`` would have."""
    os.chmod(path, file_mode())


@contextmanager
def atomic_path(path: str | Path, *, suffix: str = ".tmp") -> Iterator[Path]:
    """A temp path next to ``path``; on success it gets the usual file mode and replaces ``path``.

    A reader (or a process killed at any instant) sees the old file or the new one, never half; on
    an error the temp file is removed, so nothing is left behind in the output folder."""
    path = Path(path)
    _check_replaceable_file(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        share(tmp)
        _check_replaceable_file(path)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_replaceable_file(path: Path) -> None:
    """Only a regular file (or nothing) may be replaced: renaming over a device, a FIFO or a folder
    would destroy it (``--out /dev/full`` run as root replaced the device with a file)."""
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise UserError(f"{path}: is {kind}; not replacing it with a file")


def atomic_write(path: str | Path, write: Callable[[IO], None], *, binary: bool = False) -> Path:
    """Write ``path`` atomically through ``write(handle)`` (see :func:`atomic_path`)."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb" if binary else "w") as handle:
        write(handle)
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Atomically replace ``path`` with ``text``."""
    return atomic_write(path, lambda handle: handle.write(text))


def write_json(path: str | Path, data: Any, *, indent: int | None = 2, strict: bool = False) -> Path:
    """Atomically replace ``path`` with ``data`` as JSON. ``strict`` (reports other tools read: fits,
    analyses, summaries): NaN and ±inf become null, since strict JSON has no spelling for them, and
    keys are sorted so reruns diff cleanly."""
    if strict:
        text = json.dumps(finite_or_null(data), indent=indent, sort_keys=True, allow_nan=False)
        return write_text(path, text + "\n")
    return atomic_write(path, lambda handle: json.dump(data, handle, indent=indent, allow_nan=True))


def finite_or_null(value: Any) -> Any:
    """Plain data with NaN and ±inf as None: strict JSON has no spelling for them."""
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_null(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_json(path: str | Path, what: str = "") -> Any:
    """The JSON in ``path``; a missing, unreadable or malformed file is a UserError naming it."""
    path = Path(path)
    label = f"{what} {path}" if what else str(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"{label}: file not found") from None
    except IsADirectoryError:
        raise UserError(f"{label}: is a directory, expected a JSON file") from None
    except UnicodeDecodeError:
        raise UserError(f"{label}: not a text file (expected JSON)") from None
    except OSError as err:
        raise UserError(f"{label}: cannot read ({err.strerror or err})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        where = "empty file" if not text.strip() else f"{err.msg} at line {err.lineno} column {err.colno}"
        raise UserError(f"{label}: not valid JSON ({where}; truncated or corrupt?)") from None


def read_json_object(path: str | Path, what: str = "") -> dict[str, Any]:
    """Like :func:`read_json`, and the top level must be an object (a mapping)."""
    data = read_json(path, what)
    if not isinstance(data, dict):
        label = f"{what} {path}" if what else str(path)
        raise UserError(f"{label}: expected a JSON object at the top, got {type(data).__name__}")
    return data


def check_output_file(path: str | Path, option: str = "--out") -> Path:
    """Refuse an output file path that cannot be written as a file, before any work is done:
    an existing directory, or a parent that is a regular file."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path}: is a directory, expected a file path")
    if path.exists() and not path.is_file():
        raise UserError(f"{option} {path}: is not a regular file (a device or a pipe); not replacing it")
    return _check_parents(path, option)


def check_output_dir(path: str | Path, option: str = "--out") -> Path:
    """Refuse an output folder that is a regular file or lies under one, before any work is done."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path}: is a file, expected a folder")
    return _check_parents(path, option)


def _check_parents(path: Path, option: str) -> Path:
    """The nearest existing ancestor of ``path`` must be a folder (not a regular file)."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{option} {path}: {parent} is a file, not a folder")
            break
    return path
