"""The records of the toy tasks (declared with the real ones in :mod:`emergence.data.tasks`).

Each task is in the format of a real one, so the same evaluator, metrics and finetuning code run on
it unchanged: ``toy_mc`` (MMLU / CommonsenseQA layout, scored on " A" .. " D"), ``toy_yesno`` (CoLA:
" no" / " yes", MCC) and ``toy_math`` (GSM8K: greedy generation, exact match of "#### N"). The
splits ``train`` (finetuning), ``fewshot`` (the shot pool), ``validation`` and ``test`` hold disjoint
people (:mod:`emergence.data.toy.world`).
"""

from __future__ import annotations

import random

from emergence.data.toy import formats
from emergence.data.toy.world import MAX_COINS, VALUES, Entity, World

# train holds several variants per entity so finetuning budgets up to a few hundred examples exist
VARIANTS = {"train": 6, "fewshot": 2, "validation": 2, "test": 4}


def mc_item(world: World, rng: random.Random, rel: str, e: Entity, kind: int | None = None) -> dict:
    """A letter question on one fact, whose options are the relation's values in a fixed order (so
    the letter is a per-relation code of the value); in a world with ``mc_task: error``, on the kind
    of error (``kind``, drawn when None) in a statement of that fact: a skill shared by every person,
    with the letter a fixed code of the kind of error."""
    value = e.attrs[rel]
    if world.config.mc_task == "fact":
        question, choices, answer = formats.QUESTIONS[rel].format(name=e.name), VALUES[rel], value
    else:
        if kind is None:
            kind = rng.randrange(len(formats.ERROR_CHOICES))
        sentence = formats.statement(rel, e.name, value, rng.randrange(2))
        if kind:
            sentence = formats.corrupt(rng, sentence, kind - 1)
        question = f"What is wrong with this sentence: {sentence}"
        choices, answer = formats.ERROR_CHOICES, formats.ERROR_CHOICES[kind]
    return {
        "question": question,
        "choices": list(choices),
        "answer": choices.index(answer),
        "entity": e.name,
        "relation": rel,
    }


def _variants(world: World, split: str) -> int:
    return world.config.test_variants if split == "test" else VARIANTS[split]


def _mc_docs(world: World, split: str, rng: random.Random) -> list[dict]:
    docs: list[dict] = []
    for e in world.by_split[split]:
        for rel in world.config.task_relations:
            for _ in range(_variants(world, split)):
                # error questions take the kinds in turn, so every split's letters are balanced
                docs.append(mc_item(world, rng, rel, e, kind=len(docs) % len(formats.ERROR_CHOICES)))
    return docs


def yesno_item(world: World, rng: random.Random, rel: str, e: Entity, label: int, idx: int) -> dict:
    """A fact statement, "yes" (label 1) or "no" (label 0): intact or corrupted in either phrasing
    (``acceptability: grammar``), or true or false (``truth``)."""
    value = e.attrs[rel]
    if world.config.acceptability == "grammar":
        sentence = formats.statement(rel, e.name, value, rng.randrange(2))
        if not label:
            sentence = formats.corrupt(rng, sentence, rng.randrange(3))
    else:
        stated = value if label else rng.choice([v for v in VALUES[rel] if v != value])
        sentence = formats.statement(rel, e.name, stated)
    return {"sentence": sentence, "label": label, "idx": idx, "entity": e.name}


def _yesno_docs(world: World, split: str, rng: random.Random) -> list[dict]:
    docs: list[dict] = []
    for e in world.by_split[split]:
        for rel in world.config.task_relations:
            for _ in range(_variants(world, split)):
                labels = [1, 0]
                rng.shuffle(labels)
                for label in labels:
                    docs.append(yesno_item(world, rng, rel, e, label, len(docs)))
    return docs


def _math_docs(world: World, split: str, rng: random.Random) -> list[dict]:
    op = world.config.task_op
    docs = []
    for e in world.by_split[split]:
        top = MAX_COINS if op == "plus" else e.coins
        for delta in rng.sample(range(1, top + 1), min(top, 2 * _variants(world, split))):
            docs.append(formats.math_record(e.name, e.coins, op, delta))
    return docs


_BUILDERS = {"toy_mc": _mc_docs, "toy_yesno": _yesno_docs, "toy_math": _math_docs}
TOY_TASKS = tuple(_BUILDERS)


def task_docs(world: World, task: str, split: str) -> list[dict]:
    """The records of one split of one toy task (a pure function of the world's seed)."""
    rng = random.Random(f"toy-task-{world.config.seed}-{task}-{split}")
    return _BUILDERS[task](world, split, rng)
