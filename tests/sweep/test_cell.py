"""Each finetuned cell trains a copy of the loaded base model: the base must never change."""

from __future__ import annotations

import jax.numpy as jnp
import pytest
from flax import nnx

from emergence.models.registry import load_model
from emergence.sweep.cell import fresh_copy
from tests.sweep.helpers import TINY_LLAMA


@pytest.fixture(scope="module")
def base():
    return load_model(str(TINY_LLAMA / "gqa_tied"))


def _params(loaded):
    return [v.get_value() for _, v in nnx.to_flat_state(nnx.state(loaded.model, nnx.Param))]


def test_a_fresh_copy_shares_nothing_mutable_with_the_base(base):
    before = _params(base)
    copy = fresh_copy(base, copy_arrays=False)
    assert copy.model is not base.model
    for _, var in nnx.to_flat_state(nnx.state(copy.model, nnx.Param)):
        var.set_value(jnp.zeros_like(var.get_value()))  # what training or a LoRA merge does to a copy
    assert all(a is b for a, b in zip(_params(base), before, strict=True))
    assert all(float(jnp.abs(a).sum()) > 0 for a in _params(base))


def test_a_copy_for_full_finetuning_owns_its_arrays(base):
    """The trainer donates the arrays it updates; the base's arrays must not be the donated ones."""
    copy = fresh_copy(base, copy_arrays=True)
    assert all(a is not b for a, b in zip(_params(copy), _params(base), strict=True))
    assert all(bool(jnp.all(a == b)) for a, b in zip(_params(copy), _params(base), strict=True))


def test_few_shot_lora_and_full_finetuning_cells_share_one_compiled_scorer():
    """A sweep places its base where the trainer's models live (the default mesh): a full-finetuning
    cell's model, its LoRA cells' folded models and the base itself are then scored by one program
    per shape (each kind compiled its own before)."""
    from emergence.data.tasks import make_requests
    from emergence.eval.loglikelihood import score_requests
    from emergence.train.config import LoraConfig, MeshConfig, OptimConfig
    from emergence.train.finetune import trained_model
    from emergence.train.lora import apply_lora
    from emergence.train.mesh import build_mesh, placement
    from emergence.train.trainer import Trainer
    from tests.compiles import counting_compiles
    from tests.train.conftest import BENCHMARKS, synthetic_batches

    base = load_model(str(TINY_LLAMA / "gqa_untied"), placement=placement(build_mesh(MeshConfig())))  # as a sweep loads it
    _, requests = make_requests("cola", limit=6, data_dir=BENCHMARKS)
    few_shot = score_requests(base.model, base.tokenizer, requests)
    mesh, optim, lora = build_mesh(MeshConfig()), OptimConfig(lr=1e-2), LoraConfig(rank=2, alpha=4)
    full = Trainer(fresh_copy(base, copy_arrays=True).model, nnx.Param, optim, 2, mesh=mesh)
    wrapped = apply_lora(nnx.clone(base.model), lora)
    adapted = Trainer(wrapped, nnx.LoRAParam, optim, 2, mesh=mesh)
    for trainer in (full, adapted):
        for step, batch in enumerate(synthetic_batches(2)):
            trainer.step(batch, step)
    models = [trained_model(full, base.model, None), trained_model(adapted, base.model, lora)]
    with counting_compiles() as compiles:
        finetuned = [score_requests(model, base.tokenizer, requests) for model in models]
    assert compiles == []
    for scores in finetuned:  # really the finetuned models
        assert [s.loglikelihoods for s in scores] != [s.loglikelihoods for s in few_shot]


def test_a_row_from_a_hub_revision_records_the_commit_it_resolved_to(base, tmp_path):
    import dataclasses

    from emergence.sweep.cell import CellOutcome, results_row
    from emergence.sweep.config import load_sweep_config
    from emergence.sweep.plan import expand
    from tests.sweep.helpers import TINY_CONFIG

    cell = expand(load_sweep_config(TINY_CONFIG))[0]
    outcome = CellOutcome({"acc": 0.5}, 2, 1, [])
    assert results_row(cell, base, outcome, 1.0, "0.1.0+gabc")["code_version"] == "0.1.0+gabc"
    hub = dataclasses.replace(base, meta=dataclasses.replace(base.meta, commit="1" * 40))
    assert results_row(cell, hub, outcome, 1.0, "0.1.0+gabc")["code_version"] == f"0.1.0+gabc model@{'1' * 40}"
