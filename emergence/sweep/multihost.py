"""A sweep over the processes of a multi-host job (``mesh.distributed``): process 0 leads, the others follow.

A cell whose mesh spans hosts is one program that every process runs together, so all of them must
compute the same cells in the same order. Process 0 alone claims cells and writes files (records,
logs, finetuning outputs); it announces each cell it has claimed by its position in the plan, which
every process expands from the same config (checked once, from a digest of the cell keys), and the
others compute that cell with it and write nothing. A one-process run never calls these.
"""

from __future__ import annotations

import hashlib

import jax
import numpy as np

from emergence.errors import UserError

DONE = -1  # announced when process 0 has no cell left


def check_same_plan(keys: list[str]) -> None:
    """Every process plans the cells process 0 plans, in its order (else each would run other programs)."""
    from jax.experimental import multihost_utils

    digest = np.frombuffer(hashlib.sha256("\n".join(keys).encode()).digest(), np.int32)
    same = np.array_equal(multihost_utils.broadcast_one_to_all(digest), digest)
    agreed = multihost_utils.process_allgather(np.int32(same))
    if not agreed.all():
        raise UserError(
            f"processes {np.flatnonzero(agreed == 0).tolist()} plan other cells than process 0: every host "
            "must read the same config and the same checkpoints"
        )


def check_meshes_span_hosts(cfg) -> None:
    """Every checkpoint's mesh holds devices of every process: each process computes every cell."""
    from emergence.sweep.config import checkpoint_id
    from emergence.train.mesh import build_mesh

    for ckpt in cfg.checkpoints:
        mesh = build_mesh(cfg.checkpoint_mesh(ckpt))
        if {d.process_index for d in mesh.devices.flat} != set(range(jax.process_count())):
            raise UserError(
                f"checkpoint '{checkpoint_id(ckpt)}': its mesh of {mesh.size} devices leaves out processes "
                f"of this {jax.process_count()}-process job, whose every process computes every cell; "
                "give it more devices (an axis of -1 takes them all)"
            )


def broadcast_position(position: int = 0) -> int:
    """The cell process 0 announces next, by its position in the plan (or :data:`DONE`); the other
    processes' ``position`` is ignored."""
    from jax.experimental import multihost_utils

    return int(multihost_utils.broadcast_one_to_all(np.int32(position)))
