"""The four real tasks as frozen values, and the requests the scoring engine consumes.

A :class:`TaskSpec` is data: where the records come from, which split is evaluated, where shots come
from and how they are drawn, the prompt template (doc → text, doc → few-shot target, choices), the
delimiters, stop sequences and metric names. :func:`build_requests` turns documents into
:class:`Request` values whose strings are byte-identical to lm-evaluation-harness 0.4.x defaults
(checked against fixtures rendered by the real harness, ``scripts/make_golden_prompts.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from emergence.data import sources, templates
from emergence.errors import UserError

Record = dict[str, Any]
DEFAULT_FEWSHOT_SEED = 1234  # lm-eval's DEFAULT_OTHER_SEED, used by simple_evaluate for shots


@dataclass(frozen=True)
class TaskSpec:
    """One benchmark task, as the harness' YAML defines it (prompt pieces are plain functions)."""

    name: str
    hub_id: str
    hub_config: str | None  # MMLU: the subject, chosen per load
    eval_split: str
    fewshot_split: str
    sampler: str  # "first_n" | "random"
    # The harness drops the evaluated doc from the shots only when its few-shot split *equals* its
    # test split. CSQA and CoLA declare neither, so None == None makes that always true for them.
    always_exclude_eval_doc: bool
    output_type: str  # "multiple_choice" | "generate_until"
    doc_to_text: Callable[[Record], str]
    doc_to_target: Callable[[Record], str]  # what a shot shows after the target delimiter
    doc_to_gold: Callable[[Record], int | str]  # choice index, or the reference string (generation)
    metrics: tuple[str, ...]
    choices: tuple[str, ...] = ()  # scored as target_delimiter + choice
    description: Callable[[Record], str] | None = None
    fewshot_group_key: str | None = None  # MMLU: shots come from the same subject
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"
    stop_sequences: tuple[str, ...] = ()
    max_gen_toks: int = 256  # the harness' HF default when the task sets none
    default_shots: int = 0  # the harness YAML's num_fewshot (0 when unset)

    @property
    def is_generation(self) -> bool:
        return self.output_type == "generate_until"

    def excludes_eval_doc(self, eval_split: str) -> bool:
        return self.always_exclude_eval_doc or eval_split == self.fewshot_split


@dataclass(frozen=True)
class Request:
    """One evaluated document, ready for the engine.

    Multiple choice: score each of ``continuations`` after ``context`` (harness ``loglikelihood``
    pairs); ``gold`` is the correct index. Generation: greedy-decode after ``context`` until one of
    ``stop`` or ``max_gen_toks`` tokens; ``gold`` is the reference string. ``group`` is the MMLU subject.
    """

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


TASK_SPECS: dict[str, TaskSpec] = {
    "mmlu": TaskSpec(
        name="mmlu",
        hub_id="cais/mmlu",
        hub_config=None,
        eval_split="test",
        fewshot_split="dev",
        sampler="first_n",
        always_exclude_eval_doc=False,
        output_type="multiple_choice",
        doc_to_text=templates.mmlu_text,
        doc_to_target=templates.mmlu_target,
        doc_to_gold=templates.mmlu_gold,
        metrics=("acc", "acc_macro"),
        choices=("A", "B", "C", "D"),
        description=templates.mmlu_description,
        fewshot_group_key="subject",
    ),
    "commonsense_qa": TaskSpec(
        name="commonsense_qa",
        hub_id="tau/commonsense_qa",
        hub_config=None,
        eval_split="validation",
        fewshot_split="train",
        sampler="random",
        always_exclude_eval_doc=True,
        output_type="multiple_choice",
        doc_to_text=templates.csqa_text,
        doc_to_target=templates.csqa_target,
        doc_to_gold=templates.csqa_gold,
        metrics=("acc",),
        choices=("A", "B", "C", "D", "E"),
    ),
    "cola": TaskSpec(
        name="cola",
        hub_id="nyu-mll/glue",
        hub_config="cola",
        eval_split="validation",
        fewshot_split="train",
        sampler="random",
        always_exclude_eval_doc=True,
        output_type="multiple_choice",
        doc_to_text=templates.cola_text,
        doc_to_target=templates.cola_target,
        doc_to_gold=templates.cola_gold,
        metrics=("mcc", "acc"),
        choices=("no", "yes"),
    ),
    "gsm8k": TaskSpec(
        name="gsm8k",
        hub_id="openai/gsm8k",
        hub_config="main",
        eval_split="test",
        fewshot_split="train",
        sampler="random",
        always_exclude_eval_doc=False,
        output_type="generate_until",
        doc_to_text=templates.gsm8k_text,
        doc_to_target=templates.gsm8k_target,
        doc_to_gold=templates.gsm8k_gold,
        metrics=("em_strict", "em_flexible"),
        stop_sequences=("Question:", "</s>", "<|im_end|>"),
        default_shots=5,
    ),
}


