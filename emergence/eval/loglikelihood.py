"""Continuation log-likelihoods for multiple-choice requests, batched and bucketed.

Each (context, continuation) pair is tokenized by the harness' contract
(:func:`emergence.eval.tokenization.encode_pair`). Two kinds of rows then go to the model:

* **shared-context rows**: when every choice of a request is one token after the same context
  tokens (MMLU " A".." D", CSQA, CoLA " no"/" yes"), the context is run *once* and all choices are
  read from its last position;
* **pair rows**: any other continuation gets its own row, scored at its last ``n`` positions.

Short rows are packed several to a fixed-width row (:mod:`emergence.eval.packing`); the others are
sorted by length and cut into batches padded to a few bucket sizes (:func:`length_bucket`), so one
evaluation compiles a handful of programs. Rows of one request group that share a long few-shot
prefix continue one cache of it. The jitted scorers are keyed on the model's graph, so every
checkpoint of a ladder reuses them; logits are computed only at the scored positions.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from emergence.data.tasks import Request
from emergence.eval.packing import PACK_MAX_WIDTH, PackedBatch, fill_bins, pack_width, packed_batches
from emergence.eval.sizing import scoring_batch_tokens
from emergence.eval.tokenization import encode_pair, loglikelihood_inputs
from emergence.models.generate import MIN_SHARED_PREFIX, next_pow2, shared_prefix_cache
from emergence.models.global_arrays import feeder, to_host
from emergence.models.llama import Llama
from emergence.models.tokenizer import TextTokenizer


def length_bucket(n: int, smallest: int = 16) -> int:
    """Round up to 16, 24, 32, 48, 64, 96, …: at most 50% padding, few distinct shapes."""
    size = smallest
    while size < n:
        size = size * 3 // 2 if (size & (size - 1)) == 0 else size * 4 // 3
    return size


@dataclass(frozen=True)
class _Row:
    request: int  # index into the request list
    choices: tuple[int, ...]  # which choices this row scores
    tokens: tuple[int, ...]
    positions: tuple[int, ...]  # scored positions (indices into tokens)
    targets: tuple[tuple[int, ...], ...]  # per position, the candidate token ids (one per choice, or one)


@dataclass(frozen=True)
class ChoiceScores:
    """Per choice: summed log-likelihood and whether greedy decoding would produce it."""

    loglikelihoods: tuple[float, ...]
    is_greedy: tuple[bool, ...]

    @property
    def prediction(self) -> int:
        return int(np.argmax(self.loglikelihoods))


def _gather(model: Llama, hidden, positions, targets):
    picked = jnp.take_along_axis(hidden, positions[:, :, None], axis=1)  # [B, P, d]
    logprobs = jax.nn.log_softmax(model.logits(picked), axis=-1)  # [B, P, V]
    return jnp.take_along_axis(logprobs, targets, axis=-1), jnp.argmax(logprobs, axis=-1)


@functools.partial(jax.jit, static_argnames=("graph",))
def _score_batch(graph: nnx.GraphDef, state, tokens, valid, positions, targets, prefix=None):
    """log p(target | prefix) at ``positions`` [B, P] for candidates ``targets`` [B, P, K].

    With a shared ``prefix`` cache, every row attends to it from one copy (never broadcast per
    row) and its token positions continue after it."""
    model = nnx.merge(graph, state)
    token_pos = None
    if prefix is not None:
        token_pos = jnp.maximum(jnp.cumsum(valid, axis=1, dtype=jnp.int32) - 1, 0) + prefix.next_pos[0]
    hidden, _ = model.hidden_states(tokens, valid=valid, positions=token_pos, prefix=prefix)
    return _gather(model, hidden, positions, targets)


@functools.partial(jax.jit, static_argnames=("graph",))
def _score_packed(graph: nnx.GraphDef, state, tokens, valid, positions, segments, gather, targets, prefix=None):
    """As :func:`_score_batch` for rows holding several sequences (:mod:`emergence.eval.packing`)."""
    model = nnx.merge(graph, state)
    if prefix is not None:
        positions = positions + prefix.next_pos[0]
    hidden, _ = model.hidden_states(tokens, valid=valid, positions=positions, segments=segments, prefix=prefix)
    return _gather(model, hidden, gather, targets)


def encode_requests(tokenizer: TextTokenizer, requests: Sequence[Request]) -> list[list[tuple[list[int], list[int]]]]:
    """Per request, its (context, continuation) token pairs by the harness' contract."""
    # the harness (0.4.13) encodes with the tokenizer's own special tokens (BOS for Gemma, LLaMA-2,
    # OpenLLaMA; none for SmolLM2), and an empty context's continuation without them
    encoder = SimpleNamespace(encode=tokenizer.encode)
    bare = SimpleNamespace(encode=functools.partial(tokenizer.encode, add_bos=False))
    prefix = prefix_token_id(tokenizer)
    return [
        [encode_pair(encoder if r.context else bare, r.context, cont, prefix) for cont in r.continuations]
        for r in requests
    ]


