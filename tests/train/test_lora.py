"""LoRA: only the adapter trains, merging changes nothing, and a saved adapter loads back exactly."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from emergence.errors import UserError
from emergence.train.adapters import load_adapter, save_lora_adapter
from emergence.train.config import LoraConfig, MeshConfig, OptimConfig
from emergence.train.lora import (
    apply_lora,
    fold_into_base,
    folded_matmul,
    lora_layers,
    lora_state,
    merge_lora,
    set_training,
)
from emergence.train.mesh import build_mesh, placement
from emergence.train.trainer import Trainer
from tests.compiles import counting_compiles

from .conftest import BENCHMARKS, synthetic_batches


def _flat(model, kind=nnx.Param):
    return {
        ".".join(map(str, p)): np.asarray(v.get_value()) for p, v in nnx.to_flat_state(nnx.state(model, kind))
    }


CFG = LoraConfig(rank=4, alpha=8, dropout=0.1)


@pytest.fixture(scope="module")
def base():
    from emergence.models.registry import load_model

    from .conftest import TINY

    return load_model(str(TINY))


@pytest.fixture(scope="module")
def trained(base):
    """A LoRA-wrapped copy of the tiny model after 3 steps with dropout (trained once per module)."""
    model = apply_lora(nnx.clone(base.model), CFG)
    lora_before = _flat(model, nnx.LoRAParam)
    set_training(model, True)
    model = _train(model)
    set_training(model, False)
    return model, lora_before


def _train(model, steps=3):
    trainer = Trainer(model, nnx.LoRAParam, OptimConfig(lr=1e-2), steps, mesh=build_mesh(MeshConfig()))
    for step, batch in enumerate(synthetic_batches(steps)):
        trainer.step(batch, step)
    return trainer.model()


def test_default_targets_wrap_every_projection_but_not_the_head(tiny):
    model = apply_lora(tiny.model, LoraConfig(rank=4))
    names = {path[-1] for path, _ in lora_layers(model)}
    assert names == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert len(list(lora_layers(model))) == 7 * tiny.config.num_hidden_layers


def test_a_fresh_adapter_does_not_change_the_logits(tiny):
    tokens = jnp.asarray([[5, 6, 7, 8, 9]])
    before, _ = tiny.model(tokens)
    after, _ = apply_lora(nnx.clone(tiny.model), LoraConfig(rank=4))(tokens)
    np.testing.assert_array_equal(np.asarray(before), np.asarray(after))


def test_training_changes_only_adapter_parameters(base, trained):
    model, lora_before = trained
    base_after = {k.replace(".base", ""): v for k, v in _flat(model, nnx.Param).items() if "lora" not in k}
    assert base_after.keys() == _flat(base.model).keys()
    for name, value in _flat(base.model).items():
        np.testing.assert_array_equal(base_after[name], value, err_msg=name)
    lora_after = _flat(model, nnx.LoRAParam)
    assert all(not np.array_equal(lora_after[k], lora_before[k]) for k in lora_before if k.endswith("lora_b"))


def test_merged_model_gives_the_logits_of_base_plus_adapter(base, trained):
    model = nnx.clone(trained[0])  # a copy: merging is in place
    tokens = jnp.asarray([[3, 1, 4, 1, 5, 9, 2, 6]])
    with_adapter, _ = model(tokens)
    assert float(jnp.max(jnp.abs(with_adapter - base.model(tokens)[0]))) > 1e-3  # the adapter does something
    merged = merge_lora(model)
    assert not list(lora_layers(merged))
    np.testing.assert_allclose(np.asarray(merged(tokens)[0]), np.asarray(with_adapter), atol=1e-5)


def test_folding_into_the_base_equals_merging_and_leaves_the_base_alone(base, trained):
    """fold_into_base (what a sweep evaluates) gives merge_lora's kernels and logits; the base keeps its own."""
    tokens = jnp.asarray([[3, 1, 4, 1, 5, 9, 2, 6]])
    base_before = _flat(base.model)
    folded = fold_into_base(base.model, lora_state(trained[0]), CFG.scale)
    merged = merge_lora(nnx.clone(trained[0]))
    assert _flat(folded).keys() == _flat(merged).keys()
    for name, value in _flat(merged).items():
        np.testing.assert_array_equal(_flat(folded)[name], value, err_msg=name)
    np.testing.assert_allclose(np.asarray(folded(tokens)[0]), np.asarray(trained[0](tokens)[0]), atol=1e-5)
    for name, value in _flat(base.model).items():
        np.testing.assert_array_equal(value, base_before[name], err_msg=name)
    with pytest.raises(UserError, match="no kernel"):
        fold_into_base(base.model, {"layers.0.nope.lora.lora_a": 0, "layers.0.nope.lora.lora_b": 0}, 1.0)


