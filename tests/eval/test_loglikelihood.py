"""The batched scorer returns exactly the log-likelihoods a naive full-sequence computation gives."""

import jax
import numpy as np
import pytest
from flax import nnx

from emergence.data.tasks import Request
from emergence.eval.loglikelihood import (
    _shared_prefixes,
    build_rows,
    encode_requests,
    length_bucket,
    score_requests,
)
from emergence.eval.tokenization import encode_pair
from emergence.models.registry import load_model
from tests.models.helpers import FIXTURES


@pytest.fixture(scope="module")
def tiny():
    return load_model(str(FIXTURES / "gqa_untied"))


def naive_loglikelihood(loaded, context, continuation, max_length=None):
    """One pair, one full forward, log-softmax everywhere: the definition, without any shortcut."""
    ctx, cont = encode_pair(_Enc(loaded.tokenizer), context, continuation, 1)
    whole = ctx + cont
    if max_length:
        whole = whole[-(max_length + 1):]
    padded = np.zeros((1, 128), np.int32)  # right padding is invisible to causal attention
    padded[0, : len(whole) - 1] = whole[:-1]
    logprobs = np.asarray(_log_softmax(loaded.model, padded))[0]
    n = min(len(cont), len(whole) - 1)
    positions = range(len(whole) - 1 - n, len(whole) - 1)
    return float(sum(logprobs[p, whole[p + 1]] for p in positions))


@nnx.jit
def _log_softmax(model, tokens):
    return jax.nn.log_softmax(model(tokens)[0], axis=-1)


class _Enc:
    def __init__(self, tok):
        self.encode = lambda text: tok.encode(text, add_bos=False)


REQUESTS = [
    Request("t", 0, "Question: What is 12 + 30?\nAnswer:", 0, (" 42", " 41", " forty-two")),
    Request("t", 1, "The capital of France is", 1, (" is", " capital", " of")),  # one token each in the tiny BPE
    Request("t", 2, "The cat sat on the mat.\nQuestion: Does this sentence make sense?\nAnswer: ", 0, ("no", "yes")),
    Request("t", 3, "Emergence: few-shot accuracy jumps once", 0, (" the pretraining loss is low enough.", " never")),
]


def test_scores_equal_the_naive_definition(tiny):
    scores = score_requests(tiny.model, tiny.tokenizer, REQUESTS)
    for request, score in zip(REQUESTS, scores, strict=True):
        for choice, value in zip(request.continuations, score.loglikelihoods, strict=True):
            assert value == pytest.approx(naive_loglikelihood(tiny, request.context, choice), abs=2e-4)


def test_single_token_choices_share_one_row(tiny):
    rows = build_rows(encode_requests(tiny.tokenizer, REQUESTS[1:2]), 128)
    assert len(rows) == 1 and len(rows[0].choices) == 3
    multi = build_rows(encode_requests(tiny.tokenizer, REQUESTS[:1]), 128)
    assert len(multi) == 3  # multi-token continuations: one row per choice


def test_batch_composition_does_not_change_scores(tiny):
    together = score_requests(tiny.model, tiny.tokenizer, REQUESTS, batch_size=64)
    alone = score_requests(tiny.model, tiny.tokenizer, REQUESTS, batch_size=1)
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a.loglikelihoods, b.loglikelihoods, atol=1e-5)


def test_packing_several_prompts_per_row_changes_nothing(tiny):
    """Packed (the default) and one-prompt-per-row scoring agree, and both match the definition."""
    many = [Request("t", i, f"Question {i}: " + "is it so? " * (i % 5) + "Answer:", 0, (" yes", " no", " maybe so"))
            for i in range(12)]
    packed = score_requests(tiny.model, tiny.tokenizer, many, batch_tokens=256)
    unpacked = score_requests(tiny.model, tiny.tokenizer, many, pack=False)
    for request, a, b in zip(many, packed, unpacked, strict=True):
        np.testing.assert_allclose(a.loglikelihoods, b.loglikelihoods, atol=1e-5)
        assert a.is_greedy == b.is_greedy
        assert a.loglikelihoods[2] == pytest.approx(naive_loglikelihood(tiny, request.context, " maybe so"), abs=2e-4)


