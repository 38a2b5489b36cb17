"""The KV cache and padding masks compute exactly what the plain forward computes."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from emergence.models.generate import greedy_generate
from emergence.models.llama import KVCache
from emergence.models.registry import load_model
from tests.models.helpers import FIXTURES


@nnx.jit
def _forward(model, tokens):
    return model(tokens)[0]


@nnx.jit
def _padded(model, tokens, valid):
    return model(tokens, valid=valid)[0]


@nnx.jit
def _cached(model, tokens, cache):
    return model(tokens, cache=cache)


def _model():
    return load_model(str(FIXTURES / "gqa_untied"))


def test_prefill_then_single_steps_equal_full_forward():
    loaded = _model()
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, 300, (2, 11)), jnp.int32)
    full = _forward(loaded.model, tokens)
    cache = KVCache.empty(loaded.config, 2, 32)
    pieces = []
    logits, cache = _cached(loaded.model, tokens[:, :5], cache)
    pieces.append(logits)
    for i in range(5, 11):
        logits, cache = _cached(loaded.model, tokens[:, i:i + 1], cache)
        pieces.append(logits)
    np.testing.assert_allclose(np.asarray(jnp.concatenate(pieces, 1)), np.asarray(full), atol=1e-5)


def test_left_padding_does_not_change_a_row():
    loaded = _model()
    tokens = np.random.default_rng(1).integers(3, 300, (1, 9)).astype(np.int32)
    alone = _forward(loaded.model, jnp.asarray(tokens))
    padded = np.concatenate([np.zeros((1, 4), np.int32), tokens], axis=1)
    valid = np.concatenate([np.zeros((1, 4), bool), np.ones((1, 9), bool)], axis=1)
    logits = _padded(loaded.model, jnp.asarray(padded), jnp.asarray(valid))
    np.testing.assert_allclose(np.asarray(logits)[:, 4:], np.asarray(alone), atol=1e-5)




def greedy_by_recomputing(model, ids, steps, width=32):
    """Reference decoder: run the whole sequence again for every new token (no cache).

    Sequences are right-padded to one width so that this reference compiles once; causal attention
    makes the padding invisible to the positions we read."""
    ids = list(ids)
    for _ in range(steps):
        tokens = np.zeros((1, width), np.int32)
        tokens[0, : len(ids)] = ids
        logits = _forward(model, jnp.asarray(tokens))
        ids.append(int(np.argmax(np.asarray(logits)[0, len(ids) - 1])))
    return ids


def test_batched_cached_greedy_equals_recomputation():
    loaded = _model()
    prompts = [[5, 17, 33, 100], [7, 8], [250, 251, 252, 253, 254, 255, 256]]
    results = greedy_generate(loaded.model, loaded.tokenizer, prompts, max_new_tokens=12, batch_size=4, stop_at_eos=False)
    for prompt, result in zip(prompts, results, strict=True):
        expected = greedy_by_recomputing(loaded.model, prompt, 12)[len(prompt):]
        assert list(result.token_ids) == expected
        assert result.finish == "length"


def test_a_shared_few_shot_prefix_is_computed_once_and_changes_no_token():
    """Prompts with a long common prefix (a few-shot block) decode exactly as recomputation does,
    whether the prefix is shared across rows or not, in balanced chunks (5 prompts at 4: 3 + 2)."""
    loaded = _model()
    rng = np.random.default_rng(3)
    block = list(rng.integers(3, 300, 70))
    prompts = [block + list(rng.integers(3, 300, n)) for n in (3, 9, 1, 5, 4)]
    shared = greedy_generate(loaded.model, loaded.tokenizer, prompts, max_new_tokens=8, batch_size=4, stop_at_eos=False)
    alone = greedy_generate(loaded.model, loaded.tokenizer, prompts, max_new_tokens=8, batch_size=4, stop_at_eos=False,
                            share_prefix=False)
    for prompt, a, b in zip(prompts, shared, alone, strict=True):
        assert a.token_ids == b.token_ids
        assert list(a.token_ids) == greedy_by_recomputing(loaded.model, prompt, 8, width=96)[len(prompt):]


@pytest.mark.parametrize(
    "stop",
    [
        ["\x02", "\x04", "<unk>", "</s>"],  # the tiny model's rows hit these at different steps, or never
        ["\x02", "\x04", "<unk>", "</s>", "b", "j"],  # three rows left: the shrunk batch is padded to four
    ],
)
def test_rows_that_finish_early_leave_the_batch_without_changing_any_row(stop):
    """A batch shrinks as rows hit their stop sequence; every row still gets what it gets alone."""
    loaded = _model()
    rng = np.random.default_rng(5)
    prompts = [list(rng.integers(3, 300, n)) for n in (4, 6, 3, 5, 7, 2, 6, 4)]
    stats: dict = {}
    batched = greedy_generate(loaded.model, loaded.tokenizer, prompts, max_new_tokens=16, batch_size=8, stop=stop,
                              stop_at_eos=False, stats=stats)
    for prompt, result in zip(prompts, batched, strict=True):
        (alone,) = greedy_generate(loaded.model, loaded.tokenizer, [prompt], max_new_tokens=16, stop=stop,
                                   stop_at_eos=False)
        assert (result.token_ids, result.text, result.finish) == (alone.token_ids, alone.text, alone.finish)
    assert stats["shrinks"] >= 1


def test_stop_sequences_cut_the_text():
    loaded = _model()
    (free,) = greedy_generate(loaded.model, loaded.tokenizer, [[5, 17, 33]], max_new_tokens=10, stop_at_eos=False)
    assert len(free.text) > 2
    stop = free.text[1:3]
    (cut,) = greedy_generate(loaded.model, loaded.tokenizer, [[5, 17, 33]], max_new_tokens=10, stop=[stop], stop_at_eos=False)
    assert cut.finish == "stop"
    assert cut.text == free.text[: free.text.find(stop)]


@nnx.jit
def _packed(model, tokens, valid, positions, segments):
    return model(tokens, valid=valid, positions=positions, segments=segments)[0]


def test_packed_segments_give_each_sequence_its_own_logits():
    """Three sequences packed into one row (plus padding) score exactly as if run alone."""
    loaded = _model()
    rng = np.random.default_rng(1)
    seqs = [rng.integers(0, 300, n) for n in (7, 4, 9)]
    width = 24
    tokens, valid = np.zeros((1, width), np.int32), np.zeros((1, width), bool)
    positions, segments = np.zeros((1, width), np.int32), np.zeros((1, width), np.int32)
    start = 0
    for seg, seq in enumerate(seqs, start=1):
        end = start + len(seq)
        tokens[0, start:end], valid[0, start:end] = seq, True
        positions[0, start:end], segments[0, start:end] = np.arange(len(seq)), seg
        start = end
    packed = np.asarray(_packed(loaded.model, *map(jnp.asarray, (tokens, valid, positions, segments))))
    start = 0
    for seq in seqs:
        alone = np.asarray(_forward(loaded.model, jnp.asarray(seq[None], jnp.int32)))[0]
        np.testing.assert_allclose(packed[0, start:start + len(seq)], alone, atol=1e-5)
        start += len(seq)
