"""`emergence finetune`: LoRA or full finetuning of a model on D examples of a task.

The result directory evaluates with ``emergence eval MODEL --adapter DIR``
(:func:`emergence.train.adapters.load_adapter`). Rerunning the same command resumes from the last
checkpoint in DIR.
"""

from __future__ import annotations

from dataclasses import dataclass

import typer


def _mesh(spec: str | None, distributed: bool):
    from emergence.errors import UserError
    from emergence.train.config import MeshConfig

    if not spec:
        return MeshConfig(distributed=distributed)
    try:
        data, fsdp, tensor = (int(x) for x in spec.split(","))
    except ValueError:
        raise UserError(f"--mesh must be three integers 'data,fsdp,tensor', got {spec!r}") from None
    return MeshConfig(data=data, fsdp=fsdp, tensor=tensor, distributed=distributed)


def finetune(
    model: str = typer.Argument(..., help="HF directory, .gguf file or alias (smollm2-135m)"),
    task: str = typer.Option(..., "--task", help="mmlu | commonsense_qa | cola | gsm8k"),
    budget: int = typer.Option(..., "--budget", help="number of training examples D"),
    out: str = typer.Option(..., "--out", help="result directory (checkpoints, metrics, adapter)"),
    subset_seed: int = typer.Option(0, "--subset-seed", help="which nested subset of the training split"),
    method: str = typer.Option("lora", "--method", help="lora | full"),
    rank: int = typer.Option(8, "--rank", help="LoRA rank"),
    alpha: float = typer.Option(16.0, "--alpha", help="LoRA alpha (update scaled by alpha / rank)"),
    lora_dropout: float = typer.Option(0.0, "--lora-dropout"),
    target: list[str] = typer.Option(
        [], "--target", help="LoRA module-name regex (repeatable; default: all projections)"
    ),
    lr: float = typer.Option(1e-4, "--lr"),
    schedule: str = typer.Option("cosine", "--schedule", help="cosine | constant (after linear warmup)"),
    weight_decay: float = typer.Option(0.0, "--weight-decay"),
    steps: int = typer.Option(None, "--steps", help="optimizer steps (overrides --epochs)"),
    epochs: float = typer.Option(None, "--epochs", help="passes over the D examples [default 3]"),
    min_steps: int = typer.Option(20, "--min-steps", help="lower bound on steps when using --epochs"),
    batch_size: int = typer.Option(8, "--batch-size"),
    grad_accum: int = typer.Option(1, "--grad-accum"),
    max_seq_len: int = typer.Option(512, "--max-seq-len"),
    dtype: str = typer.Option("float32", "--dtype", help="compute dtype: float32 | bfloat16"),
    seed: int = typer.Option(0, "--seed", help="adapter init, data order and dropout"),
    data_dir: str = typer.Option(
        None, "--data-dir", help="benchmarks folder (default: $EMERGENCE_DATA)"
    ),
    save_every: int = typer.Option(50, "--save-every", help="checkpoint every N steps"),
    log_every: int = typer.Option(1, "--log-every"),
    eval_every: int = typer.Option(
        None, "--eval-every", help="evaluate at step 0 and every N steps (learning curve in metrics.jsonl)"
    ),
    eval_split: str = typer.Option("validation", "--eval-split", help="split scored by --eval-every"),
    eval_shots: int = typer.Option(0, "--eval-shots", help="shots of the prompts scored by --eval-every"),
    eval_limit: int = typer.Option(None, "--eval-limit", help="score only the first N examples"),
    mesh: str = typer.Option(None, "--mesh", help="device mesh 'data,fsdp,tensor' (default 1,1,1)"),
    distributed: bool = typer.Option(False, "--distributed", help="call jax.distributed.initialize() first"),
) -> None:
    """Finetune MODEL on a D-example nested subset of TASK's training split; resumable."""
    from emergence.errors import UserError
    from emergence.fileio import check_output_dir
    from emergence.train.config import DEFAULT_LORA_TARGETS, FinetuneConfig, LoraConfig, OptimConfig

    check_output_dir(out)
    if steps is not None and epochs is not None:
        raise UserError("give either --steps or --epochs, not both")
    targets: list[str] = [p.strip() for t in target for p in t.split(",") if p.strip()]
    cfg = FinetuneConfig(
        model=model,
        task=task,
        budget=budget,
        subset_seed=subset_seed,
        method=method,
        lora=LoraConfig(
            rank=rank, alpha=alpha, dropout=lora_dropout, targets=tuple(targets) or DEFAULT_LORA_TARGETS
        ),
        optim=OptimConfig(lr=lr, schedule=schedule, weight_decay=weight_decay),
        mesh=_mesh(mesh, distributed),
        batch_size=batch_size,
        grad_accum=grad_accum,
        steps=steps,
        epochs=3.0 if epochs is None else epochs,
        min_steps=min_steps,
        max_seq_len=max_seq_len,
        dtype=dtype,
        seed=seed,
        data_dir=data_dir,
        save_every=save_every,
        log_every=log_every,
    )
    from emergence.data.tasks import get_task

    get_task(task)
    curve = None
    if eval_every is not None:
        curve = _CurveSpec(eval_every, eval_split, eval_shots, eval_limit, data_dir)
        curve.check(task)
    _run(cfg, out, curve)


