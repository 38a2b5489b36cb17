"""Host arrays in and out of programs over a model's devices, the same code on one device, a mesh, or many hosts.

A model placed on a mesh (``load_model(placement=...)``) is one global array per parameter; when the
mesh spans the processes of a multi-host job, a program over it takes global arrays only and its
outputs cannot be read whole by one process. Evaluation therefore feeds its host batches through
:func:`feeder` (replicated global arrays: every process passes the same values) and reads results
with :func:`to_host` (gathered from the other hosts where they are sharded). On one device both are
what they always were, ``jnp.asarray`` and ``np.asarray``: the CPU path is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def mesh_of(state: Any) -> Mesh | None:
    """The mesh of more than one device that ``state``'s arrays lie on, or None (one device)."""
    shardings = (getattr(leaf, "sharding", None) for leaf in jax.tree.leaves(state))
    sharding = next((s for s in shardings if s is not None), None)
    return sharding.mesh if isinstance(sharding, NamedSharding) and sharding.mesh.size > 1 else None


def feeder(state: Any) -> Callable[[Any], Any]:
    """A function putting a pytree of host arrays where a program over ``state`` takes them."""
    mesh = mesh_of(state)
    if mesh is None:
        return lambda tree: jax.tree.map(jnp.asarray, tree)
    replicated = NamedSharding(mesh, PartitionSpec())

    def put(value):
        value = np.asarray(value)
        return jax.make_array_from_callback(value.shape, replicated, lambda index: value[index])

    return lambda tree: jax.tree.map(put, tree)


def to_host(value: Any) -> np.ndarray:
    """A program's output as one numpy array on every process."""
    if getattr(value, "is_fully_addressable", True) or value.is_fully_replicated:
        return np.asarray(value)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(value, tiled=True))
