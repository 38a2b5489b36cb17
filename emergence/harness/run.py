"""Harness tasks end to end on a loaded model: lm-eval's ``simple_evaluate`` through our backend,
its logged samples turned into our per-example records and its metrics into our metric columns.

What ``emergence eval --harness-task`` and a sweep's ``harness:TASK`` cells call, so a harness
task's numbers are the harness' own (its prompts, few-shot sampling, filters and metrics) and its
records read like the built-in tasks' (``doc_id``, ``gold``, ``prediction``, ``correct``, and the
choices' ``loglikelihoods``/``is_greedy`` or the ``generation``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from typing import Any

from emergence.data.tasks import DEFAULT_FEWSHOT_SEED
from emergence.eval.evaluate import EvalResult
from emergence.harness.tasks import check_names, metric_column, task_manager
from emergence.models.registry import LoadedModel

_NOT_METRICS = ("alias", "name", "sample_len")


def evaluate_tasks(
    loaded: LoadedModel,
    names: Sequence[str],
    *,
    shots: int | None = None,
    limit: int | None = None,
    include: str | None = None,
    seed: int = DEFAULT_FEWSHOT_SEED,
    batch_size: int = 64,
    batch_tokens: int | None = None,
    generation_rows: int | None = None,
) -> tuple[list[EvalResult], dict[str, Any]]:
    """One result per task (in ``names`` order) and the harness' own results (samples left out).

    ``shots`` None is each task's ``num_fewshot``; ``limit`` the first N documents. All tasks run in
    one harness call, so their requests are batched together and each result's ``seconds`` is the
    call's. Standard errors are not bootstrapped (``bootstrap_iters=0``): a sweep needs the metric,
    and CoLA's MCC bootstrap costs minutes."""
    from lm_eval import simple_evaluate
    from lm_eval.utils import handle_non_serializable

    from emergence.harness.backend import EmergenceLM

    check_names(names, include)
    lm = EmergenceLM(loaded=loaded, batch_size=batch_size, batch_tokens=batch_tokens, generation_rows=generation_rows)
    started = time.perf_counter()
    out = simple_evaluate(model=lm, tasks=list(names), num_fewshot=shots, limit=limit, bootstrap_iters=0,
                          task_manager=task_manager(include), log_samples=True, fewshot_random_seed=seed,
                          verbosity="ERROR")
    seconds = time.perf_counter() - started
    samples = out.pop("samples")
    out = json.loads(json.dumps(out, default=handle_non_serializable))  # as the harness writes its file
    results = []
    for name in names:
        order = [m["metric"] for m in out["configs"][name].get("metric_list") or []]
        metrics = task_metrics(out["results"][name], order)
        records = sample_records(samples[name], next(iter(metrics), None))
        results.append(EvalResult(name, int(out["n-shot"][name]), len(records), metrics, seconds, records))
    return results, out


def task_metrics(results: dict[str, Any], order: Sequence[str] = ()) -> dict[str, float]:
    """``{"acc,none": .5, "acc_stderr,none": …}`` → ``{"acc": .5}``, the task's ``metric_list``
    order first (its first metric is the headline, e.g. CoLA's ``mcc``)."""
    keys = [k for k in results if k not in _NOT_METRICS and "," in k and "_stderr" not in k]
    rank = {metric: i for i, metric in enumerate(order)}
    keys.sort(key=lambda k: rank.get(k.split(",", 1)[0], len(rank)))  # stable: filters keep their order
    return {metric_column(*k.split(",", 1)): float(results[k]) for k in keys
            if isinstance(results[k], int | float) and not isinstance(results[k], bool)}


def sample_records(samples: Sequence[dict[str, Any]], headline: str | None) -> list[dict[str, Any]]:
    """Per document (the harness logs one sample per document and filter): what it was asked, what
    came back, and each metric's per-document value; ``correct`` is the headline metric's value
    where it is one per document (acc, exact match), else ``acc``, else prediction == gold."""
    records: dict[int, dict[str, Any]] = {}
    for sample in samples:
        record = records.setdefault(int(sample["doc_id"]), {"doc_id": int(sample["doc_id"]), "group": None,
                                                            "gold": sample["target"]})
        responses = sample["filtered_resps"]
        if responses and isinstance(responses[0], tuple | list) and len(responses[0]) == 2:  # multiple choice
            lls = [float(r[0]) for r in responses]
            record.update(prediction=int(max(range(len(lls)), key=lls.__getitem__)),
                          loglikelihoods=[round(x, 6) for x in lls], is_greedy=[bool(r[1]) for r in responses])
        else:
            record.setdefault("generation", sample["resps"][0][0] if sample["resps"] else "")
            record.setdefault("prediction", responses[0] if responses else "")
        for metric in sample["metrics"]:
            value = sample.get(metric)
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                record[metric_column(metric, sample["filter"])] = float(value)
    for record in records.values():
        verdict = next((record[k] for k in (headline, "acc") if k in record), None)
        if verdict is None:
            gold = record["gold"]
            verdict = str(record["prediction"]) == str(gold)
        record["correct"] = bool(verdict)
    return [records[k] for k in sorted(records)]
