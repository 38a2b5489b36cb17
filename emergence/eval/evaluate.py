"""Evaluate a loaded model on a task: requests → scores or generations → per-example records → metrics.

This is the one evaluation path: the CLI (`emergence eval`), the sweep runner and the finetuning
checks all call :func:`evaluate`, so a number means the same thing wherever it is printed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emergence import fileio
from emergence.data.tasks import DEFAULT_FEWSHOT_SEED, Request, TaskSpec, make_requests
from emergence.eval.loglikelihood import score_requests
from emergence.eval.metrics import aggregate, score_examples
from emergence.eval.sizing import generation_rows as default_generation_rows
from emergence.eval.tokenization import generation_context
from emergence.models.generate import Generation, greedy_generate, round_up
from emergence.models.registry import LoadedModel


@dataclass(frozen=True)
class EvalResult:
    task: str
    shots: int
    n: int
    metrics: dict[str, float]
    seconds: float
    records: list[dict[str, Any]] = field(repr=False)

    @property
    def examples_per_s(self) -> float:
        return self.n / self.seconds if self.seconds else 0.0

    @property
    def n_correct(self) -> int:
        return sum(bool(r["correct"]) for r in self.records)

    def summary(self) -> dict[str, Any]:
        return {"task": self.task, "shots": self.shots, "n": self.n, "metrics": self.metrics,
                "seconds": round(self.seconds, 3), "examples_per_s": round(self.examples_per_s, 3)}


def run_requests(
    loaded: LoadedModel,
    spec: TaskSpec,
    requests: Sequence[Request],
    *,
    batch_size: int = 64,
    batch_tokens: int | None = None,
    generation_rows: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Per-example records for already-built requests (multiple choice or generation).

    ``batch_tokens`` (scoring) and ``generation_rows`` default to :mod:`emergence.eval.sizing`'s
    choice for the backend; the default rows are at most ``batch_size``."""
    max_length = loaded.config.max_position_embeddings
    if spec.is_generation:
        # A model with a short window (toy ladders) keeps at least half of it for the prompt.
        max_new = min(requests[0].max_gen_toks, max_length // 2) if requests else 0
        stop = tuple(requests[0].stop) if requests else ()
        generations = generate(loaded, [r.context for r in requests], stop, max_new, batch_size=batch_size,
                               generation_rows=generation_rows, on_progress=on_progress)
        records = score_examples(requests, [g.text for g in generations], spec.answer_filter)
        for record, generation in zip(records, generations, strict=True):
            record["generation"] = generation.text
        return records
    scores = score_requests(loaded.model, loaded.tokenizer, requests, batch_size=batch_size,
                            batch_tokens=batch_tokens, max_length=max_length)
    records = score_examples(requests, [s.prediction for s in scores])
    for record, score in zip(records, scores, strict=True):
        record["loglikelihoods"] = [round(x, 6) for x in score.loglikelihoods]
        record["is_greedy"] = list(score.is_greedy)
    if on_progress:
        on_progress(len(requests))
    return records


def generate(
    loaded: LoadedModel,
    contexts: Sequence[str],
    stop: Sequence[str],
    max_new: int,
    *,
    batch_size: int = 64,
    generation_rows: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> list[Generation]:
    """Greedy completions of text prompts, in order, each cut at the first of ``stop``: the prompts
    are tokenized and left-truncated by the harness' contract and run longest first, so similar
    lengths share a batch. ``generation_rows`` defaults to :mod:`emergence.eval.sizing`'s choice,
    at most ``batch_size``."""
    max_length = loaded.config.max_position_embeddings
    # BOS where the tokenizer adds one (Gemma), as the harness encodes
    prompts = [generation_context(loaded.tokenizer.encode(c), max_length, max_new) for c in contexts]
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # similar lengths batch together
    if generation_rows is None and prompts:
        width = round_up(max(map(len, prompts))) + round_up(max_new)
        generation_rows = min(batch_size, default_generation_rows(loaded.config, width))
    outs = greedy_generate(loaded.model, loaded.tokenizer, [prompts[i] for i in order], max_new_tokens=max_new,
                           stop=tuple(stop), batch_size=generation_rows or 1, on_chunk=on_progress)
    return [out for _, out in sorted(zip(order, outs, strict=True), key=lambda pair: pair[0])]


def evaluate(
    loaded: LoadedModel,
    task: str | TaskSpec,
    *,
    shots: int | None = None,
    limit: int | None = None,
    split: str | None = None,
    batch_size: int = 64,
    batch_tokens: int | None = None,
    generation_rows: int | None = None,
    data_dir: str | os.PathLike | None = None,
    source: str | os.PathLike = "local",
    subjects: Sequence[str] | None = None,
    seed: int = DEFAULT_FEWSHOT_SEED,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> EvalResult:
    """Few-shot (or finetuned-model) evaluation of ``loaded`` on ``task`` (a task or its name)."""
    spec, requests = make_requests(task, shots=shots, split=split, limit=limit, seed=seed, source=source,
                                   data_dir=data_dir, subjects=subjects)
    if on_start:
        on_start(len(requests))
    sizes = {"batch_size": batch_size, "batch_tokens": batch_tokens, "generation_rows": generation_rows}
    return _evaluate_requests(loaded, spec, requests, shots, sizes, on_progress)


def _evaluate_requests(
    loaded: LoadedModel,
    spec: TaskSpec,
    requests: Sequence[Request],
    shots: int | None,
    sizes: dict[str, int | None],
    on_progress: Callable[[int], None] | None = None,
) -> EvalResult:
    started = time.perf_counter()
    records = run_requests(loaded, spec, requests, **sizes, on_progress=on_progress)
    seconds = time.perf_counter() - started
    metrics = aggregate(spec.metrics, records) if records else {m: float("nan") for m in spec.metrics}
    used_shots = spec.default_shots if shots is None else shots
    return EvalResult(spec.name, used_shots, len(records), metrics, seconds, records)


def scorer(
    task: str | TaskSpec,
    *,
    shots: int | None = None,
    batch_size: int = 64,
    batch_tokens: int | None = None,
    generation_rows: int | None = None,
    **options: Any,
) -> Callable[[LoadedModel], dict[str, float]]:
    """``evaluate(model, task, **options)``'s metrics as a function of the model: what a finetuning
    run calls at each point of its learning curve (:func:`emergence.train.finetune.run_finetune`).
    The requests are built here, once: every point of the curve scores the same prompts."""
    spec, requests = make_requests(task, shots=shots, **options)
    sizes = {"batch_size": batch_size, "batch_tokens": batch_tokens, "generation_rows": generation_rows}

    def score(loaded: LoadedModel) -> dict[str, float]:
        return dict(_evaluate_requests(loaded, spec, requests, shots, sizes).metrics)

    return score


def write_records(path: str | os.PathLike, records: Sequence[dict[str, Any]]) -> Path:
    """Per-example JSONL, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (json.dumps({"id": record["doc_id"], **record}, ensure_ascii=False) + "\n" for record in records)
    return fileio.write_text(path, "".join(lines))
