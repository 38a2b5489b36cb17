"""Batched greedy decoding with a KV cache and stop sequences.

Prompts are left-padded into length buckets (multiples of :data:`BUCKET`) so a sweep compiles the
prefill and decode steps a bounded number of times; the jitted steps are keyed on the model's graph
definition, so every checkpoint of one architecture reuses them.

Stop sequences are looked for in the text each new token adds (and the few characters before it),
decoded from a short window of recent tokens: checking a completion costs the same at every step,
however long it has grown. On an accelerator several decoding steps run on the device per host
round trip (:func:`decode_sync_every`).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from emergence.models.global_arrays import feeder, to_host
from emergence.models.llama import KVCache, Llama
from emergence.models.tokenizer import TextTokenizer

BUCKET = 32
#: Decoding steps per host round trip on an accelerator: rows that finish early compute a few
#: tokens nobody reads, and in exchange the device never waits on the host between tokens.
ACCELERATOR_SYNC_EVERY = 8


def decode_sync_every() -> int:
    """Decoding steps per host round trip: one on the CPU, where the host is the device and waiting
    for it costs nothing (and every token is then computed exactly as before);
    :data:`ACCELERATOR_SYNC_EVERY` elsewhere."""
    return 1 if jax.default_backend() == "cpu" else ACCELERATOR_SYNC_EVERY


def round_up(n: int, multiple: int = BUCKET) -> int:
    return max(multiple, -(-n // multiple) * multiple)


@dataclass(frozen=True)
class Generation:
    """One completion: generated ids (stop sequence excluded from ``text``) and why it ended."""

    token_ids: tuple[int, ...]
    text: str
    finish: str  # "eos" | "stop" | "length"


@functools.partial(jax.jit, static_argnames=("graph",), donate_argnames=("cache",))
def _step(graph: nnx.GraphDef, state, tokens, valid, cache, prefix):
    """The greedy next token of each row: a prefill of ``tokens [B, T]`` into a fresh cache exactly
    as wide, or (``valid`` None) one decoding step from the last tokens ``[B]``."""
    model = nnx.merge(graph, state)
    prefill = valid is not None
    hidden, cache = model.hidden_states(tokens if prefill else tokens[:, None], valid=valid, cache=cache,
                                        prefix=prefix, fresh_cache=prefill)
    logits = model.logits(hidden[:, -1])
    return jnp.argmax(logits, axis=-1).astype(jnp.int32), cache


@functools.partial(jax.jit, static_argnames=("graph", "steps"), donate_argnames=("cache",))
def _decode(graph: nnx.GraphDef, state, next_ids, cache, prefix, steps: int):
    """``steps`` decoding steps from the last tokens ``[B]`` without returning to the host: the new
    ids ``[B, steps]``, the last of them and the cache."""
    def body(carry, _):
        ids, cache = _step(graph, state, carry[0], None, carry[1], prefix)
        return (ids, cache), ids
    (next_ids, cache), ids = jax.lax.scan(body, (next_ids, cache), None, length=steps)
    return ids.T, next_ids, cache


@jax.jit
def _select_rows(next_ids, cache, keep):
    """The batch cut down to rows ``keep`` (finished rows leave; decoding cost follows the rows left)."""
    take = lambda x: jnp.take(x, keep, axis=0)  # noqa: E731
    return take(next_ids), jax.tree.map(take, cache._replace(index=None))._replace(index=cache.index)


@functools.partial(jax.jit, static_argnames=("extra",))
def _grow(cache: KVCache, extra: int) -> KVCache:
    """``extra`` empty slots appended to every row of the cache."""
    def pad(x, axis):
        widths = [(0, 0)] * x.ndim
        widths[axis] = (0, extra)
        return jnp.pad(x, widths)
    return cache._replace(
        keys=tuple(pad(k, 2) for k in cache.keys),
        values=tuple(pad(v, 2) for v in cache.values),
        valid=pad(cache.valid, 1),
        positions=pad(cache.positions, 1),
    )


def next_pow2(n: int) -> int:
    """The smallest power of two ≥ n (≥ 1): row counts and widths from a few compiled shapes."""
    return 1 << max(0, (n - 1).bit_length())


#: A common prompt prefix at least this long (a few-shot block) is computed once and shared.
MIN_SHARED_PREFIX = 64


def common_prefix_length(prompts: Sequence[Sequence[int]]) -> int:
    """Tokens every prompt starts with, leaving each at least one token of its own."""
    return min(len(os.path.commonprefix(prompts)), min(len(p) for p in prompts) - 1)


def _left_padded(prompts: Sequence[Sequence[int]], rows: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    tokens = np.zeros((rows, width), np.int32)
    valid = np.zeros((rows, width), bool)
    for i in range(rows):
        prompt = prompts[i] if i < len(prompts) else prompts[0]  # pad the batch with a real prompt
        tokens[i, width - len(prompt):] = prompt
        valid[i, width - len(prompt):] = True
    return tokens, valid


def shared_prefix_cache(graph: nnx.GraphDef, state, config, prefix: Sequence[int], width: int) -> KVCache:
    """A batch-1 cache holding ``prefix`` (left-padded to ``width`` slots), computed once and then
    attended by every row through ``hidden_states(prefix=…)``: generation and few-shot scoring both."""
    tokens, valid, cache = feeder(state)((*_left_padded([list(prefix)], 1, width), KVCache.empty(config, 1, width)))
    _, cache = _step(graph, state, tokens, valid, cache, None)
    return cache


class _Row:
    """One completion as it is decoded: its ids, and its text up to ``ids[:_read]``."""

    def __init__(self, tokenizer: TextTokenizer, stop: Sequence[str], eos: set[int]):
        self.ids: list[int] = []
        self.finish: str | None = None
        self._tokenizer, self._stop, self._eos = tokenizer, stop, eos
        self._text, self._start, self._read = "", 0, 0
        self._longest = max(map(len, stop), default=0)

    def push(self, token: int) -> None:
        if self.finish is not None:
            return
        if token in self._eos:
            self.finish = "eos"
            return
        self.ids.append(token)
        if not self._stop:
            return
        # What the new token adds: the decoded window ids[_start:] beyond ids[_start:_read]. The
        # window reaches one piece back because a token's text can depend on its neighbours (a
        # character split over byte tokens, a word-initial space).
        seen = self._tokenizer.decode(self.ids[self._start:self._read])
        new = self._tokenizer.decode(self.ids[self._start:])[len(seen):]
        text = self._text + new
        tail = text[max(0, len(text) - len(new) - self._longest + 1):]  # where a new stop can end
        if new and any(s in tail for s in self._stop):
            self.finish = "stop"
        elif new and not new.endswith("\ufffd"):  # a whole character: the next window starts here
            self._text, self._start, self._read = text, self._read, len(self.ids)

    def result(self) -> Generation:
        text = self._tokenizer.decode(self.ids)
        if self.finish == "stop":
            cut = min(text.find(s) for s in self._stop if s in text)
            text = text[:cut]
        return Generation(tuple(self.ids), text, self.finish or "length")


def greedy_generate(
    model: Llama,
    tokenizer: TextTokenizer,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    stop: Sequence[str] = (),
    batch_size: int = 8,
    stop_at_eos: bool = True,
    share_prefix: bool = True,
    stats: dict | None = None,
    on_chunk: Callable[[int], None] | None = None,
    sync_every: int | None = None,
) -> list[Generation]:
    """Greedy completions of token-id prompts, in input order. ``stats`` collects new tokens, seconds
    and how often a batch shrank; ``on_chunk`` gets the number of prompts finished after each chunk.

    Prompts run in balanced chunks of at most ``batch_size`` rows. When at most half of a chunk's
    rows are still generating, the batch shrinks to them (a power of two, so few shapes compile).
    With ``share_prefix``, a prefix common to all prompts of at least :data:`MIN_SHARED_PREFIX`
    tokens (a few-shot block) is prefilled once and attended by every row from one copy.
    ``sync_every`` decoding steps run on the device per look at the new tokens (default: the
    backend's, :func:`decode_sync_every`); rows that finish meanwhile compute a
    few tokens that are dropped, so the result does not depend on it."""
    sync_every = sync_every or decode_sync_every()
    graph, state = nnx.split(model)
    put = feeder(state)
    eos = set(tokenizer.eos_token_ids) if stop_at_eos else set()
    started = time.perf_counter()
    max_len = model.config.max_position_embeddings
    prompts = [list(p)[-(max_len - max_new_tokens):] or [tokenizer.bos_token_id or 0] for p in prompts]
    shared = common_prefix_length(prompts) if share_prefix and len(prompts) > 1 else 0
    prefix = None
    if shared < MIN_SHARED_PREFIX or model.config.sliding_window:
        shared = 0
    else:
        prefix = shared_prefix_cache(graph, state, model.config, prompts[0][:shared], round_up(shared))
    n_chunks = -(-len(prompts) // batch_size) if prompts else 0
    rows_per_chunk = -(-len(prompts) // n_chunks) if prompts else 0
    results: list[Generation] = []
    shrinks = 0
    for start in range(0, len(prompts), max(rows_per_chunk, 1)):
        chunk = [p[shared:] for p in prompts[start:start + rows_per_chunk]]
        rows = [_Row(tokenizer, stop, eos) for _ in chunk]
        width = round_up(max(len(p) for p in chunk))
        # prefill into a cache of exactly the prompt width (attention over the prompt only), then
        # give it room for the completion
        cache = KVCache.empty(model.config, rows_per_chunk, width)
        if prefix is not None:
            cache = cache._replace(next_pos=jnp.full((rows_per_chunk,), shared, jnp.int32))
        tokens, valid, cache = put((*_left_padded(chunk, rows_per_chunk, width), cache))
        next_ids, cache = _step(graph, state, tokens, valid, cache, prefix)
        cache = _grow(cache, round_up(max_new_tokens + sync_every - 1))
        live = list(range(len(chunk)))  # which row each slot of the batch holds
        new_ids, pushed = next_ids[:, None], 0
        while True:
            host_ids = to_host(new_ids)[:, :max_new_tokens - pushed]
            for row in dict.fromkeys(live):  # a row padding a shrunk batch holds two slots: push once
                for token in host_ids[live.index(row)]:
                    rows[row].push(int(token))
            pushed += host_ids.shape[1]
            running = [row for row in dict.fromkeys(live) if rows[row].finish is None]
            if not running or pushed == max_new_tokens:
                break
            if next_pow2(len(running)) < len(live):  # most rows are done: continue with a smaller batch
                keep = [live.index(row) for row in running]
                keep += keep[:1] * (next_pow2(len(keep)) - len(keep))
                live = [live[k] for k in keep]
                next_ids, cache = _select_rows(next_ids, cache, put(np.asarray(keep, np.int32)))
                shrinks += 1
            if sync_every == 1:
                next_ids, cache = _step(graph, state, next_ids, None, cache, prefix)
                new_ids = next_ids[:, None]
            else:
                new_ids, next_ids, cache = _decode(graph, state, next_ids, cache, prefix, sync_every)
        results.extend(r.result() for r in rows)
        if on_chunk:
            on_chunk(len(chunk))
    if stats is not None:
        stats["new_tokens"] = sum(len(r.token_ids) for r in results)
        stats["seconds"] = time.perf_counter() - started
        stats["shrinks"] = shrinks
    return results
