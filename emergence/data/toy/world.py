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

from emergence.errors import UserError

ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z")
VOWELS = ("a", "e", "i", "o", "u")
CODAS = ("", "", "n", "r", "l", "s", "k")

# attribute values: short, common words so the BPE keeps each as one token
VALUES: dict[str, tuple[str, ...]] = {
    "color": ("red", "blue", "green", "gold"),
    "pet": ("cat", "dog", "fish", "bird"),
    "city": ("rome", "oslo", "lima", "riga"),
    # more relations a world may give its people (WorldConfig.relations); not in the default world
    "food": ("bread", "rice", "soup", "cake"),
    "sport": ("golf", "polo", "judo", "chess"),
    "tree": ("oak", "elm", "ash", "yew"),
}
DEFAULT_RELATIONS = ("color", "pet", "city")
MAX_COINS = 9
SPLITS = ("train", "fewshot", "validation", "test")
# WorldConfig options added for variants of the world; a world's description names them only when set
OPTIONAL_KEYS = (
    "test_variants",
    "relations",
    "quiz_splits",
    "quiz_answers",
    "task_answer_share",
    "mc_answer_share",
    "balanced_values",
    "shuffle_options",
    "mc_context",
    "mc_task",
)


@dataclass(frozen=True)
class WorldConfig:
    """What the world and its corpus look like; the seed fixes every draw.

    ``exam_relations`` are the relations that pretraining quizzes (documents already in the task
    formats) ask about for every entity; the toy tasks ask about the *other* relations, which the
    quizzes cover only in a fraction ``task_exam_share`` of their items and never for test entities.
    ``exam_op`` is the arithmetic story most worked problems use (``minus``: "loses"); the numeric
    task asks for the other (``plus``: "finds"), again rare in the corpus and never for test entities.

    Options for variants of this world (docs/toy-world.md, probe 6; the defaults give the world
    above):

    - ``test_variants``: how many items each test person gets per relation in every task's test
      split (toy_math: twice as many amounts, up to the coins available). Larger test splits make
      a small rise significant; the corpus and the other splits do not change.
    - ``relations``: the facts every person has. More relations give the task splits more distinct
      questions per person.
    - ``quiz_splits``: whose letter and yes/no quiz items on the task relations the corpus holds.
      With ``fewshot`` and ``validation`` only, the finetuning split's people are new to those
      formats. With ``train`` included, the model has memorised their quiz answers and finetuning
      has nothing left to teach.
    - ``quiz_answers: words``: those quizzes answer mostly in words (the option's value,
      "right"/"wrong"), and in the tasks' own answer tokens only for a share
      ``task_answer_share``. The facts and the judgement are then learned in the task layouts for
      everyone, and the answer code is the rare part.
    - ``mc_answer_share``: the same share for the letter quizzes alone (default: ``task_answer_share``).
      A rarer letter code lets the facts come well before the letters on a ladder, so that some
      checkpoints know the answer and cannot yet give its letter: the gap finetuning can close.
    - ``balanced_values``: within each split, every value of a relation is held by equally many
      people (as nearly as the split's size allows). The letter answers of ``toy_mc`` are then
      balanced in every split, so a finetuning set cannot teach a label prior in place of the code,
      and always answering one letter scores exactly chance.
    - ``shuffle_options``: every letter question (quizzes and ``toy_mc``) lists the four values in
      a random order, so the letter is not a fixed code of the value: the model must find the
      recalled value among the options, and a finetuning set cannot be learned by heart as
      person → letter, since the same question comes with different letters.
    - ``mc_context``: every letter question (quizzes and ``toy_mc``) first states the fact it asks
      about ("bazol likes the color red. What color does bazol like?"), so ``toy_mc`` reads the
      value from the prompt and only the letter code is rare: a skill finetuning can teach for
      every person, where recall is per person (docs/toy-world.md, probe 12).
    - ``mc_task: error``: the letter questions (quizzes and ``toy_mc``) ask what is wrong with a
      fact statement (nothing, swapped words, a missing word, a doubled word; options always in
      that order) instead of asking for the fact. The skill is the grammar ``toy_yesno`` needs and
      the same for every person, so finetuning teaches a shared letter code rather than per-person
      answers (docs/toy-world.md, probe 13).
    """

    seed: int = 0
    n_entities: int = 40
    split_fractions: tuple[float, float, float, float] = (0.4, 0.1, 0.1, 0.4)  # train, fewshot, val, test
    relations: tuple[str, ...] = DEFAULT_RELATIONS  # what every person has (keys of VALUES)
    exam_relations: tuple[str, ...] = ("city",)
    exam_op: str = "minus"
    task_exam_share: float = 0.4
    quiz_answers: str = "task"  # "words": quizzes mostly answer with the value / right-wrong
    task_answer_share: float = 0.1  # with quiz_answers "words": share answered as the tasks do
    mc_answer_share: float | None = None  # the share for letter quizzes alone; None: task_answer_share
    quiz_splits: tuple[str, ...] = ("train", "fewshot", "validation")  # who task-relation quizzes ask about
    balanced_values: bool = False  # each split holds every value of a relation equally often
    shuffle_options: bool = False  # letter questions list their options in a random order
    mc_context: bool = False  # letter questions state the fact they ask about
    mc_task: str = "fact"  # "error": letter questions ask what is wrong with a statement
    test_variants: int = 4  # items per (person, relation) in the task test splits (evaluation size)
    acceptability: str = (
        "grammar"  # toy_yesno: "truth" (false facts are "no") or "grammar" (corrupted word order)
    )
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
        if not 1 <= self.test_variants <= 64:
            raise UserError(f"toy world: test_variants must be 1..64, got {self.test_variants}")
        if self.n_entities < 20:
            raise UserError(f"toy world: n_entities must be >= 20, got {self.n_entities}")
        if abs(sum(self.split_fractions) - 1.0) > 1e-6 or len(self.split_fractions) != len(SPLITS):
            raise UserError(
                f"toy world: split_fractions must be 4 numbers summing to 1, got {self.split_fractions}"
            )
        unknown = [r for r in self.relations if r not in VALUES]
        if unknown or len(set(self.relations)) != len(self.relations):
            raise UserError(
                f"toy world: relations must be distinct names from {', '.join(VALUES)}, got {list(self.relations)}"
            )
        unknown = [r for r in self.exam_relations if r not in self.relations]
        if unknown:
            raise UserError(
                f"toy world: unknown exam relation {unknown[0]!r}; known: {', '.join(self.relations)}"
            )
        if self.vocab_size < 300:
            raise UserError(
                f"toy world: vocab_size must be >= 300 (256 bytes + merges), got {self.vocab_size}"
            )
        if not 0.0 <= self.task_exam_share <= 1.0:
            raise UserError(f"toy world: task_exam_share must be in [0, 1], got {self.task_exam_share}")
        if self.acceptability not in ("truth", "grammar"):
            raise UserError(f"toy world: acceptability must be truth or grammar, got {self.acceptability!r}")
        if self.mc_task not in ("fact", "error"):
            raise UserError(f"toy world: mc_task must be fact or error, got {self.mc_task!r}")
        if self.mc_task == "error" and (self.shuffle_options or self.mc_context):
            raise UserError(
                "toy world: shuffle_options and mc_context shape fact questions; mc_task error asks none"
            )
        if self.quiz_answers not in ("task", "words"):
            raise UserError(f"toy world: quiz_answers must be task or words, got {self.quiz_answers!r}")
        for key in ("task_answer_share", "mc_answer_share"):
            share = getattr(self, key)
            if share is not None and not 0.0 <= share <= 1.0:
                raise UserError(f"toy world: {key} must be in [0, 1], got {share}")
        bad = [s for s in self.quiz_splits if s not in SPLITS[:3]]
        if bad or not self.quiz_splits:
            raise UserError(
                f"toy world: quiz_splits must name some of {', '.join(SPLITS[:3])} (never test), "
                f"got {list(self.quiz_splits)}"
            )
        if self.exam_op not in ("plus", "minus"):
            raise UserError(f"toy world: exam_op must be plus or minus, got {self.exam_op!r}")

    @classmethod
    def from_dict(cls, raw: dict | None) -> WorldConfig:
        raw = dict(raw or {})
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise UserError(f"toy world: unknown key {unknown[0]!r}; known: {', '.join(sorted(known))}")
        for key in ("split_fractions", "relations", "exam_relations", "quiz_splits"):
            if key in raw:
                raw[key] = tuple(raw[key])
        if "doc_mix" in raw:
            mix = raw["doc_mix"]
            raw["doc_mix"] = tuple(
                (str(k), float(v)) for k, v in (mix.items() if isinstance(mix, dict) else mix)
            )
        return cls(**raw)

    def unset_options(self) -> set[str]:
        """Variant options left at their defaults. Descriptions of a world (its cache key, a demo's
        ladder stamp) leave them out, so worlds made before an option existed keep their keys."""
        return {k for k in OPTIONAL_KEYS if getattr(self, k) == self.__dataclass_fields__[k].default}

    def to_dict(self) -> dict:
        unset = self.unset_options()
        optional = {k: getattr(self, k) for k in OPTIONAL_KEYS if k not in unset}
        optional = {k: list(v) if isinstance(v, tuple) else v for k, v in optional.items()}
        return optional | {
            "seed": self.seed,
            "n_entities": self.n_entities,
            "split_fractions": list(self.split_fractions),
            "exam_relations": list(self.exam_relations),
            "exam_op": self.exam_op,
            "task_exam_share": self.task_exam_share,
            "acceptability": self.acceptability,
            "corpus_tokens_hint": self.corpus_tokens_hint,
            "heldout_docs": self.heldout_docs,
            "vocab_size": self.vocab_size,
            "doc_mix": dict(self.doc_mix),
        }

    @property
    def task_relations(self) -> tuple[str, ...]:
        """Relations the toy tasks ask about: every one the pretraining quizzes leave out."""
        return tuple(r for r in self.relations if r not in self.exam_relations)

    def answer_share(self, quiz: str) -> float:
        """Share of a quiz's items (``mc`` or ``yesno``) answered in the task's tokens."""
        if quiz == "mc" and self.mc_answer_share is not None:
            return self.mc_answer_share
        return self.task_answer_share

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
    def non_test(self) -> tuple[Entity, ...]:
        return tuple(e for e in self.entities if e.split != "test")

    @property
    def quiz_entities(self) -> tuple[Entity, ...]:
        return tuple(e for e in self.entities if e.split in self.config.quiz_splits)


