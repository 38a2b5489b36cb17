"""`emergence sweep plan|run|submit|status`, `emergence results`, `emergence loss`: grids of cells → one table."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer

from emergence.commands.shared import DTYPE, MODEL, cpu_devices, dotted_overrides
from emergence.errors import UserError
from emergence.fileio import check_output_dir, check_output_file

sweep_app = typer.Typer(
    help="Plan, run and inspect sweeps of checkpoint × task × budget × seed cells.", no_args_is_help=True
)

CONFIG = typer.Argument(..., help="sweep config (YAML)")
TARGET = typer.Argument(..., help="sweep output folder, or its config (YAML)")
OVERRIDES = dotted_overrides("finetune.optim.lr=3e-4 out=runs/x")
RETRY_FAILED = typer.Option(False, "--retry-failed", help="run cells recorded as failed again")


def _config(path: str, overrides: list[str]):
    from emergence.sweep.config import load_sweep_config

    return load_sweep_config(path, overrides)


def _out_dir(target: str, overrides: list[str]) -> str:
    """An output folder given directly, or the ``out`` of a config file (with overrides)."""
    if Path(target).is_file() and Path(target).suffix in (".yaml", ".yml"):
        return _config(target, overrides).out
    return target


def plan_cmd(
    config: str = CONFIG,
    overrides: list[str] = OVERRIDES,
    rows: int = typer.Option(None, "--rows", help="print at most this many cells"),
    workers: int = typer.Option(None, "--workers", min=1, help="also print each of N workers' checkpoints"),
    device_memory: str = typer.Option(
        None, "--device-memory", help="e.g. 80GB: say whether each checkpoint fits its mesh"
    ),
) -> None:
    """Expand CONFIG into cells (stable keys) and print them with a cost estimate, then each checkpoint's
    parameters, tokens and pretraining FLOPs; writes nothing."""
    from emergence.sweep.plan import expand, format_checkpoints, format_plan

    cfg = _config(config, overrides)
    if device_memory:
        from emergence.sweep.placement import devices_needed
        from emergence.train.memory_plan import parse_bytes

        limit = parse_bytes(device_memory)
        cpu_devices(devices_needed(cfg))  # before expand starts JAX: meshes larger than the machine
    cells = expand(cfg)
    print(format_plan(cfg, cells, rows=rows))
    print()
    print(format_checkpoints(cfg))
    if device_memory:
        from emergence.sweep.placement import memory_lines

        print("\n".join(memory_lines(cfg, limit)))
    if workers:
        from emergence.sweep.assign import format_assignment

        print("\n" + format_assignment(cells, workers))


def run_cmd(
    config: str = CONFIG,
    overrides: list[str] = OVERRIDES,
    shard: str = typer.Option(
        None,
        "--shard",
        help="i/n: run only block i of n of the checkpoints (0-based; contiguous, equal cost)",
    ),
    worker: str = typer.Option(
        None,
        "--worker",
        help="i/n: start at block i of n of the checkpoints, then take checkpoints left by others",
    ),
    workers: int = typer.Option(
        None, "--workers", min=1, help="start N local workers (each --worker i/N, pinned to its own devices)"
    ),
    devices_per_worker: int = typer.Option(
        1, "--devices-per-worker", min=1, help="GPUs or TPU chips per worker"
    ),
    retry_before: float = typer.Option(
        None, "--retry-before", hidden=True, help="retry failures recorded before this time"
    ),
    retry_failed: bool = RETRY_FAILED,
    no_wait: bool = typer.Option(
        False,
        "--no-wait",
        help="exit when no free cell is left instead of waiting for cells claimed by other runners",
    ),
) -> None:
    """Run (or resume) the cells of CONFIG; safe to start on several hosts sharing the output folder."""
    from emergence.sweep.plan import parse_shard

    cfg = _config(config, overrides)
    shard_spec = parse_shard(shard)
    worker_spec = parse_shard(worker, "--worker") if worker else None
    if sum(x is not None for x in (shard, worker, workers)) > 1:
        raise UserError("give one of --shard, --worker and --workers")
    check_output_dir(cfg.out, "out")
    if retry_failed and retry_before is None:
        retry_before = time.time()  # failures recorded from now on (by this run or its workers) stay failed
    if workers:
        from emergence.sweep.launch import Launcher

        command = [sys.executable, "-m", "emergence.cli", "sweep", "run", config, *overrides]
        command += ["--retry-failed", "--retry-before", repr(retry_before)] if retry_failed else []
        command += ["--no-wait"] if no_wait else []
        launcher = Launcher(
            command, Path(cfg.out), workers, devices_per_worker, echo=lambda s: print(s, flush=True)
        )
        raise typer.Exit(launcher.run())
    from emergence.sweep.runner import Runner  # not in the launcher: it never starts JAX

    report = Runner(cfg, echo=lambda line: print(line, flush=True)).run(
        shard_spec=shard_spec,
        worker=worker_spec,
        retry_failed=retry_failed,
        retry_before=retry_before,
        wait=not no_wait,
    )
    if report.failed_cells:  # exit 1: the rest is done, these are not (README "Exit codes")
        shown = "; ".join(report.failed_cells[:20]) + (" ..." if len(report.failed_cells) > 20 else "")
        print(f"failed: {len(report.failed_cells)} cell(s): {shown}", file=sys.stderr)
        raise typer.Exit(1)


def submit_cmd(
    config: str = CONFIG,
    overrides: list[str] = OVERRIDES,
    slurm: str = typer.Option(
        ...,
        "--slurm",
        help="array=N plus SLURM options, e.g. partition=gpu,gpus_per_task=1,array=16,timeout_min=600",
    ),
    cluster: str = typer.Option(
        "slurm",
        "--cluster",
        help="slurm, or local: run the same array here through submitit's local executor",
    ),
    retry_failed: bool = RETRY_FAILED,
) -> None:
    """Submit an array job of sweep workers on the shared output folder, requeued when preempted."""
    from emergence.sweep.slurm import parse_slurm, submit

    if cluster not in ("slurm", "local"):
        raise UserError(f"--cluster must be slurm or local, got {cluster!r}")
    cfg = _config(config, overrides)
    check_output_dir(cfg.out, "out")
    count, params = parse_slurm(slurm)
    retry_before = time.time() if retry_failed else None
    jobs = submit(config, overrides, cfg.out, count, params, cluster=cluster, retry_before=retry_before)
    print(f"submitted {count} worker(s): job {jobs[0].job_id.split('_')[0]} -> {cfg.out}", flush=True)
    print(f"watch it with: emergence sweep status {cfg.out}", flush=True)
    if cluster == "local":  # the tasks are children of this process: wait for them
        for job in jobs:
            job.wait()
        status = _print_status(cfg.out)
        if status.failed or status.pending or status.running:
            raise typer.Exit(1)


def _print_status(folder: str):
    """Print where the sweep in ``folder`` stands, and each worker's state; return its SweepStatus."""
    from emergence.sweep.results import format_status, sweep_status
    from emergence.sweep.store import Store, read_json
    from emergence.sweep.workers import format_workers, read_workers

    manifest = read_json(Path(folder) / "sweep.json")
    ttl = manifest.get("config", {}).get("lock_ttl", 600.0) if isinstance(manifest, dict) else 600.0
    workers = read_workers(Store(folder, ttl))
    status = sweep_status(folder)
    lines = [format_status(status)]
    if workers:
        lines += [f"workers: {len(workers)}", *format_workers(workers)]
    print("\n".join(lines))
    return status


