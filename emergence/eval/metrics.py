"""Task metrics: accuracy (micro, and macro over groups), Matthews correlation, exact match.

Definitions follow what lm-evaluation-harness reports, so numbers compare with published tables:
``acc`` is the mean over examples (for MMLU the harness' size-weighted group aggregate);
``acc_macro`` averages per-subject accuracies; ``mcc`` is sklearn's ``matthews_corrcoef`` (the
harness' CoLA aggregation).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from emergence.eval import gsm8k_extract

if TYPE_CHECKING:
    from emergence.data.tasks import Request


def accuracy(predictions: Sequence[int | str], golds: Sequence[int | str]) -> float:
    """Fraction of exact agreements; NaN for no examples (unknown, not zero)."""
    _same_length(predictions, golds)
    if len(golds) == 0:
        return math.nan
    return sum(p == g for p, g in zip(predictions, golds, strict=True)) / len(golds)


def macro_accuracy(
    predictions: Sequence[int | str], golds: Sequence[int | str], groups: Sequence[Hashable]
) -> float:
    """Mean over groups (e.g. MMLU subjects) of each group's accuracy."""
    _same_length(predictions, golds)
    _same_length(predictions, groups)
    per_group: dict[Hashable, list[bool]] = {}
    for p, g, k in zip(predictions, golds, groups, strict=True):
        per_group.setdefault(k, []).append(p == g)
    if not per_group:
        return math.nan
    return float(np.mean([np.mean(v) for v in per_group.values()]))


def matthews_corrcoef(predictions: Sequence[Hashable], golds: Sequence[Hashable]) -> float:
    """Matthews correlation coefficient, multiclass form, exactly as sklearn computes it: with
    confusion matrix C (rows gold), t, p its row and column sums, c its trace and s its total,
    (c·s − t·p) / sqrt((s² − p·p)(s² − t·t)), and 0 when the denominator is 0."""
    _same_length(predictions, golds)
    if len(golds) == 0:
        return math.nan
    labels = sorted(set(golds) | set(predictions), key=repr)
    index = {label: i for i, label in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=np.float64)
    for g, p in zip(golds, predictions, strict=True):
        cm[index[g], index[p]] += 1
    t_sum = cm.sum(axis=1)
    p_sum = cm.sum(axis=0)
    n_correct = np.trace(cm)
    n_samples = p_sum.sum()
    cov_ytyp = n_correct * n_samples - np.dot(t_sum, p_sum)
    cov_ypyp = n_samples**2 - np.dot(p_sum, p_sum)
    cov_ytyt = n_samples**2 - np.dot(t_sum, t_sum)
    if cov_ypyp * cov_ytyt == 0:
        return 0.0
    return float(cov_ytyp / np.sqrt(cov_ytyt * cov_ypyp))


def exact_match_rate(matches: Sequence[bool]) -> float:
    """Mean of per-example exact-match booleans (e.g. from ``gsm8k_extract.score_completion``)."""
    if len(matches) == 0:
        return math.nan
    return sum(bool(m) for m in matches) / len(matches)


def _same_length(a: Sequence[object], b: Sequence[object]) -> None:
    if len(a) != len(b):
        raise ValueError(f"length mismatch: {len(a)} predictions vs {len(b)} labels")


def _gsm8k_answer(completion: str, reference: str) -> dict[str, Any]:
    """Both gsm8k filters' extractions and matches; ``correct`` is the strict match (the harness'
    headline gsm8k number)."""
    scores = gsm8k_extract.score_completion(completion, reference)
    return {**scores, "strict": gsm8k_extract.strict_match(completion),
            "flexible": gsm8k_extract.flexible_extract(completion), "correct": scores["em_strict"]}


#: How a generation task reads the answer from a completion (``TaskSpec.answer_filter``).
ANSWER_FILTERS: dict[str, Callable[[str, str], dict[str, Any]]] = {"gsm8k": _gsm8k_answer}


def score_examples(
    requests: Sequence[Request], outputs: Sequence[int | str], answer_filter: str | None = None
) -> list[dict[str, Any]]:
    """Per-example records from the engine's outputs, one per request, in order.

    ``outputs``: for multiple choice the predicted choice index (argmax of the continuations'
    summed log-likelihoods, as the harness' ``acc``); for generation the completion text, already
    cut at the first stop sequence, which ``answer_filter`` turns into the answer's fields.
    """
    if len(outputs) != len(requests):
        raise ValueError(f"length mismatch: {len(outputs)} outputs for {len(requests)} requests")
    records = []
    for req, out in zip(requests, outputs, strict=True):
        rec: dict[str, Any] = {"doc_id": req.doc_id, "group": req.group, "gold": req.gold, "prediction": out}
        if req.is_generation and answer_filter not in ANSWER_FILTERS:
            raise ValueError(f"unknown answer filter {answer_filter!r}; known: {', '.join(ANSWER_FILTERS)}")
        rec.update(ANSWER_FILTERS[answer_filter](str(out), str(req.gold)) if req.is_generation
                   else {"correct": out == req.gold})
        records.append(rec)
    return records


def aggregate(metric_names: Sequence[str], records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The task's metrics (``TaskSpec.metrics``) from :func:`score_examples` records."""
    preds = [r["prediction"] for r in records]
    golds = [r["gold"] for r in records]
    fns = {
        "acc": lambda: accuracy(preds, golds),
        "acc_macro": lambda: macro_accuracy(preds, golds, [r["group"] for r in records]),
        "mcc": lambda: matthews_corrcoef(preds, golds),
        "em_strict": lambda: exact_match_rate([r["em_strict"] for r in records]),
        "em_flexible": lambda: exact_match_rate([r["em_flexible"] for r in records]),
    }
    unknown = [m for m in metric_names if m not in fns]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}; known: {', '.join(fns)}")
    return {m: fns[m]() for m in metric_names}