def _names(rng: random.Random, n: int, relations: tuple[str, ...]) -> list[str]:
    """n distinct two-syllable names (no collision with attribute words)."""
    taken = {v for rel in relations for v in VALUES[rel]}
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
    names = _names(rng, config.n_entities, config.relations)
    counts = [int(round(f * config.n_entities)) for f in config.split_fractions]
    counts[0] += config.n_entities - sum(counts)
    labels = [s for s, c in zip(SPLITS, counts, strict=True) for _ in range(c)]
    rng.shuffle(labels)
    entities = tuple(
        Entity(
            name=name,
            attrs={rel: rng.choice(VALUES[rel]) for rel in config.relations},
            coins=rng.randint(1, MAX_COINS),
            split=split,
        )
        for name, split in zip(names, labels, strict=True)
    )
    if config.balanced_values:
        entities = _balance_values(entities, config.relations, config.seed)
    by_split = {s: tuple(e for e in entities if e.split == s) for s in SPLITS}
    return World(config, entities, by_split)


def _balance_values(
    entities: tuple[Entity, ...], relations: tuple[str, ...], seed: int
) -> tuple[Entity, ...]:
    """Reassign each relation's values so that every split holds them equally often: the split's
    people get the values in turn, in a seeded random order (names, coins and splits unchanged)."""
    rng = random.Random(f"toy-world-balanced-{seed}")
    attrs = {e.name: dict(e.attrs) for e in entities}
    for split in SPLITS:
        members = [e.name for e in entities if e.split == split]
        for rel in relations:
            cycle = [VALUES[rel][i % len(VALUES[rel])] for i in range(len(members))]
            rng.shuffle(cycle)
            for name, value in zip(members, cycle, strict=True):
                attrs[name][rel] = value
    return tuple(Entity(e.name, attrs[e.name], e.coins, e.split) for e in entities)
