"""Training examples as token arrays, and fixed-shape batches for the jitted step.

A finetuning example is the task's 0-shot prompt followed by its gold continuation, rendered by the
evaluator's own templates and tokenized by its contract (:func:`emergence.eval.tokenization.encode_pair`),
so what the model learns to produce is exactly what the scorer will ask it about. Generation tasks
(GSM8K) continue with the worked answer and EOS, so the model also learns where to stop. Only
continuation tokens carry loss.

A run pads all its batches to one shape (rounded up to buckets), so it compiles its step once and
runs of a sweep with the same shape share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from emergence import harness
from emergence.data.tasks import build_requests, get_task
from emergence.errors import UserError
from emergence.eval.tokenization import encode_pair
from emergence.models.generate import round_up
from emergence.models.tokenizer import TextTokenizer

SEQ_BUCKET = 16
TARGET_BUCKET = 8


@dataclass(frozen=True)
class Example:
    """``tokens`` = prompt + answer (left-truncated to fit); the last ``n_answer`` tokens carry loss."""

    tokens: np.ndarray
    n_answer: int


@dataclass(frozen=True)
class Batch:
    """Model inputs ``tokens/valid [A, B, T]`` and loss targets ``target_pos/targets/target_mask [A, B, K]``.

    ``target_pos`` indexes the *input* position whose logits predict ``targets``.
    """

    tokens: np.ndarray
    valid: np.ndarray
    target_pos: np.ndarray
    targets: np.ndarray
    target_mask: np.ndarray

    @property
    def n_tokens(self) -> int:
        return int(self.valid.sum())


def task_examples(
    task: str, docs: Sequence[dict], tokenizer: TextTokenizer, max_seq_len: int, *, harness_include: str | None = None
) -> list[Example]:
    """Training examples for ``docs`` of ``task`` (the budget subset), each the last
    ``max_seq_len + 1`` tokens of its 0-shot context and gold continuation; a ``harness:NAME``
    task is rendered by the harness (:func:`emergence.harness.tasks.training_pairs`)."""
    name = harness.task_name(task)
    if name is not None:
        from emergence.harness.tasks import training_pairs

        pairs = training_pairs(name, harness_include, docs)
    else:
        pairs = _task_pairs(task, docs)
    eos_id = tokenizer.eos_token_ids[0] if tokenizer.eos_token_ids else None
    out = []
    for i, (context, continuation, generation) in enumerate(pairs):
        eos = eos_id if generation else None
        prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else (eos or 0)
        ctx, cont = encode_pair(tokenizer, context, continuation, prefix_token_id=prefix)
        if eos is not None:  # a generation: the model also learns where to stop
            cont = [*cont, eos]
        if not cont:
            raise UserError(f"training example {i}: the answer {continuation!r} encodes to no tokens")
        tokens = (ctx + cont)[-(max_seq_len + 1) :]
        out.append(Example(np.asarray(tokens, np.int32), min(len(cont), len(tokens) - 1)))
    return out


def _task_pairs(task: str, docs: Sequence[dict]) -> list[tuple[str, str, bool]]:
    """(0-shot context, gold continuation, is generation) per document of a built-in task."""
    spec = get_task(task)
    pairs = []
    for request, doc in zip(build_requests(spec, docs, shots=0), docs, strict=True):
        if request.is_generation:
            continuation = spec.target_delimiter + spec.doc_to_target(doc)
        elif 0 <= int(request.gold) < len(request.continuations):
            continuation = request.continuations[int(request.gold)]
        else:
            raise UserError(f"{spec.name}: training document {request.doc_id} has no gold answer")
        pairs.append((request.context, continuation, request.is_generation))
    return pairs


def padded_shape(examples: Sequence[Example]) -> tuple[int, int]:
    """(T, K) that fits every example: input length and loss positions, rounded up to buckets."""
    t = round_up(max(len(e.tokens) - 1 for e in examples), SEQ_BUCKET)
    return t, round_up(max(e.n_answer for e in examples), TARGET_BUCKET)


def make_batch(
    examples: Sequence[Example],
    accum: int,
    batch_size: int,
    *,
    pad_id: int = 0,
    shape: tuple[int, int] | None = None,
) -> Batch:
    """Stack ``accum · batch_size`` examples (in order) into one batch padded to ``shape`` (T, K)."""
    if len(examples) != accum * batch_size:
        raise ValueError(f"need {accum * batch_size} examples, got {len(examples)}")
    t, k = shape or padded_shape(examples)
    n = len(examples)
    tokens = np.full((n, t), pad_id, np.int32)
    valid = np.zeros((n, t), bool)
    target_pos = np.zeros((n, k), np.int32)
    targets = np.zeros((n, k), np.int32)
    mask = np.zeros((n, k), np.float32)
    for i, e in enumerate(examples):
        inputs, labels = e.tokens[:-1], e.tokens[1:]
        tokens[i, : len(inputs)] = inputs
        valid[i, : len(inputs)] = True
        pos = np.arange(len(inputs) - e.n_answer, len(inputs))
        target_pos[i, : e.n_answer] = pos
        targets[i, : e.n_answer] = labels[pos]
        mask[i, : e.n_answer] = 1.0
    return Batch(*(a.reshape(accum, batch_size, -1) for a in (tokens, valid, target_pos, targets, mask)))
