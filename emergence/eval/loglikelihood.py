"""Continuation log-likelihoods for multiple-choice requests, batched and bucketed.

Each (context, continuation) pair is tokenized by the harness' contract
(:func:`emergence.eval.tokenization.encode_pair`). Two kinds of rows then go to the model:

* **shared-context rows**: when every choice of a request is one token after the same context
  tokens (MMLU " A".." D", CSQA, CoLA " no"/" yes"), the context is run *once* and all choices are
  read from its last position — 4-5x less compute than one row per choice;
* **pair rows**: any other continuation gets its own row, scored at its last ``n`` positions.

Short rows that share no few-shot prefix are packed several to a fixed-width row
(:mod:`emergence.eval.packing`); the others are sorted by length and cut into fixed-size batches,
their lengths padded up to a small set of bucket sizes (:func:`length_bucket`). One evaluation
compiles a handful of programs, and the jitted scorers are module-level, keyed on the model's
graph, so every checkpoint of a ladder reuses them.
Logits are computed only at the scored positions, never over the whole sequence.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from emergence.data.tasks import Request
from emergence.eval.packing import PACK_MAX_WIDTH, pack_width, packed_batches
from emergence.eval.tokenization import encode_pair, loglikelihood_inputs
from emergence.models.generate import next_pow2, shared_prefix_cache
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
def _score_batch(graph: nnx.GraphDef, state, tokens, valid, positions, targets):
    """log p(target | prefix) at ``positions`` [B, P] for candidates ``targets`` [B, P, K]."""
    model = nnx.merge(graph, state)
    hidden, _ = model.hidden_states(tokens, valid=valid)
    return _gather(model, hidden, positions, targets)


@functools.partial(jax.jit, static_argnames=("graph",))
def _score_packed(graph: nnx.GraphDef, state, tokens, valid, positions, segments, gather, targets, prefix=None):
    """As :func:`_score_batch` for rows holding several sequences (:mod:`emergence.eval.packing`),
    each continuing the shared ``prefix`` cache when one is given."""
    model = nnx.merge(graph, state)
    if prefix is not None:
        positions = positions + prefix.next_pos[0]
    hidden, _ = model.hidden_states(tokens, valid=valid, positions=positions, segments=segments, prefix=prefix)
    return _gather(model, hidden, gather, targets)


@functools.partial(jax.jit, static_argnames=("graph",))
def _score_after_prefix(graph: nnx.GraphDef, state, prefix_cache, tokens, valid, positions, targets):
    """As :func:`_score_batch`, every row continuing one shared, already-computed prefix.

    The prefix's keys/values are attended by all rows from one copy (``hidden_states(prefix=…)``),
    never broadcast per row; each row's positions continue after it."""
    model = nnx.merge(graph, state)
    token_pos = jnp.maximum(jnp.cumsum(valid, axis=1, dtype=jnp.int32) - 1, 0) + prefix_cache.next_pos[0]
    hidden, _ = model.hidden_states(tokens, valid=valid, positions=token_pos, prefix=prefix_cache)
    return _gather(model, hidden, positions, targets)


def build_rows(tokenizer: TextTokenizer, requests: Sequence[Request], max_length: int) -> list[_Row]:
    encode = functools.partial(tokenizer.encode, add_bos=False)
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else (tokenizer.eos_token_ids or (0,))[0]
    rows: list[_Row] = []
    for index, request in enumerate(requests):
        pairs = [encode_pair(_Encoder(encode), request.context, cont, prefix) for cont in request.continuations]
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


class _Encoder:
    def __init__(self, fn: Callable[[str], list[int]]):
        self.encode = fn