@dataclass(frozen=True)
class _CurveSpec:
    """What ``--eval-every`` scores: a split of the task, with a number of shots."""

    every: int
    split: str
    shots: int
    limit: int | None
    data_dir: str | None

    def check(self, task: str) -> None:
        """Fail before training (exit 2) on a split, shot count or limit the task cannot give."""
        from emergence.data.tasks import make_requests

        make_requests(task, shots=self.shots, split=self.split, limit=self.limit, data_dir=self.data_dir)

    def evaluator(self, task: str):
        from emergence.eval.evaluate import scorer

        return scorer(task, shots=self.shots, split=self.split, limit=self.limit, data_dir=self.data_dir)


def _run(cfg, out: str, curve: _CurveSpec | None = None) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from emergence.train.finetune import run_finetune

    console = Console(stderr=True)
    progress = Progress(
        TextColumn("[bold]finetune"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}  {task.fields[rate]} tok/s"),
        TimeRemainingColumn(),
        console=console,
    )
    state: dict = {}

    def on_plan(plan) -> None:
        console.print(
            f"{cfg.task}: {cfg.budget} of {plan.n_train} examples ({plan.data_note}); {plan.total_steps} steps"
        )
        state["task"] = progress.add_task("finetune", total=plan.total_steps, loss="-", rate="-")

    def on_log(m: dict) -> None:
        progress.update(
            state["task"], completed=m["step"], loss=f"{m['loss']:.4f}", rate=f"{m['tokens_per_s']:.0f}"
        )

    def on_eval(line: dict) -> None:
        shown = "  ".join(f"{k} {v:.4f}" for k, v in line["eval"].items())
        progress.console.print(f"step {line['step']}: {curve.split} {shown}")

    extra = {}
    if curve is not None:
        extra = {"evaluator": curve.evaluator(cfg.task), "eval_every": curve.every, "on_eval": on_eval}
    with progress:
        result = run_finetune(cfg, out, on_plan=on_plan, on_log=on_log, **extra)
    if result.already_done:
        print(f"{out}: already finished ({result.total_steps} steps); nothing to do")
        return
    if result.start_step:
        console.print(f"resumed from step {result.start_step}")
    last = result.history[-1] if result.history else {}
    loss = f"{last['loss']:.4f}" if last else "n/a"
    print(f"finished {result.total_steps} steps, final loss {loss}; result in {out}")
    if curve is not None:
        from emergence.train.finetune import eval_curve

        points = eval_curve(out)
        names = list(points[0]["eval"]) if points else []
        print(f"learning curve on {cfg.task} {curve.split} ({curve.shots}-shot):")
        print("  step  " + "  ".join(f"{n:>8}" for n in names))
        for p in points:
            print(f"  {p['step']:>4}  " + "  ".join(f"{p['eval'][n]:8.4f}" for n in names))


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune)
