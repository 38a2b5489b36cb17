"""Batched greedy decoding with a KV cache and stop sequences.

Prompts are left-padded into length buckets (multiples of :data:`BUCKET`), so a sweep compiles the
prefill and decode steps a bounded number of times; the jitted functions are module-level and keyed
on the model's graph definition, so every checkpoint of the same architecture reuses them. Each step
moves only the chosen token ids to the host, where EOS and stop strings are checked.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from emergence.models.llama import KVCache, Llama
from emergence.models.tokenizer import TextTokenizer

BUCKET = 32


def round_up(n: int, multiple: int = BUCKET) -> int:
    return max(multiple, -(-n // multiple) * multiple)


@dataclass(frozen=True)
class Generation:
    """One completion: generated ids (stop sequence excluded from ``text``) and why it ended."""

    token_ids: tuple[int, ...]
    text: str
    finish: str  # "eos" | "stop" | "length"


@functools.partial(jax.jit, static_argnames=("graphdef",), donate_argnames=("cache",))
def _prefill(graphdef, state, tokens, valid, cache):
    model = nnx.merge(graphdef, state)
    hidden, cache = model.hidden_states(tokens, valid=valid, cache=cache)
    logits = model.logits(hidden[:, -1])
    return jnp.argmax(logits, axis=-1).astype(jnp.int32), cache


@functools.partial(jax.jit, static_argnames=("graphdef",), donate_argnames=("cache",))
def _decode(graphdef, state, tokens, cache):
    model = nnx.merge(graphdef, state)
    hidden, cache = model.hidden_states(tokens[:, None], cache=cache)
    logits = model.logits(hidden[:, -1])
    return jnp.argmax(logits, axis=-1).astype(jnp.int32), cache


class _Row:
    def __init__(self, tokenizer: TextTokenizer, stop: Sequence[str], eos: set[int]):
        self.ids: list[int] = []
        self.finish: str | None = None
        self._tokenizer, self._stop, self._eos = tokenizer, stop, eos

    def push(self, token: int) -> None:
        if self.finish is not None:
            return
        if token in self._eos:
            self.finish = "eos"
            return
        self.ids.append(token)
        if self._stop and any(s in self._tokenizer.decode(self.ids) for s in self._stop):
            self.finish = "stop"

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
    stats: dict | None = None,
) -> list[Generation]:
    """Greedy completions of token-id prompts, in input order. ``stats`` collects tokens and seconds."""
    graphdef, state = nnx.split(model)
    eos = set(tokenizer.eos_token_ids) if stop_at_eos else set()
    results: list[Generation] = []
    started = time.perf_counter()
    max_len = model.config.max_position_embeddings
    for start in range(0, len(prompts), batch_size):
        chunk = [list(p)[-(max_len - max_new_tokens):] or [tokenizer.bos_token_id or 0] for p in prompts[start:start + batch_size]]
        rows = [_Row(tokenizer, stop, eos) for _ in chunk]
        width = round_up(max(len(p) for p in chunk))
        tokens = np.zeros((batch_size, width), np.int32)
        valid = np.zeros((batch_size, width), bool)
        for i in range(batch_size):
            prompt = chunk[i] if i < len(chunk) else chunk[0]  # pad the batch with a real prompt
            tokens[i, width - len(prompt):] = prompt
            valid[i, width - len(prompt):] = True
        cache = KVCache.empty(model.config, batch_size, width + round_up(max_new_tokens))
        next_ids, cache = _prefill(graphdef, state, jnp.asarray(tokens), jnp.asarray(valid), cache)
        for step in range(max_new_tokens):
            host_ids = np.asarray(next_ids)
            for row, token in zip(rows, host_ids, strict=False):
                row.push(int(token))
            if all(r.finish is not None for r in rows) or step == max_new_tokens - 1:
                break
            next_ids, cache = _decode(graphdef, state, next_ids, cache)
        results.extend(r.result() for r in rows)
    if stats is not None:
        stats["new_tokens"] = sum(len(r.token_ids) for r in results)
        stats["seconds"] = time.perf_counter() - started
    return results
