"""The one user-facing error type.

Anything the *user* got wrong (a path that does not exist, a malformed row, an unknown key, an
unsupported quantization) is raised as :class:`UserError` with a single line that names the culprit
(file, row, key, tensor). The CLI turns it into that line on stderr and exit code 2, never a
traceback. Bugs stay ordinary exceptions so that they *do* show a traceback.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

# Exit codes a script can trust (README "Exit codes"): every command ends with one of these.
EXIT_OK = 0  # everything done
EXIT_PARTIAL = 1  # some sweep cells or fits failed (or a table would be partial); the rest is done
EXIT_USER_ERROR = 2  # the user's input is wrong: one line on stderr names the file, row, key or option
EXIT_INTERNAL = 3  # a bug in emergence: a short traceback (EMERGENCE_DEBUG=1 for the full one)


class _OneLineError(Exception):
    """An error the CLI prints as its one-line message (whitespace and newlines collapsed)."""

    def __init__(self, message: str):
        message = " ".join(str(message).split())  # one line, always
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UserError(_OneLineError):
    """A problem with the user's input, reported as one line and exit code 2."""


def check_fields(obj: Any, test: Callable[[Any], bool], what: str, *names: str, where: str = "") -> None:
    """The one wording of a config's range checks: "<where><name> must be <what>, got <value>" for
    the first of ``names`` whose value on ``obj`` fails ``test`` (an unset value, None, passes)."""
    for name in names:
        value = getattr(obj, name)
        if value is not None and not test(value):
            shown = repr(value) if isinstance(value, str) else value
            raise UserError(f"{where}{name} must be {what}, got {shown}")


def finite_positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


class PartialFailure(_OneLineError):
    """Some of a run's units (sweep cells, fits) failed and the rest are done: one line, exit code 1.

    Library code (the demo, the study) raises it where a command-line tool would exit 1, so that a
    script can tell "some cells failed, rerun to retry them" from a mistake in its input (2).
    """


def expected_error_line(err: BaseException) -> str | None:
    """One line for an error that is the user's input or environment, not a bug; None for a bug.

    Why a list of types and not ``except Exception``: an OS error (a path that is a file, a folder
    that cannot be written, a full disk), malformed JSON/YAML and an unreadable safetensors file are
    about the files the user gave, whichever line of the library met them first; anything else is
    ours and keeps its traceback (exit 3), so a bug is never disguised as a user mistake.
    """
    if isinstance(err, UserError):
        return str(err)
    if isinstance(err, OSError):
        what = err.strerror or type(err).__name__
        names = [str(n) for n in (err.filename, err.filename2) if n is not None]
        return " ".join(f"{what}: {' -> '.join(names) if names else err}".split())
    import json

    if isinstance(err, json.JSONDecodeError):
        return f"not valid JSON ({err.msg} at line {err.lineno} column {err.colno}; truncated or corrupt?)"
    if isinstance(err, UnicodeDecodeError):
        return f"a file that should be text is not ({err.reason} at byte {err.start})"
    if isinstance(err, (OverflowError, FloatingPointError)):
        return " ".join(f"numeric error: {err}".split())
    kind = f"{type(err).__module__}.{type(err).__name__}"
    if kind.startswith("yaml.") and "Error" in type(err).__name__:
        return " ".join(f"not valid YAML: {err}".split())
    if "safetensor" in kind.lower():
        return " ".join(f"cannot read safetensors: {err}".split())
    return None
