"""Every task as a frozen value, in one registry, and the requests the scoring engine consumes.

A :class:`TaskSpec` is data, like an lm-evaluation-harness task YAML: its loader, splits, few-shot
sampling, prompt pieces, delimiters, stop sequences, answer filter and metrics, and what the law and
the planner need (chance levels, size). :data:`TASKS` declares the benchmark and toy tasks side by
side; :func:`get_task` is the one place a task name is checked. :func:`build_requests` renders
prompts byte-identical to the harness' 0.4.x defaults (pinned by ``scripts/make_golden_prompts.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from emergence.data import sources, templates
from emergence.data.sources import Release
from emergence.data.templates import Record
from emergence.data.toy import formats as toy_formats
from emergence.data.toy.store import ToyWorld
from emergence.errors import UserError

DEFAULT_FEWSHOT_SEED = 1234  # lm-eval's DEFAULT_OTHER_SEED, used by simple_evaluate for shots


@dataclass(frozen=True)
class TaskSpec:
    """One task: the harness tasks copy their YAML (prompt pieces are plain functions, as its
    ``!function`` entries); the toy tasks reuse those pieces (:mod:`emergence.data.toy`)."""

    name: str
    loader: Release | ToyWorld
    doc_to_text: Callable[[Record], str]
    # the column holding the answer: a choice's index or label, or the reference string (generation:
    # gsm8k's full worked solution, which exact match normalizes like the prediction)
    gold_column: str
    metrics: tuple[str, ...]  # :mod:`emergence.eval.metrics` names; the first is the headline
    choices: tuple[str, ...] = ()  # scored as target_delimiter + choice; none: greedy generation
    answer_filter: str | None = None  # generation: how a completion becomes an answer (eval.metrics)
    # metric -> its chance level, the emergence law's floor B; a metric left out is estimated from data
    chance: dict[str, float] = field(default_factory=dict)
    eval_split: str = "test"
    fewshot_split: str = "train"
    sampler: str = "random"  # "first_n" | "random"
    # The harness drops the evaluated doc from the shots only when its few-shot split *equals* its
    # test split. CSQA and CoLA declare neither, so None == None makes that always true for them.
    always_exclude_eval_doc: bool = False
    description: Callable[[Record], str] | None = None
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"
    stop_sequences: tuple[str, ...] = ()
    max_gen_toks: int = 256  # the harness' HF default when the task sets none
    default_shots: int = 0  # the harness YAML's num_fewshot (0 when unset)
    # for the sweep's cost estimate: examples in the eval split, and tokens of one (prompt + answer)
    eval_docs: int | None = None
    example_tokens: int | None = None

    @property
    def is_generation(self) -> bool:
        return not self.choices

    @property
    def group_key(self) -> str | None:
        """MMLU: ``subject``; shots come from the same subject, and ``limit`` applies per subject."""
        return self.loader.group_key

    def doc_to_gold(self, doc: Record) -> int | str:
        """The gold choice's index (-1: an unlabeled doc, e.g. CSQA's test split), or the reference."""
        gold = doc[self.gold_column]
        if not self.choices:
            return gold
        if isinstance(gold, str):  # a label, as CSQA's answerKey
            return self.choices.index(gold.lstrip()) if gold.lstrip() in self.choices else -1
        return int(gold)

    def doc_to_target(self, doc: Record) -> str:
        """What a shot shows after the target delimiter: the gold choice (the harness'
        ``doc_to_choice[doc_to_target]``), or the reference answer; "" where a doc has no label."""
        gold = self.doc_to_gold(doc)
        if not self.choices:
            return str(gold)
        return self.choices[gold] if gold >= 0 else ""

    def records(
        self,
        split: str,
        *,
        source: str | os.PathLike = "local",
        data_dir: str | os.PathLike | None = None,
        subjects: Iterable[str] | None = None,
    ) -> list[Record]:
        """Records of one split (:meth:`emergence.data.sources.Release.load`); MMLU: of ``subjects``."""
        return self.loader.load(self.name, split, source=source, data_dir=data_dir, groups=subjects)

    def train_records(self, data_dir: str | os.PathLike | None = None) -> tuple[list[Record], str]:
        """Finetuning records, and a one-line note of what was used."""
        return self.loader.train(self.name, data_dir)


@dataclass(frozen=True)
class Request:
    """One evaluated document, ready for the engine: score each of ``continuations`` after
    ``context`` (``gold``: the correct index), or, with none, greedy-decode until one of ``stop`` or
    ``max_gen_toks`` tokens (``gold``: the reference string). ``group`` is the MMLU subject."""

    task: str
    doc_id: int
    context: str
    gold: int | str
    continuations: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    max_gen_toks: int = 0
    group: str | None = None

    @property
    def is_generation(self) -> bool:
        return not self.continuations


# The tasks, declared once. A field left out takes the harness' default (TaskSpec above).
TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            name="mmlu",
            loader=Release(
                hub_id="cais/mmlu", hub_config=None, group_key="subject",
                files={"dev": ("mmlu/dev/{group}_dev.csv",), "validation": ("mmlu/val/{group}_val.csv",),
                       "test": ("mmlu/test/{group}_test.csv",)},
                read=sources.read_mmlu_csv, from_hub=sources.mmlu_row,
                train_splits=("dev", "validation"), extra_train="mmlu/auxiliary_train/*.csv",
            ),
            doc_to_text=templates.mmlu_text, gold_column="answer",
            description=templates.mmlu_description, choices=("A", "B", "C", "D"),
            metrics=("acc", "acc_macro"), chance={"acc": 0.25},
            fewshot_split="dev", sampler="first_n",
            eval_docs=14042, example_tokens=110,
        ),
        TaskSpec(
            name="commonsense_qa",
            loader=Release(
                hub_id="tau/commonsense_qa", hub_config=None,
                files={"train": ("commonsenseqa/train_rand_split.jsonl",),
                       "validation": ("commonsenseqa/dev_rand_split.jsonl",),
                       "test": ("commonsenseqa/test_rand_split_no_answers.jsonl",)},
                read=sources.read_csqa_jsonl, from_hub=sources.csqa_row,
            ),
            doc_to_text=templates.csqa_text, gold_column="answerKey",
            choices=("A", "B", "C", "D", "E"),
            metrics=("acc",), chance={"acc": 0.2},
            eval_split="validation", always_exclude_eval_doc=True,
            eval_docs=1221, example_tokens=60,
        ),
        TaskSpec(
            name="cola",
            loader=Release(
                hub_id="nyu-mll/glue", hub_config="cola",
                # GLUE's CoLA dev (1043) is the in-domain dev followed by the out-of-domain dev.
                files={"train": ("cola/in_domain_train.tsv",),
                       "validation": ("cola/in_domain_dev.tsv", "cola/out_of_domain_dev.tsv")},
                read=sources.read_cola_tsv, from_hub=sources.cola_row,
            ),
            doc_to_text=templates.cola_text, gold_column="label",
            choices=("no", "yes"),
            metrics=("mcc", "acc"), chance={"mcc": 0.0},
            eval_split="validation", always_exclude_eval_doc=True,
            eval_docs=1043, example_tokens=25,
        ),
        TaskSpec(
            name="gsm8k",
            loader=Release(
                hub_id="openai/gsm8k", hub_config="main",
                files={"train": ("gsm8k/train.jsonl",), "test": ("gsm8k/test.jsonl",)},
                read=sources.read_gsm8k_jsonl, from_hub=sources.gsm8k_row,
            ),
            doc_to_text=templates.gsm8k_text, gold_column="answer",
            stop_sequences=("Question:", "</s>", "<|im_end|>"), answer_filter="gsm8k",
            metrics=("em_strict", "em_flexible"), chance={"em_strict": 0.0, "em_flexible": 0.0},
            default_shots=5,
            eval_docs=1319, example_tokens=200,
        ),
        # The toy world's tasks, in the real ones' formats. Their chance is left to the data (the
        # demo's fits were made that way) and they have no typical size.
        TaskSpec(
            name="toy_mc",
            loader=ToyWorld(),
            doc_to_text=toy_formats.mc_text, gold_column="answer",
            choices=("A", "B", "C", "D"),
            metrics=("acc",),
            fewshot_split="fewshot", default_shots=3,
        ),
        TaskSpec(
            name="toy_yesno",
            loader=ToyWorld(),
            doc_to_text=templates.cola_text, gold_column="label",
            choices=("no", "yes"),
            metrics=("mcc", "acc"),
            fewshot_split="fewshot", default_shots=4,
        ),
        TaskSpec(
            name="toy_math",
            loader=ToyWorld(),
            doc_to_text=templates.gsm8k_text, gold_column="answer",
            stop_sequences=("\n", "Question:"), max_gen_toks=24, answer_filter="gsm8k",
            metrics=("em_strict", "em_flexible"),
            fewshot_split="fewshot", default_shots=2,
        ),
    )
}


def get_task(task: str | TaskSpec) -> TaskSpec:
    """The task of that name (a :class:`UserError` naming the known ones otherwise); a task already
    looked up passes through, so a name is checked once on its way to the prompt builder."""
    if isinstance(task, TaskSpec):
        return task
    if task not in TASKS:
        if task.startswith("harness:"):
            raise UserError(f"{task}: harness tasks run in sweeps and in `emergence eval --harness-task`")
        raise UserError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[task]


def chance_level(task: str, metric: str) -> float | None:
    """A task's chance level on a metric; None where unknown (a user's task: the law estimates it)."""
    return TASKS[task].chance.get(metric) if task in TASKS else None


def load_task_docs(
    spec: TaskSpec,
    split: str | None = None,
    *,
    shots: int | None = None,
    source: str | os.PathLike = "local",
    data_dir: str | os.PathLike | None = None,
    subjects: Iterable[str] | None = None,
) -> tuple[list[Record], list[Record]]:
    """(eval docs, few-shot docs) for a task; the few-shot split is read only when shots > 0."""
    shots = spec.default_shots if shots is None else shots
    subjects = list(subjects) if subjects is not None else None
    docs = spec.records(split or spec.eval_split, source=source, data_dir=data_dir, subjects=subjects)
    if spec.group_key and subjects is None:
        subjects = sorted({d[spec.group_key] for d in docs})
    fewshot: list[Record] = []
    if shots > 0:
        fewshot = spec.records(spec.fewshot_split, source=source, data_dir=data_dir, subjects=subjects)
    return docs, fewshot


def build_requests(
    spec: TaskSpec,
    docs: Sequence[Record],
    fewshot_docs: Sequence[Record] = (),
    *,
    shots: int | None = None,
    seed: int | None = DEFAULT_FEWSHOT_SEED,
    eval_split: str | None = None,
    limit: int | None = None,
) -> list[Request]:
    """One :class:`Request` per doc, in order (the few-shot generator advances doc by doc).

    ``limit`` keeps the first ``limit`` docs *per group* (MMLU subject), like the harness' ``--limit``,
    with the prompts of a full run; ``doc_id`` is the index within the group, as in the harness.
    """
    shots = spec.default_shots if shots is None else shots
    if shots < 0:
        raise UserError(f"shots must be >= 0, got {shots}")
    if limit is not None and limit < 0:
        raise UserError(f"limit must be >= 0, got {limit}")
    exclude = spec.always_exclude_eval_doc or (eval_split or spec.eval_split) == spec.fewshot_split
    key = spec.group_key
    numbered, seen = [], {}
    for doc in docs:
        group = doc.get(key) if key else None
        seen[group] = seen.get(group, -1) + 1
        if limit is None or seen[group] < limit:
            numbered.append((seen[group], group, doc))
    samplers = _samplers(spec, [d for _, _, d in numbered], fewshot_docs, shots, seed) if shots > 0 else {}
    requests = []
    for doc_id, group, doc in numbered:
        shot_docs = samplers[group].sample(shots, doc if exclude else None) if shots > 0 else []
        context = templates.render_context(
            spec.description(doc) if spec.description else "",
            [(spec.doc_to_text(s), spec.doc_to_target(s)) for s in shot_docs],
            spec.doc_to_text(doc),
            spec.target_delimiter,
            spec.fewshot_delimiter,
        )
        requests.append(
            Request(
                task=spec.name,
                doc_id=doc_id,
                context=context,
                gold=spec.doc_to_gold(doc),
                continuations=tuple(spec.target_delimiter + c for c in spec.choices),
                stop=spec.stop_sequences,
                max_gen_toks=spec.max_gen_toks if spec.is_generation else 0,
                group=group,
            )
        )
    return requests


def make_requests(
    task: str | TaskSpec,
    *,
    shots: int | None = None,
    split: str | None = None,
    limit: int | None = None,
    seed: int | None = DEFAULT_FEWSHOT_SEED,
    source: str | os.PathLike = "local",
    data_dir: str | os.PathLike | None = None,
    subjects: Iterable[str] | None = None,
) -> tuple[TaskSpec, list[Request]]:
    """Task (or its name) → (spec, requests) in one call: what ``emergence eval`` needs before scoring."""
    spec = get_task(task)
    docs, fewshot = load_task_docs(
        spec, split, shots=shots, source=source, data_dir=data_dir, subjects=subjects
    )
    split = split or spec.eval_split
    return spec, build_requests(spec, docs, fewshot, shots=shots, seed=seed, eval_split=split, limit=limit)


def _samplers(
    spec: TaskSpec, docs: Sequence[Record], fewshot_docs: Sequence[Record], shots: int, seed: int | None
) -> dict[Any, templates.FewShotSampler]:
    """One sampler per few-shot group (MMLU: per subject, like the harness' per-subject tasks)."""
    key = spec.group_key
    pools: dict[Any, list[Record]] = {}
    for d in fewshot_docs:
        pools.setdefault(d[key] if key else None, []).append(d)
    samplers = {}
    for group in dict.fromkeys(d.get(key) if key else None for d in docs):
        where = f"{spec.name} few-shot split {spec.fewshot_split!r}" + (
            f" for {key} {group!r}" if key else ""
        )
        sampler = templates.FewShotSampler(pools.get(group, []), spec.sampler, seed, where)
        sampler.check(shots)  # fail before any work, one line naming the pool
        samplers[group] = sampler
    return samplers
