"""Rematerialization: the same loss and gradients, and a bounded residual per layer that scales
to the paper's 7B widths (hidden 4096, intermediate 11008, 32 heads, 16 × 1024 tokens)."""

import contextlib
import functools
import io
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.ad_checkpoint import print_saved_residuals

from emergence.models.config import LlamaConfig
from emergence.models.llama import Llama

SMALL = LlamaConfig(
    vocab_size=128, hidden_size=64, intermediate_size=172, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2
)
LLAMA_7B = LlamaConfig(
    vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=1, num_attention_heads=32, num_key_value_heads=32
)
GIB = 2**30


def _loss(model: Llama, tokens: jax.Array) -> jax.Array:
    hidden, _ = model.hidden_states(tokens)
    return jnp.mean(model.token_nll(hidden[:, :-1], tokens[:, 1:]))


def saved_residual_bytes(config: LlamaConfig, batch: int, length: int) -> int:
    """Bytes the backward pass of the training loss keeps from the forward (arguments excluded),
    measured on an abstract model: no weights are made, so 7B widths cost nothing here."""
    graphdef, state = nnx.split(nnx.eval_shape(lambda: Llama(config, rngs=nnx.Rngs(0))))
    tokens = jax.ShapeDtypeStruct((batch, length), jnp.int32)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        print_saved_residuals(lambda s, t: _loss(nnx.merge(graphdef, s), t), state, tokens)
    total = 0
    for line in printed.getvalue().splitlines():
        if "from the argument" in line:
            continue  # parameters and tokens: held anyway, not activations
        dtype, dims = re.match(r"(\w+)\[([\d,]*)\]", line).groups()
        itemsize = {"f32": 4, "bf16": 2, "f16": 2, "i32": 4, "bool": 1}[dtype]
        total += itemsize * math.prod(int(d) for d in dims.split(",") if d)
    return total


def per_layer_residual_bytes(config: LlamaConfig, batch: int, length: int) -> int:
    """What one more decoder layer adds to the saved residuals."""
    one, two = (saved_residual_bytes(config.replace(num_hidden_layers=n), batch, length) for n in (1, 2))
    return two - one


@pytest.mark.parametrize("remat", ["block", "dots"])
def test_remat_keeps_the_loss_and_gradients(remat):
    """Under plain ``jax.jit``/``jax.grad`` of a model merged inside them from its parameters and
    its other (closed-over) state, as the trainer differentiates."""
    config = SMALL.replace(num_hidden_layers=2)
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, 128, (2, 24)), jnp.int32)
    grads = {}
    for policy in ("none", remat):
        graphdef, params, rest = nnx.split(Llama(config.replace(remat=policy), rngs=nnx.Rngs(0)), nnx.Param, ...)
        loss = functools.partial(lambda p, t, g, r: _loss(nnx.merge(g, p, r), t), g=graphdef, r=rest)
        grads[policy] = jax.jit(jax.value_and_grad(loss))(params, tokens)
    np.testing.assert_allclose(grads[remat][0], grads["none"][0], rtol=1e-6)
    for a, b in zip(jax.tree.leaves(grads[remat][1]), jax.tree.leaves(grads["none"][1]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_block_remat_saves_one_hidden_state_per_layer_and_fits_7b_at_16k_tokens():
    batch, length = 2, 32
    for dtype in ("float32", "bfloat16"):
        config = SMALL.replace(dtype=dtype, param_dtype=dtype, remat="block")
        itemsize = jnp.dtype(dtype).itemsize
        # the block's input [B, T, hidden] and nothing else: linear in tokens × hidden
        assert per_layer_residual_bytes(config, batch, length) == batch * length * config.hidden_size * itemsize
    # the formula at 7B widths, 16 × 1024 tokens in bf16: 0.125 GiB per layer
    assert 16 * 1024 * LLAMA_7B.hidden_size * 2 / GIB <= 0.25
    without = per_layer_residual_bytes(SMALL.replace(dtype="bfloat16", param_dtype="bfloat16"), batch, length)
    assert without > 10 * batch * length * SMALL.hidden_size * 2  # no remat keeps far more


def test_dots_remat_saves_the_projections_but_not_the_attention_scores():
    batch, length = 2, 32
    config = SMALL.replace(remat="dots")
    d, f = config.hidden_size, config.intermediate_size
    kv = config.num_key_value_heads * config.head_dim
    projections = d + 2 * kv + d + 2 * f + d  # q, k, v, o, gate, up, down outputs
    per_layer = per_layer_residual_bytes(config, batch, length)
    assert per_layer <= batch * length * (d + projections) * 4  # plus the block's input at most
    scores = batch * config.num_attention_heads * length * length * 4
    assert per_layer < per_layer_residual_bytes(SMALL, batch, length) - scores


def test_remat_runs_under_the_trainers_lora_with_dropout():
    """LoRA modules with dropout keys, merged inside ``jax.jit``: the pattern nnx.remat rejects."""
    from emergence.models.registry import load_model
    from emergence.train.config import LoraConfig
    from emergence.train.lora import apply_lora, set_training, with_dropout_keys
    from tests.models.helpers import FIXTURES

    tokens = jnp.asarray(np.random.default_rng(0).integers(3, 300, (2, 20)), jnp.int32)
    results = {}
    for remat in ("none", "block"):
        model = apply_lora(load_model(str(FIXTURES / "gqa_untied"), remat=remat).model, LoraConfig(dropout=0.1))
        set_training(model, True)
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        rest = with_dropout_keys(rest, jax.random.key(1))
        loss = functools.partial(lambda p, t, g, r: _loss(nnx.merge(g, p, r), t), g=graphdef, r=rest)
        results[remat] = jax.jit(jax.value_and_grad(loss))(params, tokens)
    np.testing.assert_allclose(results["block"][0], results["none"][0], rtol=1e-6)
    for a, b in zip(jax.tree.leaves(results["block"][1]), jax.tree.leaves(results["none"][1]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
