"""Orbax checkpoints of trainer state: the paths people type work, not only absolute ones."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from emergence.train.checkpoints import restore_checkpoint, save_checkpoint, step_dirs


def test_relative_directories_save_and_restore(tmp_path, monkeypatch):
    """`emergence finetune --out runs/x` hands the trainer a relative folder; orbax alone refuses it."""
    monkeypatch.chdir(tmp_path)
    params = {"layers.0.kernel": jnp.arange(6, dtype=jnp.float32).reshape(2, 3)}
    opt = [jnp.full((4,), 0.5, jnp.float32)]
    saved = save_checkpoint("runs/ft/checkpoints", 50, params, opt)
    assert saved == tmp_path / "runs/ft/checkpoints/step_00000050" and step_dirs("runs/ft/checkpoints")[-1][0] == 50
    abstract = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in params.items()}
    got, got_opt, step = restore_checkpoint(
        "runs/ft/checkpoints/step_00000050", abstract, [jax.ShapeDtypeStruct((4,), jnp.float32)]
    )
    assert step == 50
    np.testing.assert_array_equal(got["layers.0.kernel"], params["layers.0.kernel"])
    np.testing.assert_array_equal(got_opt[0], opt[0])
