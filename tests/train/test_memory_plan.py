"""The memory planner: its bytes are those the trainer allocates and XLA compiles, on fake CPU devices."""

from __future__ import annotations

import dataclasses
import math

import jax
import pytest
from flax import nnx

from emergence.errors import UserError
from emergence.models.config import LlamaConfig
from emergence.models.llama import Llama
from emergence.train import memory_plan as mp
from emergence.train.config import FinetuneSettings, LoraConfig, MeshConfig
from emergence.train.lora import apply_lora, set_training
from emergence.train.mesh import build_mesh
from emergence.train.trainer import Trainer

SMALL = LlamaConfig(
    vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
    num_key_value_heads=2,
)  # fmt: skip
#: where the scaling of activations is not under test: one compile per plan instead of two
REMAT = SMALL.replace(remat="block")


def device_bytes(tree) -> int:
    """Bytes the arrays of ``tree`` hold on the first device."""
    return sum(
        x.addressable_shards[0].data.nbytes for x in jax.tree.leaves(tree) if hasattr(x, "addressable_shards")
    )


@pytest.mark.parametrize("method", ["full", "lora"])
def test_parameters_and_optimizer_are_what_the_trainer_allocates_per_device(method):
    settings = FinetuneSettings(method=method, mesh=MeshConfig(fsdp=4))
    mesh = build_mesh(settings.mesh)
    model = Llama(SMALL, rngs=nnx.Rngs(0))
    if method == "lora":
        model = apply_lora(model, settings.lora)
    trainable = nnx.LoRAParam if method == "lora" else nnx.Param
    trainer = Trainer(model, trainable, settings.optim, 3, mesh=mesh)

    plan = mp.plan_memory(REMAT, settings, seq_len=32, micro_batch=4, mesh=mesh)

    assert plan.params == device_bytes(trainer.params) + device_bytes(trainer.rest)
    assert plan.optimizer == device_bytes(trainer.opt_state)
    assert plan.batch == 4 * 32 * (4 + 1) // 4 + 4 * 32 * (4 + 4 + 4) // 4  # tokens+valid, targets+pos+mask


def test_lora_dropout_is_planned_as_the_trainer_runs_it_keys_and_masks_included():
    settings = FinetuneSettings(method="lora", lora=LoraConfig(dropout=0.1))
    model = apply_lora(Llama(SMALL, rngs=nnx.Rngs(0)), settings.lora)
    set_training(model, True)  # as run_finetune does when dropout > 0
    mesh = build_mesh(settings.mesh)
    trainer = Trainer(model, nnx.LoRAParam, settings.optim, 3, mesh=mesh)

    plan = mp.plan_memory(REMAT, settings, seq_len=32, micro_batch=4, mesh=mesh)
    without = mp.plan_memory(REMAT, FinetuneSettings(method="lora"), seq_len=32, micro_batch=4)

    assert plan.params == device_bytes(trainer.params) + device_bytes(trainer.rest)  # the dropout keys too
    assert plan.params > without.params and plan.activations > without.activations  # and their masks


@pytest.mark.parametrize("method", ["full", "lora"])
def test_activations_scaled_from_one_layer_equal_the_full_depth_compile(method):
    settings = FinetuneSettings(method=method)
    scaled = mp.plan_memory(SMALL, settings, seq_len=64, micro_batch=4, layers_compiled=1)
    full = mp.plan_memory(SMALL, settings, seq_len=64, micro_batch=4, layers_compiled=None)
    assert (scaled.layers_compiled, full.layers_compiled) == (1, 3)
    assert scaled.activations == full.activations