def prefix_token_id(tokenizer: TextTokenizer) -> int:
    """What an empty context conditions on: BOS, else EOS (the harness' ``prefix_token_id``)."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else (tokenizer.eos_token_ids or (0,))[0]


def build_rows(encoded: Sequence[Sequence[tuple[list[int], list[int]]]], max_length: int) -> list[_Row]:
    rows: list[_Row] = []
    for index, pairs in enumerate(encoded):
        contexts = {tuple(ctx) for ctx, _ in pairs}
        if len(contexts) == 1 and all(len(cont) == 1 for _, cont in pairs):
            tokens, _ = loglikelihood_inputs(pairs[0][0], pairs[0][1], max_length)
            rows.append(_Row(index, tuple(range(len(pairs))), tuple(tokens), (len(tokens) - 1,),
                             (tuple(cont[0] for _, cont in pairs),)))
            continue
        for choice, (ctx, cont) in enumerate(pairs):
            tokens, n = loglikelihood_inputs(ctx, cont, max_length)
            positions = tuple(range(len(tokens) - n, len(tokens)))
            rows.append(_Row(index, (choice,), tuple(tokens), positions, tuple((t,) for t in cont[len(cont) - n:])))
    return rows


def score_requests(
    model: Llama,
    tokenizer: TextTokenizer,
    requests: Sequence[Request],
    *,
    batch_size: int = 64,
    batch_tokens: int | None = None,
    max_length: int | None = None,
    pack: bool = True,
) -> list[ChoiceScores]:
    """Score every choice of every multiple-choice request; results in request order.

    A batch holds at most ``batch_size`` rows and about ``batch_tokens`` padded tokens; the row
    count per length bucket is fixed, so each bucket compiles once. With ``pack`` (the default),
    rows of at most :data:`~emergence.eval.packing.PACK_MAX_WIDTH` tokens go several to a row
    instead: less padding, one program. ``batch_tokens`` defaults to the backend's
    (:func:`emergence.eval.sizing.scoring_batch_tokens`: 2,048 on the CPU)."""
    return score_encoded(model, encode_requests(tokenizer, requests), [r.group for r in requests],
                         batch_size=batch_size, batch_tokens=batch_tokens, max_length=max_length, pack=pack)


def score_encoded(
    model: Llama,
    encoded: Sequence[Sequence[tuple[list[int], list[int]]]],
    groups: Sequence[str | None],
    *,
    batch_size: int = 64,
    batch_tokens: int | None = None,
    max_length: int | None = None,
    pack: bool = True,
) -> list[ChoiceScores]:
    """:func:`score_requests` on already-tokenized requests (per request, its (context,
    continuation) pairs; ``groups``: which requests may share a prefix cache): the entry of callers
    that tokenize by themselves (the lm-evaluation-harness backend's rolling windows)."""
    max_length = max_length or model.config.max_position_embeddings
    batch_tokens = batch_tokens or scoring_batch_tokens(model.config, max_length)
    rows = build_rows(encoded, max_length)
    graph, state = nnx.split(model)
    loglik = [[0.0] * len(pairs) for pairs in encoded]
    greedy = [[True] * len(pairs) for pairs in encoded]
    score = functools.partial(_score_rows, graph, state, loglik=loglik, greedy=greedy, batch_size=batch_size,
                              batch_tokens=batch_tokens, max_length=max_length, pack=pack, put=feeder(state))
    if model.config.sliding_window:  # a shared prefix is attended without a window: score rows whole
        prefixed, plain = [], rows
    else:
        prefixed, plain = _shared_prefixes(rows, groups)
    for prefix, group in prefixed:
        # MMLU-style k-shot: one subject's prompts share description + shots; run that prefix once.
        cache = shared_prefix_cache(graph, state, model.config, prefix, length_bucket(len(prefix)))
        score(group, cache, len(prefix))
    score(plain)
    return [ChoiceScores(tuple(a), tuple(b)) for a, b in zip(loglik, greedy, strict=True)]


def _score_rows(graph, state, rows: list[_Row], prefix=None, offset: int = 0, *, loglik, greedy,
                batch_size: int, batch_tokens: int, max_length: int, pack: bool, put) -> None:
    """Score ``rows`` (their first ``offset`` tokens already in the ``prefix`` cache) into ``loglik``
    and ``greedy``: the short ones packed, the rest in padded batches, longest first; ``put`` places
    host arrays on the model's devices (:func:`~emergence.models.global_arrays.feeder`)."""
    if prefix is not None:
        rows = [dataclasses.replace(r, tokens=r.tokens[offset:], positions=tuple(p - offset for p in r.positions))
                for r in rows]
        pack = pack and max(len(r.tokens) for r in rows) <= PACK_MAX_WIDTH  # a group packs whole or not at all
    short = [r for r in rows if len(r.tokens) <= PACK_MAX_WIDTH] if pack else []
    if short:
        width = pack_width([len(r.tokens) for r in short])
        for packed in packed_batches(short, width, batch_tokens):
            arrays = (packed.tokens, packed.valid, packed.positions, packed.segments, packed.gather, packed.targets)
            chosen, argmax = _score_packed(graph, state, *put(arrays), prefix)
            _collect(short, packed, chosen, argmax, loglik, greedy)
    rows = [r for r in rows if len(r.tokens) > PACK_MAX_WIDTH] if pack else rows
    rows.sort(key=lambda r: -len(r.tokens))  # longest first: a batch never grows past its first row
    start = 0
    while start < len(rows):
        longest = len(rows[start].tokens)
        width = min(length_bucket(longest), max(max_length, longest))
        n_rows = max(1, min(batch_size, batch_tokens // width))
        n_rows = 1 << (n_rows.bit_length() - 1)  # a power of two: few distinct batch shapes
        batch = range(start, min(start + n_rows, len(rows)))
        n_pos = next_pow2(max(len(rows[i].positions) for i in batch))
        n_cand = next_pow2(max(len(rows[i].targets[0]) for i in batch))
        filled = fill_bins(rows, [[i] for i in batch], n_rows, width, n_pos, n_cand)
        arrays = (filled.tokens, filled.valid, filled.gather, filled.targets)
        chosen, argmax = _score_batch(graph, state, *put(arrays), prefix)
        _collect(rows, filled, chosen, argmax, loglik, greedy)
        start += n_rows


def _collect(rows: Sequence[_Row], batch: PackedBatch, chosen, argmax, loglik, greedy) -> None:
    """Read each row's scores from its (batch row, first scored slot)."""
    chosen, argmax = to_host(chosen).astype(np.float64), to_host(argmax)
    for index, (i, at) in zip(batch.rows, batch.placement, strict=True):
        row = rows[index]
        n = len(row.positions)
        if len(row.choices) > 1:  # shared context: one position, one candidate per choice
            for k, choice in enumerate(row.choices):
                loglik[row.request][choice] = float(chosen[i, at, k])
                greedy[row.request][choice] = bool(argmax[i, at] == row.targets[0][k])
        else:
            choice = row.choices[0]
            loglik[row.request][choice] = float(chosen[i, at:at + n, 0].sum())
            greedy[row.request][choice] = all(argmax[i, at + p] == row.targets[p][0] for p in range(n))


def _shared_prefixes(rows: list[_Row], request_groups: Sequence[str | None]) -> tuple[list[tuple], list[_Row]]:
    """(``[(prefix tokens, rows)]`` per request group whose rows share ≥ MIN_SHARED_PREFIX leading
    tokens, every other row)."""
    groups: dict[str, list[_Row]] = {}
    rest: list[_Row] = []
    for row in rows:
        group = request_groups[row.request]
        (groups.setdefault(group, []) if group is not None else rest).append(row)
    shared_groups = []
    for members in groups.values():
        shared = min(len(os.path.commonprefix([r.tokens for r in members])),
                     min(min(r.positions) for r in members))  # scored positions must lie after the prefix
        if len(members) > 1 and shared >= MIN_SHARED_PREFIX:
            shared_groups.append((members[0].tokens[:shared], members))
        else:
            rest.extend(members)
    return shared_groups, rest
