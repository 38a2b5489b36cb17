"""Shared helpers for the training tests: the tiny fixture model and synthetic batches."""

from __future__ import annotations

from pathlib import Path

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
