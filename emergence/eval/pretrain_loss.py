"""Pretraining loss: mean next-token NLL (nats/token) of a model on a fixed slice of a held-out corpus.

The emergence law's x-axis. The slice is deterministic and independent of the model: documents are
read in file order (a .txt file is one document; a .jsonl file has one per line, its ``field``), each
encoded with the tokenizer's BOS policy and followed by EOS, concatenated, and cut into windows of
``seq_len + 1`` tokens that overlap by one token, so every token after the first is predicted exactly
once, with up to ``seq_len`` tokens of context. Scoring stops after ``tokens`` predictions. Two
checkpoints therefore see the same token ids *only if they share a tokenizer*; a sweep checks that
(:func:`emergence.sweep.config.check_shared_tokenizer`), because nats/token under different
tokenizers are not comparable.

Bits per byte are comparable across tokenizers (observational scaling's common axis): the total NLL
of the scored tokens over ln 2 times the UTF-8 bytes of the text of the slice,
``bits/byte = loss · n_tokens / (ln 2 · n_bytes)``, where ``n_bytes`` is the UTF-8 length of the
slice's ids (the first one, context only, and every predicted one) decoded, special tokens (BOS, EOS)
decoding to nothing. A slice that covers a whole corpus therefore has the corpus's bytes whatever the
tokenizer; a tokenizer that needs fewer tokens for the same text has a higher loss per token but can
have the same bits per byte.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from emergence.data.sources import jsonl_rows
from emergence.errors import UserError
from emergence.models.generate import next_pow2
from emergence.models.global_arrays import feeder, to_host
from emergence.models.registry import LoadedModel

MAX_SEQ_LEN = 2048


#: Units of the pretraining loss: the default, and the one comparable across tokenizers.
LOSS_UNITS = ("nats-per-token", "bits-per-byte")


@dataclass(frozen=True)
class LossResult:
    loss: float  # mean NLL, nats/token
    n_tokens: int  # predicted tokens scored
    seq_len: int
    seconds: float
    n_bytes: int  # UTF-8 bytes of the slice's text (module docstring)

    @property
    def bits_per_byte(self) -> float:
        return self.loss * self.n_tokens / (math.log(2) * self.n_bytes)

    def in_unit(self, unit: str) -> float:
        return self.bits_per_byte if unit == "bits-per-byte" else self.loss


def text_bytes(tokenizer, ids: np.ndarray) -> int:
    """UTF-8 bytes of the text ``ids`` decode to; special tokens (BOS, EOS) are not text."""
    special = {tokenizer.bos_token_id, *tokenizer.eos_token_ids}
    text = tokenizer.backend.decode([int(i) for i in ids if i not in special], skip_special_tokens=True)
    return len(text.encode("utf-8"))


def read_documents(path: str | Path, field: str = "text") -> Iterator[str]:
    """Documents of a local corpus: a .jsonl file (one JSON object per line) or any text file (one doc)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"loss corpus not found: {path}")
    if path.suffix in (".jsonl", ".json"):
        for line_no, row in jsonl_rows(path):
            if not isinstance(row, dict) or not isinstance(row.get(field), str):
                raise UserError(f"{path}: line {line_no}: no string field '{field}'")
            yield row[field]
    else:
        yield path.read_text(encoding="utf-8")


def hub_documents(dataset: str, config: str | None, split: str, field: str) -> Iterator[str]:
    """Documents of a hub dataset, streamed in order (online only)."""
    try:
        from datasets import load_dataset

        stream = load_dataset(dataset, config, split=split, streaming=True)
    except Exception as err:  # noqa: BLE001 - any hub failure is reported as one line
        raise UserError(
            f"loss corpus {dataset}: cannot open split '{split}' from the hub ({type(err).__name__})"
        ) from None
    for row in stream:
        if not isinstance(row.get(field), str):
            raise UserError(f"loss corpus {dataset}: rows have no string field '{field}'")
        yield row[field]


def token_stream(documents: Iterator[str], tokenizer, limit: int) -> np.ndarray:
    """The first ``limit`` ids of the concatenated, EOS-separated documents."""
    eos = tokenizer.eos_token_ids[0] if tokenizer.eos_token_ids else None
    ids: list[int] = []
    for doc in documents:
        ids += tokenizer.encode(doc)
        if eos is not None:
            ids.append(eos)
        if len(ids) >= limit:
            break
    return np.asarray(ids[:limit], np.int32)


