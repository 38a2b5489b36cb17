"""Run lm-evaluation-harness' HF backend on one task, offline, on our local data: the peer for ``emergence eval``.

Runs in the bench environment (CPU torch + lm-eval 0.4.x + transformers), from the repository root::

    .venv-bench/bin/python scripts/harness_peer.py --task commonsense_qa --shots 0 \\
        --model build/smollm2-hf --out-dir build/harness/commonsense_qa

The model is ``lm_eval.models.huggingface.HFLM`` (fp32, CPU) on an HF directory (``build/smollm2-hf``
is SmolLM2-135M exported by ``scripts/torch_peer.py export``). The task is the harness' own YAML
loaded through its ``TaskManager``, with only the data source swapped for hub-layout jsonl written from
``emergence.data.sources`` (see ``scripts/make_golden_prompts.py``, whose helpers this imports). The run
is ``lm_eval.simple_evaluate`` with its defaults (few-shot seed 1234) except ``bootstrap_iters=0``:
the bootstrap only computes stderrs, and would otherwise dominate the timing of ``mcc``.

Writes into ``--out-dir``:
- ``examples.jsonl``: one record per document, in doc order: ``doc_id``, ``subject`` (MMLU),
  ``loglikelihoods`` (one per choice) or ``generation`` + ``extracted`` (per gsm8k filter),
  ``prediction``, ``gold``, ``correct`` (per filter for gsm8k);
- ``summary.json``: task, shots, n, metrics (as the harness aggregates them; MMLU also macro over
  subjects), derived_metrics (cola's acc, which its YAML does not list, from the harness' own
  per-example predictions), seconds (wall time of ``simple_evaluate``: request building, model, metrics),
  examples_per_s, load_seconds (model construction), and the run's settings.
``--json`` prints the summary as one line on stdout (logs go to stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from make_golden_prompts import build_harness_task, write_harness_files  # noqa: E402

from emergence.data import sources  # noqa: E402

# Five MMLU subjects for the benchmark, one or two per harness category and all ~100 questions, so a
# 5-shot run stays a few minutes on CPU: STEM (abstract_algebra, college_physics), other
# (business_ethics), humanities (jurisprudence), social sciences (us_foreign_policy).
BENCH_MMLU_SUBJECTS = (
    "abstract_algebra",
    "college_physics",
    "business_ethics",
    "jurisprudence",
    "us_foreign_policy",
)
DEFAULT_SHOTS = {"mmlu": 5, "commonsense_qa": 0, "cola": 0, "gsm8k": 5}
FEWSHOT_SEED = 1234  # simple_evaluate's default fewshot_random_seed
LL_DIGITS = 5  # loglikelihoods rounded to 1e-5 in the records


def harness_names(task: str, subjects: list[str] | None) -> list[tuple[str, str | None]]:
    """(harness task name, MMLU subject or None) for one of our task names."""
    if task == "mmlu":
        return [(f"mmlu_{s}", s) for s in subjects or BENCH_MMLU_SUBJECTS]
    return [(task, None)]


def build_tasks(task: str, subjects: list[str] | None, data_dir: Path, folder: Path) -> dict:
    """The harness' Task objects for our task (several for MMLU), keyed by harness name."""
    from lm_eval.tasks import TaskManager

    tm = TaskManager()
    built = {}
    for name, subject in harness_names(task, subjects):
        files = write_harness_files(task, name, subject, data_dir, folder)
        built[name] = (build_harness_task(tm, name, files), subject)
    return built


def _choice_record(sample: dict, subject: str | None) -> dict:
    lls = [round(float(r[0]), LL_DIGITS) for r in sample["filtered_resps"]]
    pred = max(range(len(lls)), key=lambda i: (sample["filtered_resps"][i][0], -i))  # argmax, first on ties
    rec = {"doc_id": sample["doc_id"]}
    if subject:
        rec["subject"] = subject
    gold = sample["target"]
    if isinstance(gold, str):  # e.g. commonsense_qa's answerKey: the harness scores its index in the choices
        gold = sample["doc_choices"].index(gold)
    # the harness' own per-sample values must agree with the argmax (acc) or (gold, pred) pair (mcc)
    if "acc" in sample and bool(sample["acc"]) != (pred == gold):
        raise RuntimeError(
            f"doc {sample['doc_id']}: harness acc {sample['acc']} disagrees with argmax {pred}"
        )
    if "mcc" in sample and tuple(sample["mcc"]) != (gold, pred):
        raise RuntimeError(f"doc {sample['doc_id']}: harness mcc pair {sample['mcc']} != {(gold, pred)}")
    rec.update(loglikelihoods=lls, prediction=pred, gold=gold, correct=pred == gold)
    return rec