def test_with_block_remat_a_layer_costs_its_input_and_its_gradients():
    settings = FinetuneSettings(method="full")
    batch, seq = 4, 64
    two, three = (
        mp.plan_memory(
            SMALL.replace(remat="block", num_hidden_layers=n), settings, seq_len=seq, micro_batch=batch
        )
        for n in (2, 3)
    )
    d, f = SMALL.hidden_size, SMALL.intermediate_size
    layer_params = 2 * d * d + 2 * d * (SMALL.num_key_value_heads * SMALL.head_dim) + 3 * d * f + 2 * d
    assert three.activations - two.activations == 4 * (batch * seq * d + layer_params)  # fp32


def test_evaluation_of_lora_adds_the_folded_kernels():
    full = mp.plan_memory(REMAT, FinetuneSettings(method="full"), seq_len=32, micro_batch=2)
    lora = mp.plan_memory(REMAT, FinetuneSettings(method="lora"), seq_len=32, micro_batch=2)
    d, f, kv = SMALL.hidden_size, SMALL.intermediate_size, SMALL.num_key_value_heads * SMALL.head_dim
    kernels = SMALL.num_hidden_layers * (2 * d * d + 2 * d * kv + 3 * d * f)
    assert lora.evaluation - full.evaluation == 4 * kernels


def test_evaluation_of_lora_on_a_bf16_base_scores_the_adapters_unfused_and_copies_no_kernel():
    bf16 = REMAT.replace(dtype="bfloat16", param_dtype="bfloat16")
    full = mp.plan_memory(bf16, FinetuneSettings(method="full"), seq_len=32, micro_batch=2)
    lora = mp.plan_memory(bf16, FinetuneSettings(method="lora"), seq_len=32, micro_batch=2)
    assert lora.evaluation == full.evaluation


def test_largest_micro_batch_is_the_last_power_of_two_that_fits():
    settings = FinetuneSettings(method="full")
    mesh = build_mesh(settings.mesh)
    sizes = {"seq_len": 64, "eval_tokens": 16}  # the training step, not scoring, sets the peak
    at = {b: mp.plan_memory(REMAT, settings, micro_batch=b, mesh=mesh, **sizes) for b in (2, 4)}
    assert at[2].peak < at[4].peak
    limit = (at[2].peak + at[4].peak) // 2
    best, tried = mp.largest_micro_batch(REMAT, settings, limit, start=4, mesh=mesh, **sizes)
    assert best == 2
    assert sorted(tried) == [2, 4]
    assert mp.largest_micro_batch(REMAT, settings, 1000, start=1, mesh=mesh, **sizes)[0] is None


def test_a_mesh_larger_than_the_machine_is_a_user_error():
    too_many = len(jax.devices()) + 1
    with pytest.raises(UserError, match=f"needs {too_many} devices"):
        mp.plan_mesh(FinetuneSettings(mesh=MeshConfig(data=too_many)))


def test_micro_batch_must_divide_over_the_mesh():
    settings = FinetuneSettings(mesh=MeshConfig(fsdp=2))
    with pytest.raises(UserError, match="does not divide"):
        mp.plan_memory(SMALL, settings, seq_len=16, micro_batch=3)


@pytest.mark.parametrize(
    ("text", "expected"), [("80GB", 80 * 10**9), ("1.5GiB", 3 * 2**29), ("512MiB", 2**29)]
)
def test_device_memory_sizes(text, expected):
    assert mp.parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["80", "80 parsecs", "-1GB", "GB"])
def test_device_memory_needs_a_unit(text):
    if text == "80":  # a bare number is bytes
        assert mp.parse_bytes(text) == 80
        return
    with pytest.raises(UserError, match="--device-memory"):
        mp.parse_bytes(text)


def test_presets_are_the_published_shapes():
    from emergence.models.presets import PRESETS

    assert math.isclose(PRESETS["llama-7b"].num_params(), 6.74e9, rel_tol=0.01)
    assert math.isclose(PRESETS["llama-13b"].num_params(), 13.0e9, rel_tol=0.01)
    assert math.isclose(PRESETS["llama-1b"].num_params(), 1.1e9, rel_tol=0.01)
    assert dataclasses.replace(PRESETS["llama-7b"]).remat == "none"
