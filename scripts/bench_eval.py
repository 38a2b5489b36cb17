"""Peer benchmark of the evaluator: ``emergence eval`` vs lm-evaluation-harness' HF backend, per task.

Run from the repository root with the project venv (``make bench-eval``)::

    .venv/bin/python scripts/bench_eval.py                      # the four task configs, full size
    .venv/bin/python scripts/bench_eval.py --limit 20           # quick: first 20 docs (per subject)
    .venv/bin/python scripts/bench_eval.py --tasks cola --limit 50
    .venv/bin/python scripts/bench_eval.py --against-reference  # full csqa/cola vs results/eval_reference

For each task config it runs, one after the other and each in its own process, our CLI
(``.venv/bin/emergence eval smollm2-135m --task T --shots K --json --out FILE``) and the harness
(``.venv-bench/bin/python scripts/harness_peer.py``: ``HFLM`` fp32 on CPU, on ``build/smollm2-hf``,
the same weights exported by ``scripts/torch_peer.py export``) on the same local data. Then it prints
examples/s for both and their ratio (ours/harness; each side's own ``seconds``: ours = scoring
incl. JIT compilation, harness = ``simple_evaluate``; model loading excluded on both, and each
process' wall time is printed too), both sides' metrics, and per-example agreement: % identical predictions and, for multiple
choice, max |Δ loglikelihood|; for gsm8k, % identical generations and extractions.

``--against-reference`` compares our full commonsense_qa and cola runs with the committed harness
run in ``results/eval_reference/`` (no harness needed). ``--export-reference`` writes those files
from harness_peer outputs (``build/harness/<task>/``). Everything lands in ``--out-dir`` (default
``build/bench_eval``), including ``bench_eval.json`` with every number printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from harness_peer import BENCH_MMLU_SUBJECTS, LL_DIGITS  # noqa: E402

REFERENCE_DIR = REPO / "results" / "eval_reference"
REFERENCE_TASKS = ("commonsense_qa", "cola")
# harness metric key -> our metric name
METRIC_NAMES = {"exact_match,strict-match": "em_strict", "exact_match,flexible-extract": "em_flexible"}


@dataclass(frozen=True)
class BenchTask:
    """One row of the benchmark: a task, its shots, its size (None = full split), MMLU subjects."""

    task: str
    shots: int
    limit: int | None = None
    subjects: tuple[str, ...] = ()


BENCH_TASKS = (
    BenchTask("mmlu", 5, subjects=BENCH_MMLU_SUBJECTS),
    BenchTask("commonsense_qa", 0),
    BenchTask("cola", 0),
    BenchTask("gsm8k", 5, limit=50),
)


def effective_limit(cfg: BenchTask, limit: int | None) -> int | None:
    """The smaller of the task's own size and ``--limit``."""
    if cfg.limit is None or limit is None:
        return limit if cfg.limit is None else cfg.limit
    return min(cfg.limit, limit)


# ----------------------------------------------------------------------------- running the two sides


def _run(cmd: list[str], what: str) -> dict:
    """Run one side in its own process; its summary is the last stdout line (JSON)."""
    print(f"$ {' '.join(cmd)}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"error: {what} failed (exit {proc.returncode}):\n{tail}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("{")]
    if not lines:
        raise SystemExit(f"error: {what} printed no JSON summary")
    return json.loads(lines[-1]) | {"process_wall_s": round(wall, 3)}


def _reusable(summary_path: Path, limit: int | None) -> dict | None:
    """A previous run's summary, if it exists and ran with the same limit."""
    if not summary_path.is_file():
        return None
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    return summary if summary.get("limit", "absent") == limit else None