# Tasks that are not harness tasks (the toy world), added by register_task; TASK_SPECS stays the real four.
EXTRA_TASK_SPECS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec, loader: Callable[[str, str | os.PathLike | None], list[Record]]) -> None:
    """Add a task whose records come from ``loader(split, data_dir)``; same machinery as the real four."""
    EXTRA_TASK_SPECS[spec.name] = spec
    sources.register_loader(spec.name, loader)


def get_task(name: str) -> TaskSpec:
    if name in TASK_SPECS:
        return TASK_SPECS[name]
    sources.registered_loaders()  # the toy world registers itself on first use
    if name not in EXTRA_TASK_SPECS:
        raise UserError(f"unknown task {name!r}; known tasks: {', '.join([*TASK_SPECS, *EXTRA_TASK_SPECS])}")
    return EXTRA_TASK_SPECS[name]


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
    split = split or spec.eval_split
    shots = spec.default_shots if shots is None else shots
    subjects = list(subjects) if subjects is not None else None
    docs = sources.load_split(spec.name, split, source=source, data_dir=data_dir, subjects=subjects)
    if spec.name == "mmlu" and subjects is None:
        subjects = sorted({d["subject"] for d in docs})
    fewshot: list[Record] = []
    if shots > 0:
        fewshot = sources.load_split(
            spec.name, spec.fewshot_split, source=source, data_dir=data_dir, subjects=subjects
        )
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

    ``limit`` keeps the first ``limit`` docs *per group* (per MMLU subject, else overall), like the
    harness' ``--limit``, which applies per subtask; their prompts equal those of a full run.
    ``doc_id`` is the index within the group, i.e. the harness' ``doc_id`` in its (sub)task.
    Raises :class:`UserError` if a few-shot pool holds fewer than ``shots``.
    """
    shots = spec.default_shots if shots is None else shots
    if shots < 0:
        raise UserError(f"shots must be >= 0, got {shots}")
    if limit is not None and limit < 0:
        raise UserError(f"limit must be >= 0, got {limit}")
    exclude = spec.excludes_eval_doc(eval_split or spec.eval_split)
    key = spec.fewshot_group_key
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
    name: str,
    *,
    shots: int | None = None,
    split: str | None = None,
    limit: int | None = None,
    seed: int | None = DEFAULT_FEWSHOT_SEED,
    source: str | os.PathLike = "local",
    data_dir: str | os.PathLike | None = None,
    subjects: Iterable[str] | None = None,
) -> tuple[TaskSpec, list[Request]]:
    """Task name → (spec, requests) in one call: what ``emergence eval`` needs before scoring."""
    spec = get_task(name)
    docs, fewshot = load_task_docs(
        spec, split, shots=shots, source=source, data_dir=data_dir, subjects=subjects
    )
    split = split or spec.eval_split
    return spec, build_requests(spec, docs, fewshot, shots=shots, seed=seed, eval_split=split, limit=limit)


def _samplers(
    spec: TaskSpec, docs: Sequence[Record], fewshot_docs: Sequence[Record], shots: int, seed: int | None
) -> dict[Any, templates.FewShotSampler]:
    """One sampler per few-shot group (MMLU: per subject, like the harness' per-subject tasks)."""
    key = spec.fewshot_group_key
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
