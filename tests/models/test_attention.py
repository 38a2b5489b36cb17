"""``jax.nn.dot_product_attention`` (the accelerators' path) computes what the CPU's blocked
einsum path computes: grouped-query heads, padding, a shared prefix, the KV cache."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from emergence.errors import UserError
from emergence.models.attention import (
    PREFILL_QUERY_BLOCK,
    QUERY_BLOCK,
    attention,
    attention_implementation,
    grouped_attention,
)
from emergence.models.config import LlamaConfig
from emergence.models.generate import greedy_generate
from emergence.models.llama import KVCache, Llama
from emergence.models.registry import load_model
from tests.models.helpers import FIXTURES

TINY = LlamaConfig(
    vocab_size=97, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=2
)


def test_the_fused_path_equals_the_blocked_one_with_gqa_padding_and_a_shared_prefix():
    rng = np.random.default_rng(0)
    b, t, p = 3, 150, 20
    q = jnp.asarray(rng.standard_normal((b, t, 6, 8)), jnp.float32)
    k, v = (jnp.asarray(rng.standard_normal((b, 2, t, 8)), jnp.float32) for _ in range(2))
    prefix = tuple(jnp.asarray(rng.standard_normal((2, p, 8)), jnp.float32) for _ in range(2))
    prefix += (jnp.asarray(np.arange(p) < p - 4),)
    valid = np.ones((b, t), bool)
    valid[1, :30] = False  # a left-padded row
    mask = jnp.asarray(np.tril(np.ones((t, t), bool))[None] & valid[:, None, :])
    for shared in (None, prefix):
        blocked = np.asarray(attention(q, k, v, mask, shared, aligned=True))
        fused = np.asarray(attention(q, k, v, mask, shared, aligned=True, implementation="xla"))
        np.testing.assert_allclose(fused[valid], blocked[valid], atol=1e-5)  # padding queries attend to nothing
    np.testing.assert_allclose(blocked[valid], np.asarray(grouped_attention(q, k, v, mask, prefix))[valid], atol=1e-5)


def test_long_inputs_attend_in_causal_blocks_with_the_same_result():
    """Query blocks that see only keys up to their end give the full causal attention."""
    rng = np.random.default_rng(7)
    t = 2 * max(QUERY_BLOCK, PREFILL_QUERY_BLOCK) + 37
    q = jnp.asarray(rng.standard_normal((2, t, 6, 8)), jnp.float32)
    k, v = (jnp.asarray(rng.standard_normal((2, 2, t, 8)), jnp.float32) for _ in range(2))
    valid = np.ones((2, t), bool)
    valid[1, :50] = False  # a left-padded row
    mask = jnp.asarray(np.tril(np.ones((t, t), bool))[None] & valid[:, None, :])
    full = np.asarray(grouped_attention(q, k, v, mask))
    for rowwise in (False, True):  # training / scoring, and prefill (one batch row at a time)
        blocked = np.asarray(attention(q, k, v, mask, aligned=True, rowwise=rowwise))
        np.testing.assert_allclose(blocked[valid], full[valid], atol=1e-5)  # padding queries attend to nothing


def test_long_inputs_with_a_shared_prefix_attend_in_blocks_with_the_same_result():
    """The row-by-row, block-by-block path gives every row the same view of a shared prefix."""
    rng = np.random.default_rng(8)
    t, p = max(QUERY_BLOCK, PREFILL_QUERY_BLOCK) + 29, 40
    q = jnp.asarray(rng.standard_normal((3, t, 6, 8)), jnp.float32)
    k, v = (jnp.asarray(rng.standard_normal((3, 2, t, 8)), jnp.float32) for _ in range(2))
    prefix = tuple(jnp.asarray(rng.standard_normal((2, p, 8)), jnp.float32) for _ in range(2))
    prefix += (jnp.asarray(np.arange(p) < p - 5),)  # the prefix's own padding is masked
    mask = jnp.asarray(np.broadcast_to(np.tril(np.ones((t, t), bool)), (3, t, t)))
    full = np.asarray(grouped_attention(q, k, v, mask, prefix))
    for rowwise in (False, True):
        blocked = np.asarray(attention(q, k, v, mask, prefix, aligned=True, rowwise=rowwise))
        np.testing.assert_allclose(blocked, full, atol=1e-5)


def _pair():
    """The same random weights under the blocked and the XLA attention."""
    return [Llama(TINY.replace(attention=impl), rngs=nnx.Rngs(0)) for impl in ("blocked", "xla")]


def test_a_model_s_logits_are_the_same_through_xla_attention_with_padding_and_a_kv_cache():
    tokens = np.random.default_rng(1).integers(3, 97, (2, 12)).astype(np.int32)
    valid = np.ones((2, 12), bool)
    valid[0, :5] = False
    runs = []
    for model in _pair():
        logits, _ = nnx.jit(lambda m, x, ok: m(x, valid=ok))(model, jnp.asarray(tokens), jnp.asarray(valid))
        cache = KVCache.empty(TINY, 2, 16)
        _, cache = nnx.jit(lambda m, x, ok, c: m(x, valid=ok, cache=c))(model, jnp.asarray(tokens[:, :9]), jnp.asarray(valid[:, :9]), cache)
        steps = []
        for i in range(9, 12):  # decoding steps read the cache
            step, cache = nnx.jit(lambda m, x, c: m(x, cache=c))(model, jnp.asarray(tokens[:, i:i + 1]), cache)
            steps.append(step)
        runs.append((np.asarray(logits), np.asarray(jnp.concatenate(steps, axis=1))))
    (blocked, blocked_steps), (xla, xla_steps) = runs
    np.testing.assert_allclose(xla[valid], blocked[valid], atol=1e-5)
    np.testing.assert_allclose(xla_steps, blocked_steps, atol=1e-5)
    np.testing.assert_allclose(blocked_steps, blocked[:, 9:], atol=1e-5)


def test_greedy_generation_with_a_shared_prefix_is_the_same_through_xla_attention():
    rng = np.random.default_rng(3)
    block = list(rng.integers(3, 300, 40))
    prompts = [block + list(rng.integers(3, 300, n)) for n in (3, 9, 1)]
    results = []
    for impl in ("blocked", "xla"):
        loaded = load_model(str(FIXTURES / "gqa_untied"), attention=impl)
        results.append(greedy_generate(loaded.model, loaded.tokenizer, prompts, max_new_tokens=6, batch_size=4, stop_at_eos=False))
    assert [r.token_ids for r in results[0]] == [r.token_ids for r in results[1]]


def test_auto_is_the_blocked_path_on_cpu_and_cudnn_only_where_it_runs():
    assert attention_implementation(TINY, jnp.dtype(jnp.float32), 8) == "blocked"  # the tests run on CPU
    cudnn = TINY.replace(attention="cudnn")
    assert attention_implementation(cudnn, jnp.dtype(jnp.bfloat16), 64) == "cudnn"
    assert attention_implementation(cudnn, jnp.dtype(jnp.float32), 64) == "xla"  # cuDNN's kernel is half precision
    assert attention_implementation(cudnn, jnp.dtype(jnp.bfloat16), 256) == "xla"  # and heads of at most 128


def test_cudnn_runs_whole_sequences_and_xla_the_decoding_steps(monkeypatch):
    """Where cuDNN is chosen, a forward over whole rows asks for it and a KV-cache step does not
    (the calls are recorded and run by XLA here: there is no GPU in the tests)."""
    import jax

    fused = jax.nn.dot_product_attention
    asked = []

    def recording(*args, implementation=None, **kwargs):
        asked.append(implementation)
        return fused(*args, implementation="xla", **kwargs)

    monkeypatch.setattr(jax.nn, "dot_product_attention", recording)
    config = TINY.replace(attention="cudnn", dtype="bfloat16", param_dtype="bfloat16")
    model = Llama(config, rngs=nnx.Rngs(0))
    tokens = jnp.asarray(np.random.default_rng(2).integers(3, 97, (2, 6)), jnp.int32)
    model(tokens)
    assert asked == ["cudnn"] * TINY.num_hidden_layers
    asked.clear()
    model(tokens[:, :1], cache=KVCache.empty(config, 2, 8))
    assert asked == ["xla"] * TINY.num_hidden_layers


@pytest.mark.parametrize("key", ["attention", "remat", "param_dtype"])
def test_an_unknown_choice_names_the_setting(key):
    with pytest.raises(UserError, match=key):
        TINY.replace(**{key: "fastest"})