def test_a_folded_model_is_scored_by_the_program_compiled_for_its_base(base, trained):
    """The folded kernels are placed like the base's (the adapters come from the trainer's mesh),
    so a sweep's finetuned cells reuse the scorer its few-shot cell compiled for each shape."""
    from emergence.data.tasks import make_requests
    from emergence.eval.loglikelihood import score_requests

    _, requests = make_requests("cola", limit=6, data_dir=BENCHMARKS)
    before = score_requests(base.model, base.tokenizer, requests)
    folded = fold_into_base(base.model, lora_state(trained[0]), CFG.scale)
    with counting_compiles() as compiles:
        after = score_requests(folded, base.tokenizer, requests)
    assert compiles == []
    assert [s.loglikelihoods for s in after] != [s.loglikelihoods for s in before]  # really the finetuned model


def test_saved_adapter_loads_onto_a_fresh_base(base, trained, tmp_path):
    from emergence.models.registry import load_model

    save_lora_adapter(tmp_path, CFG, {"base_model": "tiny"}, lora_state(trained[0]))
    tokens = jnp.asarray([[7, 7, 8, 9]])
    expected = np.asarray(trained[0](tokens)[0])
    unmerged = load_adapter(load_model(base.meta.source), tmp_path, merge=False)
    np.testing.assert_array_equal(np.asarray(unmerged.model(tokens)[0]), expected)
    merged = load_adapter(load_model(base.meta.source), tmp_path)
    np.testing.assert_allclose(np.asarray(merged.model(tokens)[0]), expected, atol=1e-5)


def test_the_folded_matmul_has_the_two_gemm_forms_values_and_gradients():
    """fp32 LoRA runs as one GEMM with a hand-written backward; it must agree with the plain form."""
    rng = np.random.default_rng(0)
    x, w = (jnp.asarray(rng.standard_normal(s), jnp.float32) for s in ((12, 6), (6, 5)))
    a, b = (jnp.asarray(rng.standard_normal(s), jnp.float32) for s in ((6, 2), (2, 5)))
    g = jnp.asarray(rng.standard_normal((12, 5)), jnp.float32)

    def plain(x, w, a, b):
        return jnp.sum((x @ w + ((x @ a) * 1.5) @ b) * g)

    def folded(x, w, a, b):
        return jnp.sum(folded_matmul(x, w, a, b, 1.5) * g)

    np.testing.assert_allclose(folded(x, w, a, b), plain(x, w, a, b), rtol=1e-5)
    for ours, reference in zip(
        jax.grad(folded, argnums=(0, 1, 2, 3))(x, w, a, b),
        jax.grad(plain, argnums=(0, 1, 2, 3))(x, w, a, b),
        strict=True,
    ):
        np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)


def test_bad_lora_settings_are_user_errors(tiny):
    with pytest.raises(UserError, match="rank must be a positive"):
        LoraConfig(rank=0)
    with pytest.raises(UserError, match="'attn_out' matches no linear module"):
        apply_lora(tiny.model, LoraConfig(targets=("attn_out",)))
    assert jax.devices()  # JAX still fine after the errors


