"""Each finetuned cell trains a copy of the loaded base model: the base must never change."""

from __future__ import annotations

import jax.numpy as jnp
import pytest
from flax import nnx

from emergence.models.registry import load_model
from emergence.sweep.cell import fresh_copy
from tests.sweep.helpers import TINY_LLAMA


@pytest.fixture(scope="module")
def base():
    return load_model(str(TINY_LLAMA / "gqa_tied"))


def _params(loaded):
    return [v.get_value() for _, v in nnx.to_flat_state(nnx.state(loaded.model, nnx.Param))]


def test_a_fresh_copy_shares_nothing_mutable_with_the_base(base):
    before = _params(base)
    copy = fresh_copy(base, copy_arrays=False)
    assert copy.model is not base.model
    for _, var in nnx.to_flat_state(nnx.state(copy.model, nnx.Param)):
        var.set_value(jnp.zeros_like(var.get_value()))  # what training or a LoRA merge does to a copy
    assert all(a is b for a, b in zip(_params(base), before, strict=True))
    assert all(float(jnp.abs(a).sum()) > 0 for a in _params(base))


def test_a_copy_for_full_finetuning_owns_its_arrays(base):
    """The trainer donates the arrays it updates; the base's arrays must not be the donated ones."""
    copy = fresh_copy(base, copy_arrays=True)
    assert all(a is not b for a, b in zip(_params(copy), _params(base), strict=True))
    assert all(bool(jnp.all(a == b)) for a, b in zip(_params(copy), _params(base), strict=True))