def test_long_inputs_are_cut_on_the_left(tiny):
    context = "word " * 60 + "Answer:"
    request = Request("t", 0, context, 0, (" yes", " no way"))
    (score,) = score_requests(tiny.model, tiny.tokenizer, [request], max_length=24)
    for choice, value in zip(request.continuations, score.loglikelihoods, strict=True):
        assert value == pytest.approx(naive_loglikelihood(tiny, context, choice, max_length=24), abs=2e-4)


def test_a_shared_few_shot_prefix_is_computed_once_and_changes_nothing(tiny):
    shots = "The capital of France is Paris. The capital of Italy is Rome.\n\n" * 3
    questions = ["The capital of France is", "Question: What is 12 + 30?\nAnswer:", "The capital of Italy is"]
    requests = [Request("t", i, shots + q, 0, (" is", " capital", " Paris"), group="subject")
                for i, q in enumerate(questions)]
    rows = build_rows(encode_requests(tiny.tokenizer, requests), 128)
    [(prefix, members)], rest = _shared_prefixes(rows, [r.group for r in requests])
    assert len(prefix) >= 64 and len(members) == len(rows) and not rest
    for pack in (True, False):  # after the prefix: rows packed together, or one per row
        scores = score_requests(tiny.model, tiny.tokenizer, requests, pack=pack)
        for request, score in zip(requests, scores, strict=True):
            for choice, value in zip(request.continuations, score.loglikelihoods, strict=True):
                assert value == pytest.approx(naive_loglikelihood(tiny, request.context, choice), abs=2e-4)


def test_length_buckets_are_few_and_cover():
    sizes = {length_bucket(n) for n in range(1, 2049)}
    assert len(sizes) <= 16
    assert all(length_bucket(n) >= n for n in range(1, 2049))
    assert all(length_bucket(n) <= max(16, 1.5 * n) for n in range(1, 2049))


def test_checkpoints_of_one_architecture_share_a_compiled_scorer():
    """Scoring with a second checkpoint of the same architecture reuses the first one's program:
    the jitted scorers are keyed on the graph definition, which two loads give equal."""
    from emergence.eval.loglikelihood import _score_batch

    tokens = jax.numpy.ones((2, 8), np.int32)
    valid = jax.numpy.ones((2, 8), bool)
    positions = jax.numpy.full((2, 1), 7, np.int32)
    targets = jax.numpy.ones((2, 1, 1), np.int32)
    before = None
    for _ in range(2):
        graph, state = nnx.split(load_model(str(FIXTURES / "gqa_untied")).model)
        _score_batch(graph, state, tokens, valid, positions, targets)
        before = before if before is not None else _score_batch._cache_size()
    assert _score_batch._cache_size() == before


def test_a_tokenizer_that_adds_bos_starts_every_context_with_it_as_the_harness_does(tiny):
    """lm-evaluation-harness 0.4.13 encodes with the tokenizer's own special tokens (Gemma, LLaMA-2:
    BOS first); an empty context is the one prefix token, never BOS twice."""
    import dataclasses

    bos = tiny.tokenizer.bos_token_id
    with_bos = dataclasses.replace(tiny.tokenizer, add_bos=True)
    requests = [Request("t", 0, "The capital of France is", 0, (" Paris", " Rome, Italy")), Request("t", 1, "", 0, ("Paris",))]
    rows = build_rows(encode_requests(with_bos, requests), 128)
    plain = build_rows(encode_requests(tiny.tokenizer, requests), 128)
    for row, bare in zip(rows[:-1], plain[:-1], strict=True):
        assert row.tokens == (bos, *bare.tokens) and row.targets == bare.targets
    assert rows[-1].tokens == plain[-1].tokens and rows[-1].tokens[:2] != (bos, bos)
