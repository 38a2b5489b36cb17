"""A minimal multiple-choice loglikelihood scorer, for the finetuning tests only.

The project's scoring engine lives elsewhere (``emergence eval``); this one exists so the real-model
test can check that finetuning moves held-out accuracy. It follows the same contract: each choice is
scored as the summed log-probability of ``target_delimiter + choice`` after the 0-shot context,
tokenized with :func:`emergence.eval.tokenization.encode_pair`; the prediction is the argmax. When
every choice is one token after the same context (CoLA's " no"/" yes"), one forward pass scores all.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from emergence.data.tasks import TaskSpec, build_requests
from emergence.eval.tokenization import encode_pair


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _logprobs(graphdef, state, tokens, valid, pos, targets):
    """log p(targets[b, k] | tokens[b, : pos[b, k] + 1]) for every (b, k)."""
    model = nnx.merge(graphdef, state)
    hidden, _ = model.hidden_states(tokens, valid=valid)
    logits = model.logits(jnp.take_along_axis(hidden, pos[..., None], axis=1))
    return jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), targets[..., None], axis=-1)[..., 0]


def _rows(tokenizer, request) -> list[tuple[list[int], list[tuple[int, int, int]]]]:
    """Model inputs for one request, each with (choice, position, token) log-prob terms to add up."""
    pairs = [
        encode_pair(tokenizer, request.context, c, prefix_token_id=tokenizer.bos_token_id)
        for c in request.continuations
    ]
    if all(ctx == pairs[0][0] and len(cont) == 1 for ctx, cont in pairs):
        ctx = pairs[0][0]
        return [(ctx, [(i, len(ctx) - 1, cont[0]) for i, (_, cont) in enumerate(pairs)])]
    rows = []
    for i, (ctx, cont) in enumerate(pairs):
        seq = ctx + cont
        rows.append((seq[:-1], [(i, len(ctx) - 1 + j, t) for j, t in enumerate(cont)]))
    return rows


def predict(
    model, tokenizer, spec: TaskSpec, docs: list[dict], batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """(predicted choice index, gold index) per document."""
    requests = build_requests(spec, docs, shots=0)
    rows = [(d, inputs, terms) for d, r in enumerate(requests) for inputs, terms in _rows(tokenizer, r)]
    t = -(-max(len(x) for _, x, _ in rows) // 16) * 16
    k = max(len(terms) for _, _, terms in rows)
    graphdef, state = nnx.split(model)
    scores = np.zeros((len(docs), len(spec.choices)))
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        tokens = np.zeros((batch_size, t), np.int32)
        valid = np.zeros((batch_size, t), bool)
        pos = np.zeros((batch_size, k), np.int32)
        targets = np.zeros((batch_size, k), np.int32)
        for b, (_, inputs, terms) in enumerate(chunk):
            tokens[b, : len(inputs)], valid[b, : len(inputs)] = inputs, True
            for j, (_, p, tok) in enumerate(terms):
                pos[b, j], targets[b, j] = p, tok
        logp = np.asarray(_logprobs(graphdef, state, tokens, valid, pos, targets))
        for b, (d, _, terms) in enumerate(chunk):
            for j, (choice, _, _) in enumerate(terms):
                scores[d, choice] += logp[b, j]
    return scores.argmax(axis=1), np.asarray([int(r.gold) for r in requests])
