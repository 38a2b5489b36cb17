"""Pretraining loss: mean next-token NLL over a fixed slice, checked against a plain numpy computation."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import emergence.eval.pretrain_loss as pretrain_loss_module
from emergence.errors import UserError
from emergence.eval.pretrain_loss import corpus_loss, pretrain_loss, read_documents, token_stream
from emergence.models.registry import load_model
from tests.sweep.helpers import FIXTURES, TINY_LLAMA

CORPUS = FIXTURES / "sweep" / "loss_corpus.txt"


@pytest.fixture(scope="module")
def tiny():
    return load_model(str(TINY_LLAMA / "gqa_tied"))


def _numpy_nll(loaded, ids: np.ndarray, seq_len: int, n_pred: int) -> float:
    """Independent reference: each window scored alone, log-softmax in numpy, summed over predictions."""
    graphdef, state = nnx.split(loaded.model)
    forward = jax.jit(lambda st, x: nnx.merge(graphdef, st)(x)[0])
    total = 0.0
    for start in range(0, n_pred, seq_len):
        count = min(seq_len, n_pred - start)
        window = ids[start : start + count + 1]
        logits = forward(state, jnp.asarray(window[None, :-1]))
        logits = np.asarray(logits[0], np.float64)
        logp = (
            logits
            - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True))
            - logits.max(-1, keepdims=True)
        )
        total -= logp[np.arange(count), window[1:]].sum()
    return total / n_pred


def test_loss_equals_a_numpy_computation_over_overlapping_windows(tiny):
    ids = token_stream(read_documents(CORPUS), tiny.tokenizer, 101)
    result = pretrain_loss(tiny, ids, tokens=100, seq_len=64, batch_size=2)  # a full and a partial window
    assert (result.n_tokens, result.seq_len) == (100, 64)
    assert result.loss == pytest.approx(_numpy_nll(tiny, ids, 64, 100), rel=1e-5)
    assert 0 < result.loss < 2 * np.log(tiny.config.vocab_size)


def test_a_slice_shorter_than_one_window_scores_like_the_reference(tiny):
    ids = token_stream(read_documents(CORPUS), tiny.tokenizer, 41)
    result = pretrain_loss(tiny, ids, tokens=40, seq_len=128)  # run 64 wide, not 128
    assert (result.n_tokens, result.seq_len) == (40, 128)
    assert result.loss == pytest.approx(_numpy_nll(tiny, ids, 128, 40), rel=1e-5)


def test_large_batches_project_to_the_vocabulary_block_by_block_with_the_same_loss(tiny, monkeypatch):
    """Logits at most 5 positions × 2 rows at a time: 48 positions make 10 blocks, the last padded."""
    monkeypatch.setattr(pretrain_loss_module, "MAX_LOGITS", 2 * 5 * tiny.config.vocab_size)
    pretrain_loss_module._window_nll.clear_cache()  # the block size is fixed when the step compiles
    ids = token_stream(read_documents(CORPUS), tiny.tokenizer, 101)
    result = pretrain_loss(tiny, ids, tokens=90, seq_len=48, batch_size=2)
    pretrain_loss_module._window_nll.clear_cache()
    assert result.loss == pytest.approx(_numpy_nll(tiny, ids, 48, 90), rel=1e-5)


def test_the_slice_is_fixed_whatever_the_batching(tiny):
    a = corpus_loss(tiny, corpus=CORPUS, tokens=200, seq_len=64, batch_size=1)
    b = corpus_loss(tiny, corpus=CORPUS, tokens=200, seq_len=64, batch_size=2)
    assert a.n_tokens == b.n_tokens == 200
    assert a.loss == pytest.approx(b.loss, rel=1e-6)


def test_jsonl_documents_are_eos_separated(tmp_path, tiny):
    lines = CORPUS.read_text().splitlines()[:5]
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in lines))
    ids = token_stream(read_documents(path), tiny.tokenizer, 10_000)
    eos = tiny.tokenizer.eos_token_ids[0]
    assert int((ids == eos).sum()) == 5 and ids[-1] == eos


def test_a_short_corpus_scores_what_it_has(tmp_path, tiny):
    path = tmp_path / "short.txt"
    path.write_text("The cat sat.")
    result = corpus_loss(tiny, corpus=path, tokens=10_000, seq_len=64, batch_size=2)
    expected = len(tiny.tokenizer.encode("The cat sat.")) + 1 - 1  # + EOS, minus the first token
    assert result.n_tokens == expected


def test_bad_corpus_lines_name_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{"body": "no text field"}\n')
    with pytest.raises(UserError, match=r"bad.jsonl: line 2: no string field 'text'"):
        list(read_documents(path))


def test_bits_per_byte_is_the_total_nll_over_the_bytes_of_the_scored_text(tmp_path, tiny):
    """A slice that covers the corpus has the corpus's bytes (the first token, context, included)."""
    text = "Émergence: few-shot accuracy jumps. " * 6  # non-ASCII: bytes, not characters
    (tmp_path / "c.txt").write_text(text, encoding="utf-8")
    result = corpus_loss(tiny, corpus=tmp_path / "c.txt", tokens=10_000, seq_len=64)
    assert result.n_tokens == len(tiny.tokenizer.encode(text))  # the EOS after the text is the last prediction
    assert result.n_bytes == len(text.encode("utf-8"))
    total_nats = result.loss * result.n_tokens
    assert result.bits_per_byte == pytest.approx(total_nats / (np.log(2) * result.n_bytes), rel=1e-12)
    assert result.in_unit("nats-per-token") == result.loss and result.in_unit("bits-per-byte") == result.bits_per_byte


def test_special_tokens_are_not_text(tiny):
    from emergence.eval.pretrain_loss import text_bytes

    ids = tiny.tokenizer.encode("The capital")
    eos, bos = tiny.tokenizer.eos_token_ids[0], tiny.tokenizer.bos_token_id
    assert text_bytes(tiny.tokenizer, [bos, *ids, eos, *ids]) == 2 * len(b"The capital")