def _generation_records(samples: list[dict]) -> list[dict]:
    """gsm8k: the harness logs one sample per (doc, filter); merge them into one record per doc."""
    by_doc: dict[int, dict] = {}
    for s in samples:
        rec = by_doc.setdefault(
            s["doc_id"],
            {"doc_id": s["doc_id"], "generation": s["resps"][0][0], "extracted": {}, "correct": {}},
        )
        rec["extracted"][s["filter"]] = s["filtered_resps"][0]
        rec["correct"][s["filter"]] = bool(s["exact_match"])
        rec["gold"] = s["target"]
    for rec in by_doc.values():
        rec["prediction"] = rec["extracted"].get("strict-match")
    return [by_doc[i] for i in sorted(by_doc)]


def collect(task: str, built: dict, results: dict) -> tuple[list[dict], dict]:
    """Per-example records and metrics from ``simple_evaluate``'s output."""
    records: list[dict] = []
    metrics: dict = {}
    per_subject = {}
    for name, (_task, subject) in built.items():
        samples = sorted(results["samples"][name], key=lambda s: s["doc_id"])
        for s in samples:
            s["doc_choices"] = _task.doc_to_choice(s["doc"]) if task != "gsm8k" else None
        if task == "gsm8k":
            records += _generation_records(samples)
        else:
            recs = [_choice_record(s, subject) for s in samples]
            records += recs
            per_subject[subject or name] = recs
        for key, value in results["results"][name].items():
            if "stderr" in key or isinstance(value, (str, bool)) or key == "sample_len":
                continue
            metric, _, filt = key.partition(",")
            label = metric if filt in ("none", "") else f"{metric},{filt}"
            if task == "mmlu":
                metrics.setdefault("subjects", {}).setdefault(subject, {})[label] = value
            else:
                metrics[label] = value
    if task == "mmlu":
        # the harness' group aggregate is the question-weighted mean (micro); macro is over subjects
        n = len(records)
        metrics["acc"] = sum(r["correct"] for r in records) / n
        metrics["acc_macro"] = sum(
            sum(r["correct"] for r in recs) / len(recs) for recs in per_subject.values()
        ) / len(per_subject)
    return records, metrics


def run(args: argparse.Namespace) -> dict:
    import lm_eval
    import torch
    from lm_eval.models.huggingface import HFLM

    data_dir = sources.resolve_data_dir(args.data_dir)
    subjects = args.subjects.split(",") if args.subjects else None
    shots = DEFAULT_SHOTS[args.task] if args.shots is None else args.shots
    t0 = time.perf_counter()
    lm = HFLM(pretrained=args.model, dtype="float32", device="cpu", batch_size=args.batch_size)
    load_seconds = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        built = build_tasks(args.task, subjects, data_dir, Path(tmp))
        t0 = time.perf_counter()
        results = lm_eval.simple_evaluate(
            model=lm,
            tasks=[t for t, _ in built.values()],
            num_fewshot=shots,
            limit=args.limit,
            bootstrap_iters=0,
            log_samples=True,
            fewshot_random_seed=FEWSHOT_SEED,
        )
        seconds = time.perf_counter() - t0
    records, metrics = collect(args.task, built, results)
    n = len(records)
    # cola's YAML lists only mcc; its accuracy comes from the harness' own per-example predictions
    derived = {"acc": sum(r["correct"] for r in records) / n} if args.task == "cola" else {}
    summary = {
        "task": args.task,
        "shots": shots,
        "n": n,
        "metrics": metrics,
        "derived_metrics": derived,
        "seconds": round(seconds, 3),
        "examples_per_s": round(n / seconds, 4),
        "load_seconds": round(load_seconds, 3),
        "subjects": [s for _, s in built.values()] if args.task == "mmlu" else None,
        "limit": args.limit,
        "model": args.model,
        "backend": "lm_eval.models.huggingface.HFLM float32 cpu",
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "lm_eval_version": lm_eval.__version__ if hasattr(lm_eval, "__version__") else None,
    }
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "examples.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    _atomic_write(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, choices=sorted(DEFAULT_SHOTS))
    parser.add_argument("--shots", type=int, default=None, help="default: mmlu 5, gsm8k 5, others 0")
    parser.add_argument("--limit", type=int, default=None, help="first N documents (per subject for MMLU)")
    parser.add_argument("--subjects", default=None, help="MMLU subjects, comma-separated (default: five)")
    parser.add_argument("--model", default=str(REPO / "build" / "smollm2-hf"), help="HF model directory")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--data-dir", default=None, help="real benchmarks folder (default: $EMERGENCE_DATA)"
    )
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON line on stdout")
    args = parser.parse_args(argv)
    if not Path(args.model, "config.json").is_file():
        parser.exit(2, f"error: {args.model}: not an HF model directory (no config.json)\n")
    summary = run(args)
    if args.json:
        print(json.dumps(summary), flush=True)
    else:
        print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
