"""The toy pretraining corpus: documents drawn from the world, and a held-out sample of the same mix.

Document kinds (mix in :attr:`WorldConfig.doc_mix`): ``bio`` (all facts about one person, in random
order and phrasing), ``qa`` (facts as open questions), ``arithmetic`` (small sums and differences),
and ``exam_mc`` / ``exam_yesno`` / ``exam_math``, quizzes already in the task formats, mostly on the
*exam* relation and operation. So the corpus holds every ingredient of a toy task but the task's own
combination only rarely, and never for the people it is tested on (:mod:`emergence.data.toy`).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from emergence.data import templates
from emergence.data.toy import formats
from emergence.data.toy.tasks import mc_item, yesno_item
from emergence.data.toy.world import MAX_COINS, RELATIONS, Entity, World
from emergence.errors import UserError

FEWSHOT_DELIMITER = "\n\n"


def _bio(rng: random.Random, world: World) -> str:
    entity = rng.choice(world.entities)
    facts = [formats.statement(rel, entity.name, v, rng.randrange(2)) for rel, v in entity.attrs.items()]
    facts.append(formats.coins_statement(entity.name, entity.coins, rng.randrange(2)))
    rng.shuffle(facts)
    return " ".join(facts)


def _arithmetic(rng: random.Random, world: World) -> str:
    lines = []
    for _ in range(rng.randint(3, 6)):
        op = rng.choice(("plus", "minus"))
        a = rng.randint(1, MAX_COINS)
        b = rng.randint(1, MAX_COINS) if op == "plus" else rng.randint(1, a)
        lines.append(formats.arithmetic(a, op, b)[0])
    return " ".join(lines)


def _quiz_subject(rng: random.Random, world: World) -> tuple[str, Entity]:
    """(relation, entity) of one quiz item: usually an exam relation about anyone; with probability
    ``task_exam_share`` a task relation about someone in ``quiz_splits`` (never the test split)."""
    if world.config.task_relations and rng.random() < world.config.task_exam_share:
        return rng.choice(world.config.task_relations), rng.choice(world.quiz_entities)
    return rng.choice(world.config.exam_relations), rng.choice(world.entities)


def _qa(rng: random.Random, world: World) -> str:
    """Open questions answered with the value ("Question: What color does bazol like?\nAnswer: red")
    about anyone and any relation: the facts in question form, without any task's answer format."""
    items = []
    for _ in range(rng.randint(2, 4)):
        e = rng.choice(world.entities)
        rel = rng.choice(RELATIONS)
        question = templates.gsm8k_text({"question": formats.QUESTIONS[rel].format(name=e.name)})
        items.append(formats.shot_block(question, e.attrs[rel]))
    return FEWSHOT_DELIMITER.join(items)


def _in_words(rng: random.Random, world: World) -> bool:
    """Whether a quiz item answers in words (value, right/wrong) rather than as the task does."""
    return world.config.quiz_answers == "words" and rng.random() >= world.config.task_answer_share


def _exam_mc(rng: random.Random, world: World) -> str:
    items = []
    for _ in range(rng.randint(2, 4)):
        if words := _in_words(rng, world):  # any fact about anyone: the value is no task's answer
            e, rel = rng.choice(world.entities), rng.choice(RELATIONS)
        else:
            rel, e = _quiz_subject(rng, world)
        doc = mc_item(world, rng, rel, e)
        target = doc["choices"][doc["answer"]] if words else templates.LETTERS[doc["answer"]]
        items.append(formats.shot_block(formats.mc_text(doc), target))
    return FEWSHOT_DELIMITER.join(items)


def _exam_yesno(rng: random.Random, world: World) -> str:
    items = []
    for _ in range(rng.randint(3, 5)):
        words = _in_words(rng, world)
        rel, e = _quiz_subject(rng, world)
        doc = yesno_item(world, rng, rel, e, rng.randrange(2), 0)
        target = ("wrong", "right")[doc["label"]] if words else ("no", "yes")[doc["label"]]
        items.append(formats.shot_block(templates.cola_text(doc), target))
    return FEWSHOT_DELIMITER.join(items)


def _exam_math(rng: random.Random, world: World) -> str:
    items = []
    for _ in range(rng.randint(2, 3)):
        if rng.random() < world.config.task_exam_share:
            op, e = world.config.task_op, rng.choice([e for e in world.entities if e.split != "test"])
        else:
            op, e = world.config.exam_op, rng.choice(world.entities)
        delta = rng.randint(1, MAX_COINS) if op == "plus" else rng.randint(1, e.coins)
        doc = formats.math_record(e.name, e.coins, op, delta)
        items.append(formats.shot_block(templates.gsm8k_text(doc), doc["answer"]))
    return FEWSHOT_DELIMITER.join(items)


KINDS = {
    "bio": _bio,
    "qa": _qa,
    "arithmetic": _arithmetic,
    "exam_mc": _exam_mc,
    "exam_yesno": _exam_yesno,
    "exam_math": _exam_math,
}


def documents(world: World, n_docs: int, stream: str = "train") -> Iterator[str]:
    """``n_docs`` documents of the world's mix; ``stream`` names an independent random stream
    (``"train"`` for the pretraining corpus, ``"heldout"`` for the loss-evaluation sample)."""
    rng = random.Random(f"toy-corpus-{world.config.seed}-{stream}")
    kinds, weights = zip(*world.config.doc_mix, strict=True)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise UserError(f"toy world: unknown document kind {unknown[0]!r}; known: {', '.join(KINDS)}")
    for _ in range(n_docs):
        kind = rng.choices(kinds, weights)[0]
        yield KINDS[kind](rng, world)


AVG_TOKENS_PER_DOC = 40  # measured on the default world with the default BPE; only sizes the corpus