#: Largest fp32 logits tensor (elements) one call materializes; beyond it the vocabulary projection
#: runs over blocks of positions, so memory does not grow with batch × length × vocabulary.
MAX_LOGITS = 1 << 25


def _nll_sum(model, hidden, targets, mask):
    return jnp.sum(model.token_nll(hidden, targets) * mask)


@functools.partial(jax.jit, static_argnames=("graph",))
def _window_nll(graph: nnx.GraphDef, state, tokens, mask):
    """Sum of NLL over masked next-token predictions of ``tokens`` [B, T+1], the logits computed
    over blocks of positions (``lax.map``) of at most :data:`MAX_LOGITS` elements."""
    model = nnx.merge(graph, state)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    hidden, _ = model.hidden_states(inputs)
    b, t = hidden.shape[:2]
    block = max(1, MAX_LOGITS // (b * model.config.vocab_size))
    if block >= t:
        return _nll_sum(model, hidden, targets, mask)
    n = -(-t // block)

    def blocks(x):  # [B, T, ...] -> [n, B, block, ...]; padded positions carry mask 0
        x = jnp.pad(x, [(0, 0), (0, n * block - t)] + [(0, 0)] * (x.ndim - 2))
        return x.reshape(b, n, block, *x.shape[2:]).swapaxes(0, 1)

    sums = jax.lax.map(lambda xs: _nll_sum(model, *xs), (blocks(hidden), blocks(targets), blocks(mask)))
    return jnp.sum(sums)


def pretrain_loss(
    loaded: LoadedModel, ids: np.ndarray, *, tokens: int, seq_len: int | None = None, batch_size: int = 8
) -> LossResult:
    """Mean NLL over the first ``tokens`` predictions of ``ids`` (see the module docstring)."""
    started = time.perf_counter()
    seq_len = min(
        seq_len or loaded.config.max_position_embeddings, loaded.config.max_position_embeddings, MAX_SEQ_LEN
    )
    n_pred = min(tokens, len(ids) - 1)
    if n_pred <= 0:
        raise UserError(f"loss corpus has {len(ids)} tokens; need at least 2")
    n_windows = -(-n_pred // seq_len)
    # one window holds the whole slice: run it only as wide as needed (a power of two, for reuse of
    # the compiled program); causal attention makes the trailing padding irrelevant either way
    span = min(seq_len, next_pow2(n_pred)) if n_windows == 1 else seq_len
    width = span + 1
    rows = max(1, min(batch_size, n_windows))
    n_padded = -(-n_windows // rows) * rows  # the last batch padded to the compiled shape
    windows = np.zeros((n_padded, width), np.int32)
    mask = np.zeros((n_padded, span), np.float32)
    for w in range(n_windows):
        start = w * seq_len
        count = min(seq_len, n_pred - start)
        windows[w, : count + 1] = ids[start : start + count + 1]
        mask[w, :count] = 1.0
    graph, state = nnx.split(loaded.model)
    put = feeder(state)
    total = 0.0
    for b in range(0, n_padded, rows):
        tok, msk = put((windows[b : b + rows], mask[b : b + rows]))
        total += float(to_host(_window_nll(graph, state, tok, msk)))
    n_bytes = text_bytes(loaded.tokenizer, ids[: n_pred + 1])
    return LossResult(total / n_pred, int(n_pred), int(seq_len), time.perf_counter() - started, n_bytes)


def corpus_loss(
    loaded: LoadedModel,
    *,
    corpus: str | Path | None = None,
    hub: str | None = None,
    hub_config: str | None = None,
    split: str = "validation",
    field: str = "text",
    tokens: int = 100_000,
    seq_len: int | None = None,
    batch_size: int = 8,
) -> LossResult:
    """Read the slice (local file or hub dataset) with the model's tokenizer and score it."""
    if (corpus is None) == (hub is None):
        raise UserError("give exactly one loss corpus: a local file or a hub dataset id")
    docs = (
        read_documents(corpus, field) if corpus is not None else hub_documents(hub, hub_config, split, field)
    )
    ids = token_stream(docs, loaded.tokenizer, tokens + 1)  # a short corpus shows as n_tokens < tokens
    return pretrain_loss(loaded, ids, tokens=tokens, seq_len=seq_len, batch_size=batch_size)