def status_cmd(
    target: str = TARGET,
    overrides: list[str] = OVERRIDES,
) -> None:
    """Cells done / running / failed / pending, with the error of each failed cell, and each worker's state."""
    _print_status(_out_dir(target, overrides))


def results_cmd(
    target: str = TARGET,
    overrides: list[str] = OVERRIDES,
    fmt: str = typer.Option("parquet", "--format", help="parquet | csv"),
    out: str = typer.Option(None, "--out", help="table file (default OUT/results.<format>)"),
    allow_partial: bool = typer.Option(
        False, "--allow-partial", help="write the table of the finished cells even if some are missing"
    ),
) -> None:
    """Consolidate finished cells into one results table (docs/design.md "Results row" columns + metrics).

    Exits 1 without writing when a planned cell is missing, failed or has a corrupt record (each is
    named on stderr), unless --allow-partial."""
    from emergence.results_table import TABLE_FORMATS, write_results
    from emergence.sweep.results import incomplete_cells, results_table

    if fmt not in TABLE_FORMATS:  # before any work, and before the default path is named
        raise UserError(f"--format must be one of {', '.join(TABLE_FORMATS)}, got {fmt!r}")
    folder = _out_dir(target, overrides)
    path = check_output_file(out or Path(folder) / f"results.{fmt}")
    problems = incomplete_cells(folder)
    for line in problems:
        print(line, file=sys.stderr)
    if problems and not allow_partial:
        print(
            f"results: not written: {len(problems)} cell(s) missing, failed or corrupt "
            "(finish the sweep, or pass --allow-partial for a table of the rest)",
            file=sys.stderr,
        )
        raise typer.Exit(1)
    frame = results_table(folder)
    path = write_results(frame, path, fmt)
    print(f"{len(frame)} rows, {len(frame.columns)} columns -> {path}")


