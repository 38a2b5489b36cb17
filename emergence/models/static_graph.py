"""A model's ``nnx.GraphDef`` as a static jit argument whose hash is computed once.

Why: every jitted step of the project (training, scoring, generation, pretraining loss) takes the
model's graph definition as a static argument, and jit hashes its static arguments on every call.
``GraphDef.__hash__`` builds and hashes tuples of the whole node list each time: 1.2 ms for the CI
sweep's 2-layer model and 11 ms for SmolLM2 wrapped with LoRA (measured), paid on every training
step and every scored batch. On the tiny CI sweep that was several milliseconds of a ~60 ms cell.

:func:`static_graph` wraps a graph definition in a :class:`StaticGraph` that carries its hash, and
hands out one wrapper per distinct graph: equal definitions (checkpoints of one architecture, or
the same model split twice) get the same wrapper, so jit's cache compares its key by identity.
Jitted functions take the wrapper and unwrap it with ``.graphdef``.

:class:`SplitModel` is a model handed to those paths already split. A sweep evaluates many models
that exist only to be split again (the base of a few-shot cell, whose split is kept; a LoRA cell's
folded kernels over that base's state). Building each as a module (``nnx.merge``) and splitting it
again walks the whole module tree twice: on SmolLM2, a LoRA cell's fold took 29-31 ms as a module
and 9 ms as a SplitModel, and splitting the module again 42-50 ms
(``scripts/probe_sweep_parts.py --fold smollm2-135m``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from flax import nnx

#: How many graph definitions (by object) and distinct graphs (by value) are remembered. Each entry
#: holds a graph definition alive (no arrays: only the module tree's structure).
_MAX_ENTRIES = 256


class StaticGraph:
    """An ``nnx.GraphDef`` with its hash computed once; equal to another wrapper of an equal graph."""

    __slots__ = ("graphdef", "_hash")

    def __init__(self, graphdef: nnx.GraphDef):
        self.graphdef = graphdef
        self._hash = hash(graphdef)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, StaticGraph) or self._hash != other._hash:
            return False
        return self.graphdef == other.graphdef

    def __repr__(self) -> str:
        return f"StaticGraph(hash={self._hash:#x})"


_BY_OBJECT: OrderedDict[int, tuple[nnx.GraphDef, StaticGraph]] = OrderedDict()
_BY_VALUE: OrderedDict[StaticGraph, StaticGraph] = OrderedDict()


def static_graph(graphdef: nnx.GraphDef | StaticGraph) -> StaticGraph:
    """The wrapper of ``graphdef``: found by object identity when this very object was seen before
    (no hashing), else by value (one hash and comparison), else new."""
    if isinstance(graphdef, StaticGraph):
        return graphdef
    seen = _BY_OBJECT.get(id(graphdef))
    if seen is not None and seen[0] is graphdef:
        _BY_OBJECT.move_to_end(id(graphdef))
        return seen[1]
    fresh = StaticGraph(graphdef)
    wrapper = _BY_VALUE.setdefault(fresh, fresh)
    _BY_VALUE.move_to_end(wrapper)
    # the entry keeps ``graphdef`` alive, so its id cannot be reused by another object meanwhile
    _BY_OBJECT[id(graphdef)] = (graphdef, wrapper)
    for table in (_BY_OBJECT, _BY_VALUE):
        while len(table) > _MAX_ENTRIES:
            table.popitem(last=False)
    return wrapper


@dataclass(frozen=True)
class SplitModel:
    """A model as (graph, state), for the paths that only split it (scoring, generation, loss).

    ``config`` is the model's config: those paths read it too. The state's arrays may be shared
    with other models, so it must never be changed in place."""

    graph: StaticGraph
    state: nnx.State
    config: Any

    def module(self) -> nnx.Module:
        """The model as a module with Variables of its own (for anything that calls it directly)."""
        return nnx.merge(self.graph.graphdef, self.state, copy=True)


def split_static(model: nnx.Module | SplitModel) -> tuple[StaticGraph, nnx.State]:
    """``nnx.split(model)`` with the graph definition as a :class:`StaticGraph`; a
    :class:`SplitModel` as it is."""
    if isinstance(model, SplitModel):
        return model.graph, model.state
    graphdef, state = nnx.split(model)
    return static_graph(graphdef), state