def score_requests(
    model: Llama,
    tokenizer: TextTokenizer,
    requests: Sequence[Request],
    *,
    batch_size: int = 64,
    batch_tokens: int = 2048,
    max_length: int | None = None,
    pack: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> list[ChoiceScores]:
    """Score every choice of every multiple-choice request; results in request order.

    A batch holds at most ``batch_size`` rows and about ``batch_tokens`` padded tokens: short rows
    go many to a batch (CPU matmuls want width), long rows few. The row count per length bucket is
    fixed, so each bucket still compiles once. With ``pack`` (the default), rows of at most
    :data:`~emergence.eval.packing.PACK_MAX_WIDTH` tokens that share no few-shot prefix are packed
    several to a row instead (:mod:`emergence.eval.packing`): less padding, one program."""
    max_length = max_length or model.config.max_position_embeddings
    rows = build_rows(tokenizer, requests, max_length)
    graph, state = nnx.split(model)
    loglik = [[0.0] * len(r.continuations) for r in requests]
    greedy = [[True] * len(r.continuations) for r in requests]
    plain: list[_Row] = []
    if model.config.sliding_window:  # a shared prefix is attended without a window: score rows whole
        plain, groups = list(rows), iter(())
    else:
        groups = _shared_prefixes(rows, requests, plain)
    for prefix, group in groups:
        # MMLU-style k-shot: one subject's prompts share description + shots; run that prefix once.
        cache = shared_prefix_cache(graph, state, model.config, prefix, length_bucket(len(prefix)))
        n = len(prefix)
        suffixes = [dataclasses.replace(r, tokens=r.tokens[n:], positions=tuple(p - n for p in r.positions))
                    for r in group]
        if pack and max(len(r.tokens) for r in suffixes) <= PACK_MAX_WIDTH:
            _score_packed_rows(graph, state, suffixes, batch_tokens, loglik, greedy, on_batch, cache)
            continue
        group.sort(key=lambda r: -len(r.tokens))
        for batch, width, n_rows in _batches(group, batch_size, batch_tokens, max_length, offset=len(prefix)):
            arrays = _fill(batch, width, n_rows, offset=len(prefix))
            chosen, argmax = _score_after_prefix(graph, state, cache, *arrays)
            _collect(batch, chosen, argmax, loglik, greedy)
            if on_batch:
                on_batch(len(batch))
    short = [r for r in plain if len(r.tokens) <= PACK_MAX_WIDTH] if pack else []
    if short:
        _score_packed_rows(graph, state, short, batch_tokens, loglik, greedy, on_batch)
    plain = [r for r in plain if len(r.tokens) > PACK_MAX_WIDTH] if pack else plain
    plain.sort(key=lambda r: -len(r.tokens))  # longest first: a batch never grows past its first row
    for batch, width, n_rows in _batches(plain, batch_size, batch_tokens, max_length):
        chosen, argmax = _score_batch(graph, state, *_fill(batch, width, n_rows))
        _collect(batch, chosen, argmax, loglik, greedy)
        if on_batch:
            on_batch(len(batch))
    return [ChoiceScores(tuple(a), tuple(b)) for a, b in zip(loglik, greedy, strict=True)]


def _score_packed_rows(graph: nnx.GraphDef, state, rows, batch_tokens, loglik, greedy, on_batch, prefix=None) -> None:
    width = pack_width([len(r.tokens) for r in rows])
    for packed in packed_batches(rows, width, batch_tokens):
        arrays = (packed.tokens, packed.valid, packed.positions, packed.segments, packed.gather, packed.targets)
        chosen, argmax = _score_packed(graph, state, *map(jnp.asarray, arrays), prefix)
        batch = [rows[i] for i in packed.rows]
        _collect(batch, chosen, argmax, loglik, greedy, packed.placement)
        if on_batch:
            on_batch(len(batch))


def _fill(batch: Sequence[_Row], width: int, n_rows: int, offset: int = 0) -> tuple[jax.Array, ...]:
    """Right-padded device arrays for a batch; ``offset`` tokens of each row are already cached."""
    n_pos = next_pow2(max(len(r.positions) for r in batch))
    n_cand = next_pow2(max(len(r.targets[0]) for r in batch))
    tokens = np.zeros((n_rows, width), np.int32)
    valid = np.zeros((n_rows, width), bool)
    positions = np.zeros((n_rows, n_pos), np.int32)
    targets = np.zeros((n_rows, n_pos, n_cand), np.int32)
    for i, row in enumerate(batch):
        tokens[i, : len(row.tokens) - offset] = row.tokens[offset:]
        valid[i, : len(row.tokens) - offset] = True
        positions[i, : len(row.positions)] = [p - offset for p in row.positions]
        for p, cands in enumerate(row.targets):
            targets[i, p, : len(cands)] = cands
    return tuple(jnp.asarray(a) for a in (tokens, valid, positions, targets))


def _collect(batch, chosen, argmax, loglik, greedy, placement=None) -> None:
    """Read each row's scores from its (batch row, first scored slot): (i, 0) unless packed."""
    chosen, argmax = np.asarray(chosen, np.float64), np.asarray(argmax)
    for j, row in enumerate(batch):
        i, at = placement[j] if placement else (j, 0)
        n = len(row.positions)
        if len(row.choices) > 1:  # shared context: one position, one candidate per choice
            for k, choice in enumerate(row.choices):
                loglik[row.request][choice] = float(chosen[i, at, k])
                greedy[row.request][choice] = bool(argmax[i, at] == row.targets[0][k])
        else:
            choice = row.choices[0]
            loglik[row.request][choice] = float(chosen[i, at:at + n, 0].sum())
            greedy[row.request][choice] = all(argmax[i, at + p] == row.targets[p][0] for p in range(n))


#: Shorter common prefixes are not worth a separate prefill.
MIN_SHARED_PREFIX = 64


def _shared_prefixes(rows: list[_Row], requests: Sequence[Request], rest: list[_Row]):
    """(prefix tokens, rows) per request group whose rows share ≥ MIN_SHARED_PREFIX leading tokens;
    every other row is appended to ``rest``."""
    groups: dict[str, list[_Row]] = {}
    for row in rows:
        group = requests[row.request].group
        (groups.setdefault(group, []) if group is not None else rest).append(row)
    for members in groups.values():
        first = members[0].tokens
        shared = min(min(r.positions) for r in members)  # scored positions must lie after the prefix
        for row in members[1:]:
            n = 0
            while n < shared and row.tokens[n] == first[n]:
                n += 1
            shared = n
        if len(members) > 1 and shared >= MIN_SHARED_PREFIX:
            yield first[:shared], members
        else:
            rest.extend(members)


def _rows_per_batch(batch_size: int, batch_tokens: int, width: int) -> int:
    n_rows = max(1, min(batch_size, batch_tokens // width))
    return 1 << (n_rows.bit_length() - 1)  # a power of two: few distinct batch shapes


def _batches(rows: list[_Row], batch_size: int, batch_tokens: int, max_length: int, offset: int = 0):
    """(rows, padded width, padded row count) in order; rows come sorted longest first and their first
    ``offset`` tokens are already in a cache."""
    start = 0
    while start < len(rows):
        longest = len(rows[start].tokens) - offset
        width = min(length_bucket(longest), max(max_length, longest))
        n_rows = _rows_per_batch(batch_size, batch_tokens, width)
        yield rows[start:start + n_rows], width, n_rows
        start += n_rows