def _loss_default(name: str) -> str:
    """A ``loss:`` setting's default, as LossSpec declares it (shown in --help, declared once)."""
    from emergence.sweep.config import LossSpec

    return f"(default: {LossSpec.__dataclass_fields__[name].default})"


def loss_cmd(
    model: str = MODEL,
    corpus: str = typer.Option(None, "--corpus", help="local .txt or .jsonl file"),
    hub: str = typer.Option(None, "--hub", help="hub dataset id instead of --corpus (online only)"),
    hub_config: str = typer.Option(None, "--hub-config", help="hub dataset config name"),
    split: str = typer.Option(None, "--split", help=f"hub dataset split {_loss_default('split')}"),
    field: str = typer.Option(
        None, "--field", help=f"text field of JSONL / hub rows {_loss_default('field')}"
    ),
    tokens: int = typer.Option(
        None, "--tokens", min=1, help=f"predicted tokens to score {_loss_default('tokens')}"
    ),
    seq_len: int = typer.Option(
        None, "--seq-len", min=2, help="window length (default: the model's, max 2048)"
    ),
    batch_size: int = typer.Option(
        None, "--batch-size", min=1, help=f"windows per batch {_loss_default('batch_size')}"
    ),
    dtype: str = DTYPE,
    unit: str = typer.Option(
        None, "--unit", help="nats-per-token, or bits-per-byte (comparable across tokenizers) "
        + _loss_default("unit"),
    ),
) -> None:
    """Mean next-token NLL of MODEL on a fixed, deterministic slice of a corpus, in nats/token, or in
    bits per UTF-8 byte of the scored text (docs/design.md "Pretraining loss")."""
    from emergence.eval.pretrain_loss import corpus_loss
    from emergence.models.registry import load_model
    from emergence.sweep.config import LossSpec

    given = dict(corpus=corpus, hub=hub, hub_config=hub_config, split=split, field=field, tokens=tokens,
                 seq_len=seq_len, batch_size=batch_size, unit=unit)  # fmt: skip
    spec = LossSpec(**{k: v for k, v in given.items() if v is not None})  # a sweep's `loss:` section
    if corpus is not None and not Path(corpus).is_file():
        raise UserError(f"loss corpus not found: {corpus}")
    res = corpus_loss(load_model(model, dtype=dtype), **spec.scoring())
    short = f" (the corpus has only {res.n_tokens + 1} tokens)" if res.n_tokens < spec.tokens else ""
    value = f"{res.in_unit(spec.unit):.6f} " + ("nats/token" if spec.unit == "nats-per-token" else "bits/byte")
    over = f"{res.n_tokens} tokens" + ("" if spec.unit == "nats-per-token" else f", {res.n_bytes} bytes")
    print(f"loss {value} over {over}{short}, windows of {res.seq_len}, {res.seconds:.2f}s")


def register(app: typer.Typer) -> None:
    sweep_app.command("plan")(plan_cmd)
    sweep_app.command("run")(run_cmd)
    sweep_app.command("submit")(submit_cmd)
    sweep_app.command("status")(status_cmd)
    app.add_typer(sweep_app, name="sweep")
    app.command("results")(results_cmd)
    app.command("loss")(loss_cmd)
