"""The toy world: made-up people with a few attributes each, drawn from a seed.

Everything the corpus states and every task asks about comes from one :class:`World`, so the
answer to a task question is a fact the corpus really contains (in another form). Entities are
split once, by a seeded shuffle, into the task splits: an entity whose questions are in ``test``
never has questions in ``train``, so finetuning can teach the question *format* for a relation but
not the test answers, which the model must recall from pretraining.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from emergence.errors import UserError, check_fields

ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z")
VOWELS = ("a", "e", "i", "o", "u")
CODAS = ("", "", "n", "r", "l", "s", "k")

# every person's facts; short, common words so the BPE keeps each value as one token
VALUES: dict[str, tuple[str, ...]] = {
    "color": ("red", "blue", "green", "gold"),
    "pet": ("cat", "dog", "fish", "bird"),
    "city": ("rome", "oslo", "lima", "riga"),
}
RELATIONS = tuple(VALUES)
MAX_COINS = 9
SPLITS = ("train", "fewshot", "validation", "test")
# WorldConfig options added for variants of the world; a world's description names them only when set
OPTIONAL_KEYS = (
    "test_variants",
    "quiz_splits",
    "quiz_answers",
    "task_answer_share",
    "balanced_values",
    "mc_task",
)
# the options with a fixed set of values, and those values
CHOICES = {
    "acceptability": ("truth", "grammar"),
    "mc_task": ("fact", "error"),
    "quiz_answers": ("task", "words"),
    "exam_op": ("plus", "minus"),
}


@dataclass(frozen=True)
class WorldConfig:
    """What the world and its corpus look like; the seed fixes every draw.

    ``exam_relations`` are the relations that pretraining quizzes (documents already in the task
    formats) ask about for every entity; the toy tasks ask about the *other* relations, which the
    quizzes cover only in a fraction ``task_exam_share`` of their items and never for test entities.
    ``exam_op`` is the arithmetic story most worked problems use (``minus``: "loses"); the numeric
    task asks for the other (``plus``: "finds"), again rare in the corpus and never for test entities.

    The other options give variants of this world, each making a different part of a task the
    rare one (docs/toy-world.md); the defaults give the world above.
    """

    seed: int = 0
    n_entities: int = 40
    split_fractions: tuple[float, float, float, float] = (0.4, 0.1, 0.1, 0.4)  # train, fewshot, val, test
    exam_relations: tuple[str, ...] = ("city",)
    exam_op: str = "minus"
    task_exam_share: float = 0.4
    quiz_answers: str = "task"  # "words": quizzes mostly answer with the value / right-wrong
    task_answer_share: float = 0.1  # with quiz_answers "words": share answered as the tasks do
    quiz_splits: tuple[str, ...] = ("train", "fewshot", "validation")  # who task-relation quizzes ask about
    balanced_values: bool = False  # each split holds every value equally often: no label prior to learn
    mc_task: str = "fact"  # "error": letter questions ask what is wrong with a fact statement
    test_variants: int = 4  # items per (person, relation) in the task test splits (evaluation size)
    acceptability: str = "grammar"  # toy_yesno: "truth" (false facts are "no") or "grammar" (corrupted)
    corpus_tokens_hint: int = 2_000_000  # roughly how many BPE tokens the training corpus holds
    heldout_docs: int = 600
    vocab_size: int = 1024  # byte-level BPE trained on the corpus
    doc_mix: tuple[tuple[str, float], ...] = (
        ("bio", 0.35),
        ("arithmetic", 0.05),
        ("exam_mc", 0.25),
        ("exam_yesno", 0.15),
        ("exam_math", 0.2),
    )

    def __post_init__(self) -> None:
        where = "toy world: "
        check_fields(self, lambda v: 1 <= v <= 64, "1..64", "test_variants", where=where)
        check_fields(self, lambda v: v >= 20, ">= 20", "n_entities", where=where)
        if abs(sum(self.split_fractions) - 1.0) > 1e-6 or len(self.split_fractions) != len(SPLITS):
            raise UserError(
                f"toy world: split_fractions must be 4 numbers summing to 1, got {self.split_fractions}"
            )
        unknown = [r for r in self.exam_relations if r not in RELATIONS]
        if unknown:
            raise UserError(f"toy world: unknown exam relation {unknown[0]!r}; known: {', '.join(RELATIONS)}")
        check_fields(self, lambda v: v >= 300, ">= 300 (256 bytes + merges)", "vocab_size", where=where)
        shares = ("task_exam_share", "task_answer_share")
        check_fields(self, lambda v: 0.0 <= v <= 1.0, "in [0, 1]", *shares, where=where)
        for key, allowed in CHOICES.items():
            check_fields(self, allowed.__contains__, " or ".join(allowed), key, where=where)
        bad = [s for s in self.quiz_splits if s not in SPLITS[:3]]
        if bad or not self.quiz_splits:
            raise UserError(
                f"toy world: quiz_splits must name some of {', '.join(SPLITS[:3])} (never test), "
                f"got {list(self.quiz_splits)}"
            )

    def unset_options(self) -> set[str]:
        """Variant options left at their defaults. Descriptions of a world (its cache key, a demo's
        ladder stamp) leave them out, so worlds made before an option existed keep their keys."""
        return {k for k in OPTIONAL_KEYS if getattr(self, k) == self.__dataclass_fields__[k].default}

    def to_dict(self) -> dict:
        """The world's description (world.json, the cache key): the variant options that are set,
        then every other field in declaration order, as plain JSON values."""
        unset = self.unset_options()
        keys = [k for k in OPTIONAL_KEYS if k not in unset]
        keys += [k for k in self.__dataclass_fields__ if k not in OPTIONAL_KEYS]
        described = {k: getattr(self, k) for k in keys}
        described = {k: list(v) if isinstance(v, tuple) else v for k, v in described.items()}
        return described | {"doc_mix": dict(self.doc_mix)}

    @property
    def task_relations(self) -> tuple[str, ...]:
        """Relations the toy tasks ask about: every one the pretraining quizzes leave out."""
        return tuple(r for r in RELATIONS if r not in self.exam_relations)

    @property
    def task_op(self) -> str:
        return "plus" if self.exam_op == "minus" else "minus"


@dataclass(frozen=True)
class Entity:
    name: str
    attrs: dict[str, str]  # relation -> value
    coins: int
    split: str


@dataclass(frozen=True)
class World:
    config: WorldConfig
    entities: tuple[Entity, ...]
    by_split: dict[str, tuple[Entity, ...]] = field(repr=False)

    @property
    def quiz_entities(self) -> tuple[Entity, ...]:
        return tuple(e for e in self.entities if e.split in self.config.quiz_splits)


def _names(rng: random.Random, n: int) -> list[str]:
    """n distinct two-syllable names (no collision with attribute words)."""
    taken = {v for values in VALUES.values() for v in values}
    names: list[str] = []
    while len(names) < n:
        name = "".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS) for _ in range(2))
        if name not in taken and len(name) >= 4:
            taken.add(name)
            names.append(name)
    return names


def build_world(config: WorldConfig) -> World:
    """Entities with attributes and splits, a pure function of ``config``."""
    rng = random.Random(f"toy-world-{config.seed}")
    names = _names(rng, config.n_entities)
    counts = [int(round(f * config.n_entities)) for f in config.split_fractions]
    counts[0] += config.n_entities - sum(counts)
    labels = [s for s, c in zip(SPLITS, counts, strict=True) for _ in range(c)]
    rng.shuffle(labels)
    entities = tuple(
        Entity(
            name=name,
            attrs={rel: rng.choice(values) for rel, values in VALUES.items()},
            coins=rng.randint(1, MAX_COINS),
            split=split,
        )
        for name, split in zip(names, labels, strict=True)
    )
    if config.balanced_values:
        entities = _balance_values(entities, config.seed)
    by_split = {s: tuple(e for e in entities if e.split == s) for s in SPLITS}
    return World(config, entities, by_split)


def _balance_values(entities: tuple[Entity, ...], seed: int) -> tuple[Entity, ...]:
    """Reassign each relation's values so that every split holds them equally often: the split's
    people get the values in turn, in a seeded random order (names, coins and splits unchanged)."""
    rng = random.Random(f"toy-world-balanced-{seed}")
    attrs = {e.name: dict(e.attrs) for e in entities}
    for split in SPLITS:
        members = [e.name for e in entities if e.split == split]
        for rel, values in VALUES.items():
            cycle = [values[i % len(values)] for i in range(len(members))]
            rng.shuffle(cycle)
            for name, value in zip(members, cycle, strict=True):
                attrs[name][rel] = value
    return tuple(Entity(e.name, attrs[e.name], e.coins, e.split) for e in entities)
