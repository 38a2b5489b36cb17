"""Device mesh (data, fsdp, tensor) and the PartitionSpecs that place parameters and batches on it.

Megatron-style tensor parallelism plus FSDP on the other weight axis: projections into the wide
space (q/k/v, gate/up, lm_head) are ``P(fsdp, tensor)``, projections back (o, down) and the embedding
``P(tensor, fsdp)``; norms, RoPE buffers and LoRA adapters are replicated; batches ``[accum, batch,
T]`` split the batch axis over ``(data, fsdp)``. An axis that does not divide a dimension is dropped
for it, so any mesh works with any model. ``MeshConfig.distributed`` spans the devices of every host
(one process per host: :func:`start_distributed`; tests/sweep/test_multihost.py runs two on one machine).
"""

from __future__ import annotations

import functools
import math
import os
import re

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from emergence.errors import UserError
from emergence.train.config import MeshConfig

AXES = ("data", "fsdp", "tensor")

_RULES: tuple[tuple[str, tuple[str | None, ...]], ...] = (
    (r"(q_proj|k_proj|v_proj|gate_proj|up_proj)(\.base)?\.kernel$", ("fsdp", "tensor")),
    (r"(o_proj|down_proj)(\.base)?\.kernel$", ("tensor", "fsdp")),
    (r"lm_head\.kernel$", ("fsdp", "tensor")),
    (r"embed\.embedding$", ("tensor", "fsdp")),
)


def build_mesh(cfg: MeshConfig, devices: list | None = None) -> Mesh:
    """A mesh of ``data × fsdp × tensor`` devices (first devices of ``jax.devices()`` by default)."""
    if cfg.distributed:
        start_distributed()
    devices = list(devices if devices is not None else jax.devices())
    sizes = [cfg.data, cfg.fsdp, cfg.tensor]
    if -1 in sizes:
        known = math.prod(s for s in sizes if s != -1)
        sizes[sizes.index(-1)] = max(1, len(devices) // known)
    need = math.prod(sizes)
    if need > len(devices):
        raise UserError(
            f"mesh data×fsdp×tensor = {'×'.join(map(str, sizes))} needs {need} devices; {len(devices)} available"
        )
    return Mesh(np.asarray(devices[:need]).reshape(sizes), AXES)


def start_distributed() -> None:
    """Join the multi-host job, once, before anything starts a JAX backend: a cluster's environment
    (SLURM, Open MPI, Kubernetes, Cloud TPU) says which process this is; elsewhere
    ``JAX_COORDINATOR_ADDRESS`` (host:port of process 0), ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` do."""
    if jax.distributed.is_initialized():
        return
    count, index = os.environ.get("JAX_NUM_PROCESSES"), os.environ.get("JAX_PROCESS_ID")
    jax.distributed.initialize(
        num_processes=int(count) if count else None, process_id=int(index) if index else None
    )


def param_spec(path: str, shape: tuple[int, ...], mesh: Mesh) -> PartitionSpec:
    """The PartitionSpec of one parameter (by dotted path), dropping axes that do not divide."""
    for pattern, axes in _RULES:
        if re.search(pattern, path) and len(axes) == len(shape):
            return PartitionSpec(
                *(a if a and dim % mesh.shape[a] == 0 else None for a, dim in zip(axes, shape, strict=True))
            )
    return PartitionSpec()


def placement(mesh: Mesh):
    """Where ``load_model(placement=...)`` puts each parameter as it is read: its sharding on
    ``mesh`` by :func:`param_spec`, so no device ever holds the whole model."""
    return lambda path, shape: NamedSharding(mesh, param_spec(path, tuple(shape), mesh))


def state_shardings(state, mesh: Mesh) -> list[tuple]:
    """(variable, its sharding on ``mesh`` by :func:`param_spec`) for every array of an ``nnx.State``
    (concrete or abstract); PRNG keys are left out."""
    from flax import nnx

    out = []
    for path, var in nnx.to_flat_state(state):
        value = var.get_value()
        if getattr(value, "dtype", None) is None or jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
            continue
        out.append((var, NamedSharding(mesh, param_spec(".".join(map(str, path)), tuple(value.shape), mesh))))
    return out


def shard_state(state, mesh: Mesh):
    """Place every variable of an ``nnx.State`` on the mesh by :func:`param_spec` (in place; returned);
    the arrays not placed so already move in one batched ``device_put``."""
    moving = [  # an equivalent sharding is not enough: the jitted step caches on the sharding's type
        (var, target)
        for var, target in state_shardings(state, mesh)
        if not (isinstance(var.get_value(), jax.Array) and var.get_value().sharding == target)
    ]
    placed = jax.device_put([var.get_value() for var, _ in moving], [target for _, target in moving])
    for (var, _), value in zip(moving, placed, strict=True):
        var.set_value(value)
    return state


def shard_batch(arrays: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Put host batch arrays on the mesh; the batch size must divide by data × fsdp."""
    ways = mesh.shape["data"] * mesh.shape["fsdp"]
    for value in arrays.values():
        if value.shape[1] % ways:
            raise UserError(f"--batch-size {value.shape[1]} does not divide by the mesh's data×fsdp = {ways}")
    placed = jax.device_put(list(arrays.values()), [batch_sharding(mesh, v.ndim) for v in arrays.values()])
    return dict(zip(arrays, placed, strict=True))


@functools.lru_cache(maxsize=64)
def batch_sharding(mesh: Mesh, ndim: int) -> NamedSharding:
    """``[accum, batch, ...]`` arrays: the batch axis over (data, fsdp)."""
    return NamedSharding(mesh, PartitionSpec(None, ("data", "fsdp"), *([None] * (ndim - 2))))
