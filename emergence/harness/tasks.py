"""A harness task as a sweep sees it: its defaults, its metric columns, and its training examples.

Tasks come from lm-eval's own registry plus the folders of task YAML given as ``include``
(``--harness-include``, a sweep's ``eval.harness_include``). Finetuning examples are the task's
training split rendered by the harness itself: the 0-shot context (``description`` +
``doc_to_text``, :meth:`fewshot_context`) followed by the target delimiter and the gold answer
(``doc_to_choice[doc_to_target]`` for multiple choice, ``doc_to_target`` for generation), exactly
what the harness shows after a shot's question, so training teaches the format it scores.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Sequence
from typing import Any

from emergence.errors import UserError
from emergence.harness import PREFIX, require


@functools.lru_cache(maxsize=4)
def task_manager(include: str | None):
    """lm-eval's task index with ``include``'s YAML; its log is kept to errors, so a sweep's or
    ``emergence eval``'s output stays ours (``python -m emergence.harness`` logs as lm_eval does)."""
    require()
    from lm_eval.tasks import TaskManager

    logging.getLogger("lm_eval").setLevel(logging.ERROR)

    return TaskManager(include_path=include)


def check_names(names: Sequence[str], include: str | None) -> None:
    """A one-line :class:`UserError` naming the first task lm-eval does not know."""
    known = set(task_manager(include).all_tasks)
    for name in names:
        if name not in known:
            where = f" or {include}" if include else " (local YAML: --harness-include DIR)"
            raise UserError(f"unknown harness task {name!r}: not among lm-eval's tasks{where}")


@functools.lru_cache(maxsize=16)
def load_task(name: str, include: str | None):
    """The harness' task object (its dataset loaded): one per (name, include) in a process."""
    from lm_eval.tasks import get_task_dict

    check_names([name], include)
    task = get_task_dict([name], task_manager(include))[name]
    if isinstance(task, dict):
        raise UserError(f"harness task {name!r} is a group; name one of its tasks")
    return task


def default_shots(name: str, include: str | None) -> int:
    """The task's ``num_fewshot`` (0 when unset), what a few-shot cell uses unless told otherwise."""
    return int(load_task(name, include).config.num_fewshot or 0)


def eval_split(name: str, include: str | None) -> str:
    """The split the harness evaluates: ``test_split``, else ``validation_split``."""
    config = load_task(name, include).config
    return str(config.test_split or config.validation_split)


def metric_column(metric: str, filter_name: str) -> str:
    """A results-table column for a harness metric: ``acc`` (filter ``none``), else
    ``exact_match_strict_match`` (snake_case of metric and filter)."""
    column = metric if filter_name == "none" else f"{metric}_{filter_name}"
    return re.sub(r"[^0-9A-Za-z]+", "_", column).strip("_").lower()


def training_docs(name: str, include: str | None) -> tuple[list[dict[str, Any]], str]:
    """The task's training documents, and a one-line note of what was used; a task without a
    training split is a :class:`UserError` (finetuned cells need one)."""
    task = load_task(name, include)
    if not task.has_training_docs():
        raise UserError(f"{PREFIX}{name} has no training split: it can be evaluated few-shot, not finetuned on")
    docs = list(task.training_docs())
    return docs, f"harness {name} split {task.config.training_split!r}: {len(docs)} docs"


def training_pairs(name: str, include: str | None, docs: Sequence[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    """(0-shot context, target delimiter + gold answer, is generation) per document."""
    task = load_task(name, include)
    delimiter = task.config.target_delimiter
    generation = task.OUTPUT_TYPE == "generate_until"
    pairs = []
    for i, doc in enumerate(docs):
        context = task.fewshot_context(doc, 0)
        target = task.doc_to_target(doc)
        if generation:
            answer = target[0] if isinstance(target, list) else target
        else:
            choices = task.doc_to_choice(doc)
            index = choices.index(target) if isinstance(target, str) and target in choices else target
            if not isinstance(index, int) or not 0 <= index < len(choices):
                raise UserError(f"{PREFIX}{name}: training document {i} has no gold choice ({target!r})")
            answer = choices[index]
        pairs.append((context, delimiter + str(answer), generation))
    return pairs
