"""Host arrays in and out of programs: unchanged on one device, replicated global arrays on a mesh."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from emergence.models.global_arrays import feeder, mesh_of, to_host
from emergence.train.config import MeshConfig
from emergence.train.mesh import build_mesh


def _state(mesh):
    return {"w": jax.device_put(np.ones((4, 8), np.float32), NamedSharding(mesh, PartitionSpec("fsdp")))}


def test_on_one_device_inputs_are_placed_as_jnp_asarray_places_them():
    state = _state(build_mesh(MeshConfig()))
    assert mesh_of(state) is None
    tokens = np.arange(6, dtype=np.int32).reshape(2, 3)
    (placed,) = feeder(state)((tokens,))
    assert placed.sharding == jnp.asarray(tokens).sharding  # the CPU path's programs, as before
    np.testing.assert_array_equal(to_host(placed), tokens)


def test_on_a_mesh_inputs_are_replicated_global_arrays_and_outputs_come_back_whole():
    if jax.device_count() < 4:
        pytest.skip("needs XLA_FLAGS=--xla_force_host_platform_device_count=4")
    mesh = build_mesh(MeshConfig(fsdp=4))
    state = _state(mesh)
    assert mesh_of(state) is mesh
    tokens = np.arange(16, dtype=np.float32).reshape(2, 8)
    (placed,) = feeder(state)((tokens,))
    assert placed.sharding == NamedSharding(mesh, PartitionSpec()) and placed.is_fully_replicated
    product = jax.jit(lambda s, x: x @ s["w"].T)(state, placed)  # [2, 4], laid out by XLA
    np.testing.assert_array_equal(to_host(product), tokens @ np.ones((8, 4), np.float32))
