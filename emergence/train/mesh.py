"""Device mesh (data, fsdp, tensor) and the PartitionSpecs that place parameters and batches on it.

Layout (Megatron-style tensor parallelism plus FSDP on the other weight axis):
- projections into the wide space (q/k/v, gate/up, lm_head), kernel ``[in, out]``: ``P(fsdp, tensor)``;
- projections back (o, down): ``P(tensor, fsdp)``; the embedding ``[V, d]``: ``P(tensor, fsdp)``;
- norms, RoPE buffers and LoRA adapters (tiny): replicated;
- batches ``[accum, batch, T]``: the batch axis over ``(data, fsdp)``.
An axis that does not divide a dimension is dropped for that dimension (replicated instead), so any
mesh works with any model; XLA inserts the collectives. One device is the default (every spec then
means "that device").

Multi-host: set ``MeshConfig.distributed`` and launch one process per host with JAX's usual
environment (``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID`` or a cluster
auto-detected by ``jax.distributed.initialize``); the mesh then spans ``jax.devices()`` of all hosts.
Documented, not tested here (one host, CPU only).
"""

from __future__ import annotations

import functools
import math
import re

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from emergence.errors import UserError
from emergence.train.config import MeshConfig

AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

_RULES: tuple[tuple[str, tuple[str | None, ...]], ...] = (
    (r"(q_proj|k_proj|v_proj|gate_proj|up_proj)(\.base)?\.kernel$", ("fsdp", "tensor")),
    (r"(o_proj|down_proj)(\.base)?\.kernel$", ("tensor", "fsdp")),
    (r"lm_head\.kernel$", ("fsdp", "tensor")),
    (r"embed\.embedding$", ("tensor", "fsdp")),
)

_initialized = False


def build_mesh(cfg: MeshConfig, devices: list | None = None) -> Mesh:
    """A mesh of ``data × fsdp × tensor`` devices (first devices of ``jax.devices()`` by default)."""
    global _initialized
    if cfg.distributed and not _initialized:
        jax.distributed.initialize()
        _initialized = True
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


def param_spec(path: str, shape: tuple[int, ...], mesh: Mesh) -> PartitionSpec:
    """The PartitionSpec of one parameter (by dotted path), dropping axes that do not divide."""
    for pattern, axes in _RULES:
        if re.search(pattern, path) and len(axes) == len(shape):
            return PartitionSpec(
                *(a if a and dim % mesh.shape[a] == 0 else None for a, dim in zip(axes, shape, strict=True))
            )
    return PartitionSpec()


def batch_spec(ndim: int) -> PartitionSpec:
    """``[accum, batch, ...]`` arrays: the batch axis over (data, fsdp)."""
    return PartitionSpec(None, BATCH_AXES, *([None] * (ndim - 2)))


def shard_state(state, mesh: Mesh):
    """Place every variable of an ``nnx.State`` on the mesh by :func:`param_spec` (in place; returned).

    Arrays already placed so are left alone; the others move in one batched ``device_put``."""
    from flax import nnx

    moving, targets = [], []
    for path, var in nnx.to_flat_state(state):
        value = var.get_value()
        if (
            not hasattr(value, "shape")
            or getattr(value, "dtype", None) is None
            or jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key)
        ):
            continue
        target = NamedSharding(mesh, param_spec(".".join(map(str, path)), tuple(value.shape), mesh))
        if not (isinstance(value, jax.Array) and value.sharding == target):  # equivalent is not enough:
            moving.append(var)  # the jitted step caches on the sharding's type
            targets.append(target)
    for var, value in zip(moving, jax.device_put([v.get_value() for v in moving], targets), strict=True):
        var.set_value(value)
    return state


def place_on_default_mesh(model) -> None:
    """Put a model's arrays on the default mesh (one device), where a finetuning run's models live.

    Why: a compiled program is keyed on where its inputs are placed. A sweep's full-finetuning cell
    evaluates the trainer's arrays, which are on the mesh; an unplaced base made every scorer and
    generation shape compile a second time for them. LoRA cells fold onto the base's placement
    (:func:`emergence.train.lora.fold_into_base`), so all three kinds of cell share one program.
    The arrays are aliased, not copied."""
    from flax import nnx

    shard_state(nnx.state(model), build_mesh(MeshConfig()))


def shard_batch(arrays: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Put host batch arrays on the mesh; the batch size must divide by data × fsdp."""
    ways = mesh.shape["data"] * mesh.shape["fsdp"]
    for value in arrays.values():
        if value.shape[1] % ways:
            raise UserError(f"--batch-size {value.shape[1]} does not divide by the mesh's data×fsdp = {ways}")
    # one batched transfer, not a dispatch per array
    placed = jax.device_put(list(arrays.values()), [_batch_sharding(mesh, v.ndim) for v in arrays.values()])
    return dict(zip(arrays, placed, strict=True))


@functools.lru_cache(maxsize=64)
def _batch_sharding(mesh: Mesh, ndim: int) -> NamedSharding:
    return NamedSharding(mesh, batch_spec(ndim))
