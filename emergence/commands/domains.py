"""The domain of every numeric command-line option, checked in one place before a command runs.

One gate, in one wording, so that a NaN learning rate or ``--samples 0`` ends with one line and exit 2
before anything is loaded, rather than a NaN result or a crash deep in JAX: every float option must
be finite, every integer option (a count or a seed) >= 0, and those in :data:`RULES` in their range.
Library-level checks (configs, results tables) stay where they are.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

from emergence.errors import UserError

# parameter name -> (test, what the value must be); applied in every command that has that option
RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    name: (lambda v: v > 0, "> 0")
    for name in (
        "batch_size", "chains", "samples", "pcs", "n_eval", "seeds", "steps", "max_new_tokens", "limit",
        "budget", "tokens", "params", "flops", "loss", "scale", "cutoff", "seq_len", "entities",
        "peak_tflops", "eval_tokens", "loss_tokens",
    )
} | {
    "level": (lambda v: 0 < v < 1, "in (0, 1)"),
    "holdout_top": (lambda v: 0 < v < 1, "in (0, 1)"),
    "chance": (lambda v: 0 <= v < 1, "in [0, 1)"),
}


def _option_name(name: str, default: Any) -> str:
    decls = [d for d in getattr(default, "param_decls", None) or () if d.startswith("--")]
    return decls[0] if decls else f"--{name.replace('_', '-')}"


def check_value(option: str, name: str, value: Any) -> None:
    """Raise a UserError naming ``option`` when ``value`` is outside its domain."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            check_value(option, name, item)
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{option} must be a finite number, got {value}")
    if isinstance(value, int) and value < 0:
        raise UserError(f"{option} must be >= 0, got {value}")
    rule = RULES.get(name)
    if rule is not None and isinstance(value, (int, float)) and not rule[0](value):
        raise UserError(f"{option} must be {rule[1]}, got {value:g}")


def checked(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command`` with its numeric options checked first (typer sees the same signature)."""
    signature = inspect.signature(command)
    options = {name: _option_name(name, p.default) for name, p in signature.parameters.items()}

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        for name, value in kwargs.items():
            check_value(options.get(name, name), name, value)
        return command(*args, **kwargs)

    return run


def check_all(app: Any) -> None:
    """Wrap every command registered on ``app`` and its sub-apps (before typer builds them)."""
    for info in app.registered_commands:
        if info.callback is not None and not hasattr(info.callback, "__wrapped__"):
            info.callback = checked(info.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            check_all(group.typer_instance)
