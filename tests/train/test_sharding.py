"""Sharding: four (fake CPU) devices train like one, and checkpoints move between device counts."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from emergence.train.checkpoints import restore_checkpoint, save_checkpoint, step_dirs
from emergence.train.config import MeshConfig, OptimConfig
from emergence.train.mesh import build_mesh
from emergence.train.trainer import Trainer
from tests.compiles import counting_compiles

from .conftest import synthetic_batches

pytestmark = pytest.mark.skipif(
    len(jax.devices()) < 4, reason="needs 4 devices (XLA_FLAGS in tests/conftest.py)"
)
STEPS = 4


def _copy(model):
    """A model with its own buffers (full finetuning donates the trained arrays)."""
    graphdef, state = nnx.split(model)
    return nnx.merge(graphdef, jax.tree.map(jnp.array, state))


def _trainer(model, mesh_cfg):
    return Trainer(
        _copy(model), nnx.Param, OptimConfig(lr=3e-3, warmup_ratio=0.25), STEPS, mesh=build_mesh(mesh_cfg)
    )


def _losses(trainer, batches):
    return [float(trainer.step(b, k)["loss"]) for k, b in enumerate(batches)]


def test_four_devices_give_the_loss_curve_of_one_and_checkpoints_move_between_them(tiny, tmp_path):
    batches = synthetic_batches(STEPS, batch_size=4, accum=2)
    one = _trainer(tiny.model, MeshConfig())
    four = _trainer(tiny.model, MeshConfig(data=1, fsdp=2, tensor=2))
    kernel = four.params["layers"][0]["attn"]["q_proj"]["kernel"].get_value()
    assert len(kernel.sharding.device_set) == 4 and kernel.sharding.spec == jax.sharding.PartitionSpec(
        "fsdp", "tensor"
    )
    curve_one, curve_four = _losses(one, batches), _losses(four, batches)
    assert curve_one[-1] < curve_one[0]  # it trains
    np.testing.assert_allclose(curve_four, curve_one, rtol=2e-4)

    save_checkpoint(tmp_path, STEPS, four.flat_params(), four.opt_leaves())
    assert step_dirs(tmp_path)[-1][0] == STEPS
    fresh = _trainer(tiny.model, MeshConfig())
    params, opt, step = restore_checkpoint(tmp_path / f"step_{STEPS:08d}", *fresh.abstract_state())
    fresh.load_state(params, opt)
    assert step == STEPS
    for name, value in fresh.flat_params().items():
        assert len(value.sharding.device_set) == 1
        np.testing.assert_array_equal(np.asarray(value), np.asarray(four.flat_params()[name]), err_msg=name)
    for a, b in zip(fresh.opt_leaves(), four.opt_leaves(), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_adam_moments_are_placed_like_their_parameters_and_the_step_compiles_once(tiny):
    trainer = _trainer(tiny.model, MeshConfig(fsdp=4))
    shardings = {name: value.sharding for name, value in trainer.flat_params().items()}
    assert shardings["layers.0.attn.q_proj.kernel"].spec == jax.sharding.PartitionSpec("fsdp", "tensor")
    mu, nu = trainer.opt_state[-1].mu, trainer.opt_state[-1].nu  # clip, then scale_by_adam
    for moments in (mu, nu):
        for path, var in nnx.to_flat_state(moments):
            name = ".".join(map(str, path))
            assert var.get_value().sharding == shardings[name], name  # at step 0, before any update
    first, *rest = synthetic_batches(3, batch_size=4)
    trainer.step(first, 0)
    with counting_compiles() as compiles:
        for k, batch in enumerate(rest, start=1):
            trainer.step(batch, k)
    assert compiles == [] and trainer._step._cache_size() == 1  # steps 2 and 3 reuse step 1's program
