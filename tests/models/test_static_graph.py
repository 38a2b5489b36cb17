"""A model's graph definition as a static jit argument: hashed once, one wrapper per distinct graph."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
from flax import nnx

from emergence.eval.loglikelihood import _score_batch
from emergence.models.registry import load_model
from emergence.models.static_graph import StaticGraph, split_static, static_graph

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "tiny_llama"


def test_equal_graphs_share_one_wrapper_and_other_architectures_do_not():
    """Two loads of one checkpoint give distinct but equal graph definitions: one wrapper, so a jit
    cache keyed on it hits by identity. A different architecture gets a wrapper of its own."""
    first, _ = nnx.split(load_model(str(TINY / "gqa_untied")).model)
    second, _ = nnx.split(load_model(str(TINY / "gqa_untied")).model)
    other, _ = nnx.split(load_model(str(TINY / "llama3_rope_mqa")).model)
    assert first is not second and first == second
    assert static_graph(first) is static_graph(second)
    assert static_graph(other) != static_graph(first)
    assert static_graph(static_graph(first)) is static_graph(first)
    assert isinstance(static_graph(first), StaticGraph) and static_graph(first).graphdef == first


def test_a_graph_seen_before_is_not_hashed_again(monkeypatch):
    """Why the wrapper exists: ``GraphDef.__hash__`` walks the whole node list on every call."""
    graphdef, _ = nnx.split(load_model(str(TINY / "gqa_untied")).model)
    wrapper = static_graph(graphdef)
    calls = []
    original = type(graphdef).__hash__
    monkeypatch.setattr(type(graphdef), "__hash__", lambda self: calls.append(1) or original(self))
    for _ in range(5):
        assert static_graph(graphdef) is wrapper
        hash(wrapper)
    assert calls == []


def test_checkpoints_of_one_architecture_share_a_compiled_scorer():
    """Scoring with a second checkpoint of the same architecture reuses the first one's program."""
    tokens = jnp.ones((2, 8), jnp.int32)
    valid = jnp.ones((2, 8), bool)
    positions = jnp.full((2, 1), 7, jnp.int32)
    targets = jnp.ones((2, 1, 1), jnp.int32)
    before = None
    for _ in range(2):
        graph, state = split_static(load_model(str(TINY / "gqa_untied")).model)
        _score_batch(graph, state, tokens, valid, positions, targets)
        before = before if before is not None else _score_batch._cache_size()
    assert _score_batch._cache_size() == before
