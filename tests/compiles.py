"""Counting XLA compilations: the tests that pin "this program is compiled once and reused"."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax


@contextlib.contextmanager
def counting_compiles() -> Iterator[list[float]]:
    """The XLA compilations inside the block, one entry (seconds) each: a compiled step that a run
    should reuse but compiles again costs seconds to minutes per run on a real model."""
    compiles: list[float] = []

    def listener(event: str, duration: float, **_) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield compiles
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
