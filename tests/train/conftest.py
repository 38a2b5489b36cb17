"""Shared helpers for the training tests: the tiny fixture model and synthetic batches."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np
import pytest

from emergence.train.examples import Example, make_batch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TINY = FIXTURES / "tiny_llama" / "gqa_untied"
BENCHMARKS = FIXTURES / "benchmarks"


@pytest.fixture
def tiny():
    from emergence.models.registry import load_model

    return load_model(str(TINY))


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


def synthetic_batches(n_steps: int, batch_size: int = 4, accum: int = 1, seed: int = 0, vocab: int = 300):
    """Random token sequences whose last 3 tokens carry loss (a fixed shape: one compile)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_steps):
        examples = [
            Example(rng.integers(1, vocab, size=int(rng.integers(8, 16))).astype(np.int32), 3)
            for _ in range(batch_size * accum)
        ]
        out.append(make_batch(examples, accum, batch_size, shape=(16, 8)))
    return out