def run_ours(cfg: BenchTask, limit: int | None, out: Path, args: argparse.Namespace) -> tuple[dict, list]:
    records = out / "ours" / f"{cfg.task}.jsonl"
    records.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(args.emergence), "eval", args.model, "--task", cfg.task, "--shots", str(cfg.shots)]
    cmd += ["--json", "--out", str(records)]
    cmd += ["--limit", str(limit)] if limit is not None else []
    cmd += ["--subjects", ",".join(cfg.subjects)] if cfg.subjects else []
    cmd += ["--batch-size", str(args.batch_size)] if args.batch_size else []
    cmd += ["--data-dir", args.data_dir] if args.data_dir else []
    summary_path = records.with_suffix(".summary.json")
    summary = _reusable(summary_path, limit) if args.reuse and records.is_file() else None
    if summary is None:
        summary = _run(cmd, f"emergence eval --task {cfg.task}") | {"limit": limit}
        _atomic_write(summary_path, json.dumps(summary, indent=1) + "\n")
    return summary, read_jsonl(records)


def run_harness(cfg: BenchTask, limit: int | None, out: Path, args: argparse.Namespace) -> tuple[dict, list]:
    folder = out / "harness" / cfg.task
    cmd = [str(args.bench_python), str(REPO / "scripts" / "harness_peer.py"), "--task", cfg.task]
    cmd += ["--shots", str(cfg.shots), "--model", args.hf_model, "--out-dir", str(folder), "--json"]
    cmd += ["--batch-size", str(args.harness_batch_size)]
    cmd += ["--limit", str(limit)] if limit is not None else []
    cmd += ["--subjects", ",".join(cfg.subjects)] if cfg.subjects else []
    cmd += ["--data-dir", args.data_dir] if args.data_dir else []
    summary = _reusable(folder / "summary.json", limit) if args.reuse else None
    if summary is None:
        summary = _run(cmd, f"harness_peer --task {cfg.task}")
        _atomic_write(folder / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary, read_jsonl(folder / "examples.jsonl")


# ----------------------------------------------------------------------------- comparing


def _key(record: dict) -> tuple:
    """(MMLU subject or None, doc id): our records carry ``group``, the harness' ``subject``."""
    return (record.get("group", record.get("subject")), record["doc_id"])


def agreement(ours: list[dict], theirs: list[dict]) -> dict:
    """Per-example agreement over the documents both sides scored."""
    by_key = {_key(r): r for r in theirs}
    pairs = [(o, by_key[_key(o)]) for o in ours if _key(o) in by_key]
    out: dict = {"n_ours": len(ours), "n_harness": len(theirs), "n_common": len(pairs)}
    if not pairs:
        return out
    if "loglikelihoods" in pairs[0][1]:
        same = sum(o["prediction"] == t["prediction"] for o, t in pairs)
        deltas = [
            abs(a - b)
            for o, t in pairs
            for a, b in zip(o["loglikelihoods"], t["loglikelihoods"], strict=True)
        ]
        out.update(
            identical_predictions_pct=100.0 * same / len(pairs),
            differing_doc_ids=[list(_key(o)) for o, t in pairs if o["prediction"] != t["prediction"]][:20],
            max_abs_dll=max(deltas),
            gold_mismatches=sum(o["gold"] != t["gold"] for o, t in pairs),
        )
    else:  # gsm8k: the completion text, then each filter's extraction
        n = len(pairs)
        out.update(
            identical_generations_pct=100.0 * sum(o["generation"] == t["generation"] for o, t in pairs) / n,
            identical_predictions_pct=100.0
            * sum(o["strict"] == t["extracted"]["strict-match"] for o, t in pairs)
            / n,
            identical_flexible_pct=100.0
            * sum(o["flexible"] == t["extracted"]["flexible-extract"] for o, t in pairs)
            / n,
        )
    return out


def harness_metrics(summary: dict) -> dict:
    """The harness' metrics under our names (cola's acc from its own per-example predictions)."""
    metrics = {METRIC_NAMES.get(k, k): v for k, v in summary["metrics"].items() if k != "subjects"}
    return metrics | summary.get("derived_metrics", {})


def compare(name: str, ours: dict, ours_recs: list, theirs: dict, theirs_recs: list) -> dict:
    row = {
        "task": name,
        "shots": ours.get("shots"),
        "n": ours.get("n"),
        "ours": {
            "examples_per_s": ours.get("examples_per_s"),
            "seconds": ours.get("seconds"),
            "process_wall_s": ours.get("process_wall_s"),
            "metrics": ours["metrics"],
        },
        "harness": {
            "examples_per_s": theirs.get("examples_per_s"),
            "seconds": theirs.get("seconds"),
            "process_wall_s": theirs.get("process_wall_s"),
            "metrics": harness_metrics(theirs),
        },
        "agreement": agreement(ours_recs, theirs_recs),
    }
    if ours.get("examples_per_s") and theirs.get("examples_per_s"):
        row["speed_ratio"] = ours["examples_per_s"] / theirs["examples_per_s"]
    return row


def print_row(row: dict) -> None:
    ours, theirs, agree = row["ours"], row["harness"], row["agreement"]
    print(f"\n== {row['task']} {row['shots']}-shot, n={row['n']}")
    if theirs["examples_per_s"] is not None:
        ratio = row.get("speed_ratio")
        print(
            f"  examples/s: ours {ours['examples_per_s']:.3f} ({ours['seconds']:.1f} s), "
            f"harness {theirs['examples_per_s']:.3f} ({theirs['seconds']:.1f} s), "
            f"ratio ours/harness {ratio:.2f}x"
            if ratio
            else f"  examples/s: ours {ours['examples_per_s']}"
        )
    else:
        print(f"  examples/s: ours {ours['examples_per_s']:.3f} ({ours['seconds']:.1f} s)")
    walls = [
        f"{side} {row[side]['process_wall_s']:.1f} s"
        for side in ("ours", "harness")
        if row[side].get("process_wall_s")
    ]
    if walls:
        print(f"  process wall time (model load, compile, data included): {', '.join(walls)}")
    for metric in sorted(set(ours["metrics"]) | set(theirs["metrics"])):
        a, b = ours["metrics"].get(metric), theirs["metrics"].get(metric)
        delta = f"  Δ {100 * (a - b):+.2f} pts" if isinstance(a, float) and isinstance(b, float) else ""
        print(f"  {metric:<12} ours {_fmt(a)}  harness {_fmt(b)}{delta}")
    print(
        f"  agreement on {agree['n_common']} common docs (ours {agree['n_ours']}, harness "
        f"{agree['n_harness']}): {agree.get('identical_predictions_pct', float('nan')):.2f}% identical predictions"
        + (" (strict-match extraction)" if "identical_generations_pct" in agree else "")
    )
    if "max_abs_dll" in agree:
        print(
            f"  max |Δ loglikelihood| {agree['max_abs_dll']:.2e}; gold mismatches {agree['gold_mismatches']}"
        )
        if agree["differing_doc_ids"]:
            print(f"  differing (group, doc_id), first 20: {agree['differing_doc_ids']}")
    if "identical_generations_pct" in agree:
        print(
            f"  identical generations {agree['identical_generations_pct']:.1f}%, "
            f"flexible extractions {agree['identical_flexible_pct']:.1f}%"
        )


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


# ----------------------------------------------------------------------------- reference files


def reference_paths(task: str, folder: Path = REFERENCE_DIR) -> tuple[Path, Path]:
    return folder / f"{task}.jsonl", folder / f"{task}.summary.json"


def export_reference(src: Path, task: str, folder: Path = REFERENCE_DIR) -> None:
    """Compact copy of a full harness_peer run: doc_id, loglikelihoods (1e-5), prediction, gold."""
    keep = ("doc_id", "loglikelihoods", "prediction", "gold")
    records = read_jsonl(src / task / "examples.jsonl")
    summary = json.loads((src / task / "summary.json").read_text(encoding="utf-8"))
    if summary.get("limit") is not None:
        raise SystemExit(f"error: {src / task}: a --limit {summary['limit']} run is not a reference run")
    rows = "".join(
        json.dumps(
            {k: ([round(x, LL_DIGITS) for x in r[k]] if k == "loglikelihoods" else r[k]) for k in keep}
        )
        + "\n"
        for r in records
    )
    jsonl, summ = reference_paths(task, folder)
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_write(jsonl, rows)
    summary = {k: v for k, v in summary.items() if k not in ("model", "limit")} | {
        "model": "build/smollm2-hf"
    }
    _atomic_write(summ, json.dumps(summary, indent=1) + "\n")
    print(f"wrote {jsonl} ({len(records)} rows) and {summ}")


def against_reference(args: argparse.Namespace, out: Path) -> list[dict]:
    rows = []
    for cfg in (c for c in BENCH_TASKS if c.task in REFERENCE_TASKS and c.task in args.tasks):
        jsonl, summ = reference_paths(cfg.task)
        if not jsonl.is_file():
            raise SystemExit(f"error: {jsonl}: reference file missing")
        ours, ours_recs = run_ours(cfg, None, out, args)
        theirs = json.loads(summ.read_text(encoding="utf-8"))
        row = compare(cfg.task, ours, ours_recs, theirs, read_jsonl(jsonl))
        row["harness"]["source"] = str(jsonl.relative_to(REPO))
        # the reference was timed in another session under other load: agreement only, no speed ratio
        row.pop("speed_ratio", None)
        row["harness"]["examples_per_s"] = None
        print_row(row)
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- main


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def harness_available(args: argparse.Namespace) -> bool:
    """The bench environment imports lm_eval, and the HF export of the model exists."""
    if not (Path(args.bench_python).is_file() and Path(args.hf_model, "config.json").is_file()):
        return False
    probe = subprocess.run([args.bench_python, "-c", "import lm_eval"], capture_output=True)
    return probe.returncode == 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [c.task for c in BENCH_TASKS]
    parser.add_argument("--tasks", default=",".join(names), help=f"comma-separated subset of {names}")
    parser.add_argument("--limit", type=int, default=None, help="first N docs (per subject for MMLU)")
    parser.add_argument("--model", default="smollm2-135m", help="our model name or path")
    parser.add_argument(
        "--hf-model", default=str(REPO / "build" / "smollm2-hf"), help="HF dir for the harness"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="ours (default: the CLI's)")
    parser.add_argument("--harness-batch-size", type=int, default=8)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out-dir", default=str(REPO / "build" / "bench_eval"))
    parser.add_argument("--emergence", default=str(REPO / ".venv" / "bin" / "emergence"))
    parser.add_argument("--bench-python", default=str(REPO / ".venv-bench" / "bin" / "python"))
    parser.add_argument("--reuse", action="store_true", help="reuse outputs already in --out-dir")
    parser.add_argument(
        "--against-reference", action="store_true", help="full csqa/cola vs results/eval_reference"
    )
    parser.add_argument(
        "--export-reference", metavar="DIR", default=None, help="harness_peer outputs -> reference"
    )
    args = parser.parse_args(argv)
    args.tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in args.tasks if t not in names]
    if unknown:
        parser.exit(2, f"error: unknown task {unknown[0]!r}; known: {', '.join(names)}\n")
    out = Path(args.out_dir)
    if args.export_reference:
        for task in (t for t in args.tasks if t in REFERENCE_TASKS):
            export_reference(Path(args.export_reference), task)
        return
    if args.against_reference:
        rows = against_reference(args, out)
    else:
        peer = harness_available(args)
        if not peer:
            print(f"note: no lm-eval harness in {args.bench_python} or no {args.hf_model}: ours only")
        rows = []
        for cfg in (c for c in BENCH_TASKS if c.task in args.tasks):
            limit = effective_limit(cfg, args.limit)
            ours, ours_recs = run_ours(cfg, limit, out, args)
            if peer:
                theirs, theirs_recs = run_harness(cfg, limit, out, args)
            else:
                theirs, theirs_recs = {"metrics": {}, "examples_per_s": None}, []
            row = compare(cfg.task, ours, ours_recs, theirs, theirs_recs)
            print_row(row)
            rows.append(row)
    name = "bench_eval_reference.json" if args.against_reference else "bench_eval.json"
    _atomic_write(out / name, json.dumps({"limit": args.limit, "rows": rows}, indent=1) + "\n")
    print(f"\nwrote {out / name}")


if __name__ == "__main__":
    main()
