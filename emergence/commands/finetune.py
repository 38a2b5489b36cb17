"""`emergence finetune`: LoRA or full finetuning of a model on D examples of a task; resumable.

The settings are a sweep config's ``finetune:`` and ``eval:`` sections (:class:`~emergence.train.config.FinetuneFile`), from
``--config FILE`` and/or dotted overrides, so a setting has one name everywhere::

    emergence finetune smollm2-135m --task cola --budget 256 --out runs/ft finetune.optim.lr=3e-4
"""

from __future__ import annotations

from dataclasses import replace

import typer

from emergence.commands.shared import BUILTIN_TASKS, DATA_DIR, RUN_DTYPE, dotted_overrides, progress
from emergence.fileio import check_output_dir
from emergence.train.config import EvalSettings, FinetuneConfig, FinetuneFile


def finetune(
    model: str = typer.Argument(..., help="HF directory, .gguf file or alias (smollm2-135m)"),
    overrides: list[str] = dotted_overrides("finetune.optim.lr=3e-4 finetune.lora.rank=8"),
    task: str = typer.Option(..., "--task", help=BUILTIN_TASKS),
    budget: int = typer.Option(..., "--budget", help="number of training examples D"),
    out: str = typer.Option(..., "--out", help="result directory (checkpoints, metrics, adapter)"),
    config: str = typer.Option(None, "--config", help="YAML with a sweep config's finetune/eval sections"),
    data_dir: str = DATA_DIR,
    subset_seed: int = typer.Option(None, "--subset-seed", help="which nested subset of the training split [0]"),
    dtype: str = RUN_DTYPE,
    param_dtype: str = typer.Option(
        None, "--param-dtype", help="stored dtype [float32 on CPU; else bfloat16 for LoRA's base, float32 for full]"
    ),
    peak_tflops: float = typer.Option(
        None, "--peak-tflops", help="peak TFLOP/s per device for MFU (finetune.peak_tflops) [by device kind]"
    ),
) -> None:
    """Finetune MODEL on a D-example nested subset of TASK's training split; resumable.

    Settings are a sweep config's finetune.* and eval.* keys (see configs/sweeps/tiny.yaml), from
    --config and/or dotted overrides."""
    from emergence.config import load_config
    from emergence.data.tasks import get_task

    check_output_dir(out)
    run = load_config(FinetuneFile, config, overrides)
    ev = run.eval if data_dir is None else replace(run.eval, data_dir=data_dir)
    settings = run.finetune if peak_tflops is None else replace(run.finetune, peak_tflops=peak_tflops)
    given = {"subset_seed": subset_seed, "dtype": dtype, "param_dtype": param_dtype}
    given = {k: v for k, v in given.items() if v is not None}
    cfg = FinetuneConfig.of(settings, model=model, task=task, budget=budget, data_dir=ev.data_dir, **given)
    get_task(task)
    _run(cfg, out, ev)


def _run(cfg: FinetuneConfig, out: str, ev: EvalSettings) -> None:
    from emergence.train.finetune import run_finetune

    bars = progress("[bold]finetune", "loss {task.fields[loss]}  {task.fields[rate]} tok/s")
    console = bars.console
    state: dict = {}

    def on_plan(plan) -> None:
        console.print(
            f"{cfg.task}: {cfg.budget} of {plan.n_train} examples ({plan.data_note}); {plan.total_steps} steps"
        )
        state["task"] = bars.add_task("finetune", total=plan.total_steps, loss="-", rate="-")

    def on_log(m: dict) -> None:
        loss, rate = f"{m['loss']:.4f}", f"{m['tokens_per_s']:.0f}"
        bars.update(state["task"], completed=m["step"], loss=loss, rate=rate)

    def on_eval(line: dict) -> None:
        shown = "  ".join(f"{k} {v:.4f}" for k, v in line["eval"].items())
        console.print(f"step {line['step']}: {cfg.eval_split} {shown}")

    extra = {}
    if cfg.eval_every is not None:
        from emergence.eval.evaluate import scorer

        # built before anything is shown: a split, shot count or limit the task cannot give exits 2 here
        evaluator = scorer(cfg.task, **ev.options(split=cfg.eval_split))
        extra = {"evaluator": evaluator, "on_eval": on_eval}
    with bars:
        result = run_finetune(cfg, out, on_plan=on_plan, on_log=on_log, **extra)
    if result.already_done:
        print(f"{out}: already finished ({result.total_steps} steps); nothing to do")
        return
    if result.start_step:
        console.print(f"resumed from step {result.start_step}")
    last = result.history[-1] if result.history else {}
    loss = f"{last['loss']:.4f}" if last else "n/a"
    print(f"finished {result.total_steps} steps, final loss {loss}; result in {out}")
    if cfg.eval_every is not None:
        from emergence.train.finetune import eval_curve

        points = eval_curve(out)
        names = list(points[0]["eval"]) if points else []
        print(f"learning curve on {cfg.task} {cfg.eval_split} ({ev.shots}-shot):")
        print("  step  " + "  ".join(f"{n:>8}" for n in names))
        for p in points:
            print(f"  {p['step']:>4}  " + "  ".join(f"{p['eval'][n]:8.4f}" for n in names))


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune)
