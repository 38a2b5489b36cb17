"""`emergence eval`: few-shot or finetuned accuracy of one model on one task."""

from __future__ import annotations

import json
import sys

import typer

from emergence.commands.shared import BUILTIN_TASKS, DATA_DIR, MODEL, RUN_DTYPE, progress
from emergence.errors import UserError
from emergence.fileio import check_output_file, write_json


def eval_command(
    model: str = MODEL,
    task: str = typer.Option(None, "--task", "-t", help=BUILTIN_TASKS),
    harness_task: str = typer.Option(None, "--harness-task",
                                     help="lm-evaluation-harness tasks, comma-separated (the harness extra)"),
    harness_include: str = typer.Option(None, "--harness-include", help="a folder of harness task YAML"),
    shots: int = typer.Option(None, "--shots", "-k", help="few-shot examples (default: the harness default)"),
    limit: int = typer.Option(None, "--limit", help="first N examples (per subject for MMLU)"),
    split: str = typer.Option(None, "--split", help="evaluation split (default: the task's)"),
    adapter: str = typer.Option(None, "--adapter", help="a finetuning output directory (LoRA or full)"),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="max rows per batch"),
    batch_tokens: int = typer.Option(None, "--batch-tokens", min=1,
                                     help="padded tokens per scoring batch (default: by device, 2048 on CPU)"),
    generation_rows: int = typer.Option(None, "--generation-rows", min=1,
                                        help="prompts generated together (default: by device, 16 on CPU)"),
    data_dir: str = DATA_DIR,
    source: str = typer.Option("local", "--source", help="local | hub | a folder of hub-format files"),
    subjects: str = typer.Option(None, "--subjects", help="MMLU subjects, comma-separated"),
    seed: int = typer.Option(1234, "--seed", help="few-shot sampling seed"),
    out: str = typer.Option(None, "--out", help="per-example records (JSONL); harness tasks: also OUT.harness.json"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of a table"),
    dtype: str = RUN_DTYPE,
    param_dtype: str = typer.Option(None, "--param-dtype", help="stored dtype [float32 on CPU, else bfloat16]"),
) -> None:
    """Evaluate MODEL on a task, harness-identical prompts, or on lm-evaluation-harness tasks through
    our engine; prints metrics (and examples/s)."""
    from emergence.data.tasks import get_task
    from emergence.eval.evaluate import evaluate, write_records
    from emergence.models.registry import load_model
    from emergence.train.config import precision

    if (task is None) == (harness_task is None):
        raise UserError("give exactly one of --task or --harness-task")
    if harness_task is not None:
        from emergence.harness.tasks import check_names

        given = {"--split": split, "--data-dir": data_dir, "--subjects": subjects}
        given["--source"] = source if source != "local" else None
        for option, value in given.items():
            if value is not None:
                raise UserError(f"{option} is for built-in tasks; a harness task's YAML says where its data is")
        names = [n for n in harness_task.split(",") if n]
        check_names(names, harness_include)  # unknown task (or no lm-eval): fail before loading anything
    elif harness_include is not None:
        raise UserError("--harness-include goes with --harness-task")
    else:
        spec = get_task(task)  # unknown task: fail before loading anything
    if out:
        check_output_file(out)  # a folder, or a path under a file: one line before evaluating
    dtype, param_dtype = precision("none", dtype, param_dtype)
    loaded = load_model(model, dtype=dtype, param_dtype=param_dtype)  # a dtype not known: one line here
    if adapter:
        from emergence.train.adapters import load_adapter

        loaded = load_adapter(loaded, adapter)
    if harness_task is not None:
        from emergence.harness.run import evaluate_tasks

        results, harness_results = evaluate_tasks(
            loaded, names, shots=shots, limit=limit, include=harness_include, seed=seed, batch_size=batch_size,
            batch_tokens=batch_tokens, generation_rows=generation_rows)
        if out:
            write_records(out, [{"task": r.task, **record} for r in results for record in r.records])
            write_json(f"{out}.harness.json", harness_results)
    else:
        with progress(f"eval {task}", transient=True, disable=not sys.stderr.isatty()) as bars:
            bar = bars.add_task(task, total=None)
            results = [evaluate(
                loaded, spec, shots=shots, limit=limit, split=split, batch_size=batch_size,
                batch_tokens=batch_tokens, generation_rows=generation_rows, data_dir=data_dir,
                source=source, subjects=subjects.split(",") if subjects else None, seed=seed,
                on_start=lambda n: bars.update(bar, total=n),
                on_progress=lambda k: bars.advance(bar, k),
            )]
        if out:
            write_records(out, results[0].records)
    for result in results:
        _print(result, as_json)


def _print(result, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.summary()))
        return
    print(f"{result.task}  shots={result.shots}  n={result.n}")
    for name, value in result.metrics.items():
        print(f"  {name:<12} {value:.4f}")
    print(f"  {result.seconds:.1f}s, {result.examples_per_s:.2f} examples/s")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
