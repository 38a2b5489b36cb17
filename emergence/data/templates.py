"""Prompt templates and few-shot assembly, mirroring lm-evaluation-harness 0.4.x byte for byte.

The harness builds a plain-text prompt (``ConfigurableTask.fewshot_context``, no chat template) as::

    description                                   # MMLU only; already ends in "\n\n"
    + for each shot: text(shot) + target_delimiter + target(shot) + fewshot_delimiter
    + text(doc)

and each multiple-choice continuation as ``target_delimiter + choice``. A shot whose target is the
empty string is rendered as its bare text, with neither delimiter (the harness' ``has_answer`` rule).
:class:`FewShotSampler` reproduces the harness' samplers, whose generator is shared across documents
in order: prompts match only when documents are rendered in the same order from the start.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from emergence.errors import UserError

Record = dict[str, Any]
LETTERS = ("A", "B", "C", "D", "E")

MMLU_DESCRIPTION = "The following are multiple choice questions (with answers) about {subject}.\n\n"
COLA_QUESTION = "\nQuestion: Does this sentence make sense?\nAnswer:"


# ----------------------------------------------------------------------------- doc -> text


def mmlu_description(doc: Record) -> str:
    """The harness' per-subject description: underscores become spaces (``_generate_configs.py``)."""
    return MMLU_DESCRIPTION.format(subject=doc["subject"].replace("_", " "))


def mmlu_text(doc: Record) -> str:
    c = doc["choices"]
    return f"{doc['question'].strip()}\nA. {c[0]}\nB. {c[1]}\nC. {c[2]}\nD. {c[3]}\nAnswer:"


def csqa_text(doc: Record) -> str:
    t = doc["choices"]["text"]
    return (
        f"Question: {doc['question'].strip()}\nA. {t[0]}\nB. {t[1]}\nC. {t[2]}\nD. {t[3]}\nE. {t[4]}\nAnswer:"
    )


def cola_text(doc: Record) -> str:
    return doc["sentence"] + COLA_QUESTION


def gsm8k_text(doc: Record) -> str:
    return f"Question: {doc['question']}\nAnswer:"


# ----------------------------------------------------------------------------- assembly


def render_context(
    description: str,
    shots: Sequence[tuple[str, str]],
    text: str,
    target_delimiter: str,
    fewshot_delimiter: str,
) -> str:
    """The full context: description, then (text, target) shots, then the evaluated doc's text."""
    rendered = (q if a == "" else q + target_delimiter + a + fewshot_delimiter for q, a in shots)
    return description + "".join(rendered) + text


class FewShotSampler:
    """Few-shot examples for a sequence of documents, drawn like the harness' samplers: ``first_n``
    (MMLU: the first n rows of ``dev``) or ``random`` (``random.Random(seed).sample(pool, n)``).
    ``where`` names the pool in error messages."""

    def __init__(
        self, pool: Sequence[Record], kind: str, seed: int | None = 1234, where: str = "few-shot split"
    ):
        if kind not in ("first_n", "random"):
            raise ValueError(f"unknown sampler kind {kind!r}")
        self.pool = list(pool)
        self.kind = kind
        self.rnd = random.Random(seed)
        self.where = where

    def check(self, n: int, exclude: Record | None = None) -> None:
        available = len(self.pool) if exclude is None else sum(1 for x in self.pool if x != exclude)
        if n > available:
            raise UserError(f"{n} shots requested but the {self.where} holds only {available} examples")

    def sample(self, n: int, exclude: Record | None = None) -> list[Record]:
        """n examples; ``exclude`` (the evaluated doc when pools coincide) is never among them."""
        if n <= 0:
            return []
        if n > len(self.pool) - (exclude is not None):  # cheap test first: check() scans the pool
            self.check(n, exclude)
        if self.kind == "first_n":
            pool = self.pool if exclude is None else [x for x in self.pool if x != exclude]
            return pool[:n]
        if exclude is None:
            return self.rnd.sample(self.pool, n)
        # harness: draw n + 1 so one copy of the eval doc can be dropped (it would fail for n + 1 >
        # len(pool); we draw what there is instead, which gives the same shots in the cases it handles)
        drawn = self.rnd.sample(self.pool, min(n + 1, len(self.pool)))
        res = [x for x in drawn if x != exclude][:n]
        if len(res) < n:  # duplicates of the eval doc were drawn: resample without them
            res = self.rnd.sample([x for x in self.pool if x != exclude], n)
        return res