def test_training_and_merging_a_wrapped_clone_leaves_the_base_alone(base):
    """A LoRA run trains over a clone of the base (the sweep keeps the base for its next cells): the
    trainer donates only the adapters, and merge_lora (in place) on its model cannot reach the base."""
    base_before = _flat(base.model)
    model = apply_lora(nnx.clone(base.model), LoraConfig(rank=2, alpha=4), seed=5)
    trainer = Trainer(model, nnx.LoRAParam, OptimConfig(lr=1e-2), 2, mesh=build_mesh(MeshConfig()))
    for step, batch in enumerate(synthetic_batches(2)):
        trainer.step(batch, step)
    merge_lora(trainer.model())
    for name, value in _flat(base.model).items():
        np.testing.assert_array_equal(value, base_before[name], err_msg=name)


def _lora_curve(param_dtype: str, steps: int) -> list[float]:
    from emergence.models.registry import load_model

    from .conftest import TINY

    dtype = "bfloat16" if param_dtype == "bfloat16" else "float32"
    loaded = load_model(str(TINY), dtype=dtype, param_dtype=param_dtype)
    model = apply_lora(loaded.model, LoraConfig(rank=4, alpha=8))
    trainer = Trainer(model, nnx.LoRAParam, OptimConfig(lr=3e-3), steps, mesh=build_mesh(MeshConfig()))
    batches = synthetic_batches(2, seed=3) * (steps // 2)  # seen again and again: the loss must fall
    return [float(trainer.step(b, k)["loss"]) for k, b in enumerate(batches)]


def test_a_bf16_base_trains_its_fp32_adapters_along_the_fp32_loss_curve():
    full, half = _lora_curve("float32", 50), _lora_curve("bfloat16", 50)
    assert full[-1] < 0.8 * full[0]  # it trains
    np.testing.assert_allclose(half, full, rtol=0.02)


def test_a_bf16_base_is_evaluated_with_its_adapters_unfused_and_no_copy_of_its_kernels(tmp_path):
    """Folding into bf16 would add a copy of every adapted kernel and round the update away, so a
    bf16 base keeps its kernels and applies the adapters; a float32 base folds (the parity path)."""
    from emergence.models.registry import load_model
    from emergence.train.finetune import trained_model

    from .conftest import TINY

    for param_dtype, folds in (("bfloat16", False), ("float32", True)):
        # as a sweep loads its base: straight onto the finetuning mesh
        base = load_model(str(TINY), dtype=param_dtype, param_dtype=param_dtype,
                          placement=placement(build_mesh(MeshConfig())))
        model = apply_lora(nnx.clone(base.model), CFG)
        trainer = Trainer(model, nnx.LoRAParam, OptimConfig(lr=1e-2), 2, mesh=build_mesh(MeshConfig()))
        for step, batch in enumerate(synthetic_batches(2)):
            trainer.step(batch, step)
        evaluated = trained_model(trainer, base.model, CFG)
        assert bool(list(lora_layers(evaluated))) != folds, param_dtype
        name = "layers.0.attn.q_proj.kernel" if folds else "layers.0.attn.q_proj.base.kernel"
        assert _flat(evaluated)[name].dtype == jnp.dtype(param_dtype)
        assert all(layer.deterministic for _, layer in lora_layers(evaluated))  # dropout off
        if not folds:  # the base's own arrays, not copies
            kernel = base.model.layers[0].attn.q_proj.kernel.get_value()
            assert evaluated.layers[0].attn.q_proj.base.kernel.get_value() is kernel
        save_lora_adapter(tmp_path / param_dtype, CFG, {}, trainer.flat_params())
        fresh = load_model(str(TINY), dtype=param_dtype, param_dtype=param_dtype)
        loaded = load_adapter(fresh, tmp_path / param_dtype)
        assert bool(list(lora_layers(loaded.model))) != folds  # a saved adapter is evaluated the same way
