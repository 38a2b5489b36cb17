"""The training step's numerics: a non-finite step is never applied or saved, and how a step's examples
are split into micro-batches does not change its update."""

from __future__ import annotations

import numpy as np
import pytest
from flax import nnx

from emergence.models.registry import load_model
from emergence.train.config import MeshConfig, OptimConfig
from emergence.train.mesh import build_mesh
from emergence.train.trainer import Trainer, TrainingDiverged
from tests.compiles import counting_compiles

from .conftest import TINY, synthetic_batches


def _trainer(lr: float, weight_decay: float = 0.0) -> Trainer:
    """A trainer on a freshly loaded tiny model (the step donates the arrays it updates)."""
    model = load_model(str(TINY)).model
    optim = OptimConfig(lr=lr, schedule="constant", warmup_ratio=0.0, weight_decay=weight_decay)
    return Trainer(model, nnx.Param, optim, 4, mesh=build_mesh(MeshConfig()))


def _params(trainer: Trainer) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in trainer.flat_params().items()}


def test_a_step_with_a_non_finite_loss_is_not_applied():
    trainer = _trainer(lr=1e-3)
    batch = synthetic_batches(1)[0]
    poisoned = _params(trainer)
    embed = next(k for k in poisoned if "embed" in k)
    poisoned[embed][int(batch.tokens[0, 0, 0])] = np.nan  # the first token's embedding: the loss is NaN
    trainer.load_state(poisoned, trainer.opt_leaves())
    opt_before = [np.array(x) for x in trainer.opt_leaves()]

    metrics = trainer.step(batch, 0)

    assert not bool(metrics["ok"])
    after = _params(trainer)
    for k in poisoned:  # parameters and optimizer state stay exactly as they were
        np.testing.assert_array_equal(after[k], poisoned[k], err_msg=k)
    for x, y in zip(trainer.opt_leaves(), opt_before, strict=True):
        np.testing.assert_array_equal(np.asarray(x), y)
    with pytest.raises(TrainingDiverged, match="non-finite"):
        trainer.fit(lambda step: batch, start_step=1)


def test_an_update_that_overflows_the_parameters_is_flagged():
    # finite loss and gradients; Adam's first direction is about ±1, plus the decay 0.1 · 1 on the
    # norm weights (ones), and lr = float32's largest value times 1.1 is infinite
    trainer = _trainer(lr=float(np.finfo(np.float32).max), weight_decay=0.1)
    batch = synthetic_batches(1)[0]
    metrics = trainer.step(batch, 0)
    assert np.isfinite(float(metrics["loss"])) and np.isfinite(float(metrics["grad_norm"]))
    assert not bool(metrics["ok"])
    with pytest.raises(TrainingDiverged):
        trainer.fit(lambda step: batch, start_step=1)


def test_one_micro_batch_and_two_accumulated_halves_give_the_same_update():
    # the same 4 examples (one seeded draw), as one micro-batch of 4 and as two accumulated halves
    (one,) = synthetic_batches(1, batch_size=4, accum=1, seed=1)
    (halves_batch,) = synthetic_batches(1, batch_size=2, accum=2, seed=1)
    np.testing.assert_array_equal(one.tokens.reshape(4, -1), halves_batch.tokens.reshape(4, -1))
    whole, halves = _trainer(lr=1e-2), _trainer(lr=1e-2)
    m1 = whole.step(one, 0)  # no accumulator: the direct path
    m2 = halves.step(halves_batch, 0)  # lax.scan over two micro-batches
    assert bool(m1["ok"]) and bool(m2["ok"])
    assert float(m1["loss"]) == pytest.approx(float(m2["loss"]), rel=1e-5)
    # the gradients agree (Adam's first step is about sign(g), so compare them, not the parameters)
    assert float(m1["grad_norm"]) == pytest.approx(float(m2["grad_norm"]), rel=1e-5)
    assert float(m1["grad_norm"]) > 0


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_a_run_compiles_its_step_once(lora):
    """Every step after the first reuses the first one's program: the state a step returns has the
    placement of the state it was given (an unplaced counter once made step 2 compile it all again)."""
    from emergence.train.config import LoraConfig
    from emergence.train.lora import apply_lora

    model = load_model(str(TINY)).model
    model = apply_lora(model, LoraConfig(rank=2, alpha=4)) if lora else model
    trainer = Trainer(model, nnx.LoRAParam if lora else nnx.Param, OptimConfig(lr=1e-3), 4, mesh=build_mesh(MeshConfig()))
    batches = synthetic_batches(4, batch_size=2)
    trainer.step(batches[0], 0)
    with counting_compiles() as compiles:
        for step in range(1, 4):
            trainer.step(batches[step], step)
        trainer.fit(lambda step: batches[step], start_step=3)
    assert compiles == []


def test_each_trainer_starts_from_its_own_fresh_optimizer_state():
    """Training one trainer (whose step donates its state) leaves the next one's AdamW state fresh:
    zeros of the same shapes."""
    first = _trainer(lr=1e-2)
    first.fit(lambda step: synthetic_batches(4)[step], start_step=0)
    assert any(np.abs(np.asarray(x)).max() > 0 for x in first.opt_leaves())
    second = _trainer(lr=1e-2)
    assert second.opt_state is not first.opt_state
    for x in second.opt_leaves():
        np.testing.assert_array_equal(np.asarray(x), np.zeros_like(np.asarray(x)))
    assert [np.asarray(x).shape for x in second.opt_leaves()] == [
        np.asarray(x).shape for x in first.opt_leaves()
    ]
