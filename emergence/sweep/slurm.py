"""`emergence sweep submit`: an array job of sweep workers on SLURM, through submitit.

Array task ``i`` of ``n`` is worker ``i`` of ``n`` (:mod:`emergence.sweep.assign`) on the shared
output folder: the cell records and claims coordinate the tasks as they do local workers, so tasks
may start late, run on any node, or be requeued. A task is a ``submitit.helpers.Checkpointable``:
on submitit's signal (USR2, which the job asks SLURM to send 90 s before its time limit, and which
clusters that warn before preemption send then; ``SUBMITIT_PREEMPT_SIGNAL`` names another), submitit
pickles the task (its arguments are all its state: finished cells are in the ledger) and requeues
it. The signal ends the cell being computed without a record and releases its claims on the way
out; the requeued task starts over at its block, skips what is recorded, and redoes that cell.
Python runs a signal handler at the next bytecode of the main thread, which may be inside a garbage
collector callback (JAX registers one), where an exception is printed and dropped. So the task's
own handler only raises :class:`Preempted`; if that is dropped, the flag it set raises it again at
the next cell's progress line, and submitit's checkpoint-and-requeue runs once, from ``__call__``. A
task killed outright (SIGKILL, a lost node, a preemption without warning) leaves claims that go
stale after ``lock_ttl``; the other tasks take its cells over (and SLURM's own requeue, where the
cluster preempts with ``PreemptMode=REQUEUE``, restarts it). Each task logs to
``OUT/logs/worker-<i>.log``; submitit keeps its own files under ``OUT/submitit/``.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from emergence.errors import UserError

# submitit configures logging when first imported (logging.config.dictConfig), which closes every
# logging handler the process already has, and with them streams that other code still writes to
# (a test's captured stderr, for one). Import it without that; the tasks it starts, in their own
# processes, import it normally (the variable is restored at once).
_log_level = os.environ.get("SUBMITIT_LOG_LEVEL")
os.environ["SUBMITIT_LOG_LEVEL"] = "NOCONFIG"
try:
    import submitit
finally:
    if _log_level is None:
        del os.environ["SUBMITIT_LOG_LEVEL"]
    else:
        os.environ["SUBMITIT_LOG_LEVEL"] = _log_level

DEFAULT_TIMEOUT_MIN = 240  # a task's time limit unless --slurm timeout_min=...; a timed-out task is requeued


class Preempted(BaseException):
    """SLURM's warning before preemption or the time limit (BaseException: no ``except Exception``
    in a cell may swallow it)."""


class SweepTask(submitit.helpers.Checkpointable):
    """One array task: ``sweep run --worker index/count`` in the directory the job was submitted from."""

    def __init__(self, config: str, overrides: list[str], count: int, retry_before: float | None, cwd: str):
        self.config, self.overrides, self.count = config, list(overrides), count
        self.retry_before, self.cwd = retry_before, cwd

    def __call__(self, index: int) -> dict[str, Any]:
        from emergence.sweep.config import load_sweep_config
        from emergence.sweep.launch import GPU_MEMORY_FRACTION, worker_log
        from emergence.sweep.runner import Runner

        os.chdir(self.cwd)  # a config's relative paths are relative to where it was submitted
        # SLURM pins the task's GPUs (CUDA_VISIBLE_DEVICES); JAX would take only 75 % of them
        os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", GPU_MEMORY_FRACTION)
        cfg = load_sweep_config(self.config, self.overrides)
        warned: list[int] = []

        def on_warning(signum: int, frame: object) -> None:
            warned.append(signum)
            raise Preempted

        usr_sig = submitit.JobEnvironment._usr_sig()
        requeue = signal.signal(usr_sig, on_warning)  # submitit's checkpoint-and-requeue handler
        with worker_log(cfg.out, index, f"(SLURM job {_job_id()})") as log:

            def echo(line: str) -> None:
                print(line, flush=True)
                log.write(line + "\n")
                log.flush()
                if warned:  # the handler's exception was dropped (see the module docstring)
                    raise Preempted

            try:
                report = Runner(cfg, echo=echo).run(
                    worker=(index, self.count),
                    retry_failed=self.retry_before is not None,
                    retry_before=self.retry_before,
                )
            except Preempted:
                log.write(f"preempted (signal {signal.Signals(warned[0]).name}): requeued\n")
                log.flush()
                if callable(requeue):  # not under submitit: nothing to requeue
                    requeue(warned[0], None)  # pickles this task, requeues it and exits
                raise
        return {"done": report.done_here, "failed_cells": report.failed_cells}


def parse_slurm(text: str) -> tuple[int, dict[str, Any]]:
    """``"partition=gpu,gpus_per_task=1,array=8%4,timeout_min=600"`` → (8 tasks, executor parameters).

    ``array`` is the number of tasks (``N`` or ``N%P``, P at most at once); the rest are submitit's
    parameters: its shared ones (``timeout_min``, ``mem_gb``, ``cpus_per_task``, ``gpus_per_node``, …)
    as given, any other SLURM option as ``slurm_<key>``."""
    params: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UserError(f"--slurm {text!r}: expected key=value pairs separated by commas, got {item!r}")
        params[key.strip()] = _value(value.strip())
    array = str(params.pop("array", ""))
    count, _, parallel = array.partition("%")
    if not count.isdigit() or int(count) < 1 or (parallel and not parallel.isdigit()):
        raise UserError(f"--slurm {text!r}: give array=N (N tasks, or N%P to run at most P at once)")
    generic = submitit.AutoExecutor._valid_parameters()
    out = {k if k in generic or k.startswith("slurm_") else f"slurm_{k}": v for k, v in params.items()}
    if parallel:
        out["slurm_array_parallelism"] = int(parallel)
    out.setdefault("timeout_min", DEFAULT_TIMEOUT_MIN)
    return int(count), out


def submit(
    config: str,
    overrides: list[str],
    out: str | Path,
    count: int,
    params: dict[str, Any],
    *,
    cluster: str = "slurm",
    retry_before: float | None = None,
) -> list[submitit.Job]:
    """Submit ``count`` workers as one array job (``cluster="local"``: submitit's local executor,
    the same tasks as local processes); returns the jobs."""
    params = dict(params)
    ctor = {k: params.pop(k) for k in list(params) if k == "slurm_max_num_timeout"}
    try:
        executor = submitit.AutoExecutor(folder=Path(out) / "submitit", cluster=cluster, **ctor)
    except RuntimeError as err:  # submitit's SLURM executor finds no srun
        raise UserError(f"cannot submit to SLURM: {err} (--cluster local runs the array here)") from None
    try:
        executor.update_parameters(name=f"sweep-{Path(config).stem}", **params)
    except (NameError, AssertionError) as err:  # submitit's words for an unknown or mistyped option
        raise UserError(f"--slurm: {err}".splitlines()[0]) from None
    task = SweepTask(str(Path(config).resolve()), overrides, count, retry_before, os.getcwd())
    try:
        return executor.map_array(task, range(count))
    except FileNotFoundError as err:
        raise UserError(
            f"cannot submit to SLURM ({err.filename} not found): run on a SLURM login node"
        ) from None


def _value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _job_id() -> str:
    try:
        return submitit.JobEnvironment().job_id
    except RuntimeError:
        return "?"
