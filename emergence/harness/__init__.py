"""lm-evaluation-harness tasks on our engine (the optional ``harness`` extra).

``backend``: our model as a harness model (``emergence``); ``tasks``: a harness task's defaults,
training split and rendering, for sweeps; ``run``: harness tasks end to end into our records and
metrics. Importing this package imports nothing: each module pulls ``lm_eval`` when used, and the
core package imports them only when a task is named ``harness:NAME`` (:data:`PREFIX`).
"""

PREFIX = "harness:"
INSTALL = "pip install -e '.[harness]'"


def task_name(task: str) -> str | None:
    """``NAME`` of a ``harness:NAME`` task line, None for a built-in task."""
    return task[len(PREFIX):] if task.startswith(PREFIX) else None


def require() -> None:
    """A one-line :class:`~emergence.errors.UserError` when lm-eval is not installed."""
    from emergence.errors import UserError

    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise UserError(f"harness tasks need lm-evaluation-harness: {INSTALL}") from None
