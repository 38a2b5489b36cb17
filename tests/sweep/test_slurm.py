"""`sweep submit`: an array of workers through submitit (here its local executor, the same tasks as on
SLURM), a preempted task requeued and resumed, and the single-process table at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pandas as pd
import pytest

from emergence.errors import UserError
from emergence.sweep.results import results_table
from emergence.sweep.slurm import DEFAULT_TIMEOUT_MIN, parse_slurm
from tests.sweep.helpers import EMERGENCE, REPO, TINY_CONFIG, comparable, run_cli
from tests.sweep.test_launch import _busy_worker


def test_slurm_options_become_submitit_parameters():
    count, params = parse_slurm("partition=gpu,gpus_per_task=1,array=16%4,mem_gb=64")
    assert count == 16
    assert params == {
        "slurm_partition": "gpu",
        "slurm_gpus_per_task": 1,
        "mem_gb": 64,
        "slurm_array_parallelism": 4,
        "timeout_min": DEFAULT_TIMEOUT_MIN,
    }
    assert parse_slurm("array=2,timeout_min=600")[1]["timeout_min"] == 600
    for bad in ("partition=gpu", "array=0", "array=4,gpus", "array=x%2"):
        with pytest.raises(UserError, match="--slurm"):
            parse_slurm(bad)


def test_submit_writes_one_array_job_that_asks_for_the_preemption_signal(tmp_path, monkeypatch, capsys):
    """On a login node (here: stand-in ``srun`` and ``sbatch`` on PATH): one sbatch script, an array
    of N tasks, the SLURM options given, and USR2 before the time limit for submitit's requeue."""
    from emergence.cli import main

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(
        f'#!/bin/sh\ncp "$1" {tmp_path}/job.sh\necho "Submitted batch job 4242"\n'
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    slurm = "partition=gpu,gpus_per_task=1,array=4%2,timeout_min=720,account=lab"
    main(
        ["sweep", "submit", str(TINY_CONFIG), f"out={tmp_path / 'out'}", "--slurm", slurm]
    )  # returns at once
    assert "submitted 4 worker(s): job 4242" in capsys.readouterr().out
    job = (tmp_path / "job.sh").read_text()
    for line in ("--array=0-3%2", "--partition=gpu", "--gpus-per-task=1", "--time=720", "--account=lab"):
        assert f"#SBATCH {line}\n" in job
    assert "#SBATCH --signal=USR2@90" in job
    assert len(list((tmp_path / "out" / "submitit").glob("4242_*_submitted.pkl"))) == 4


def test_an_array_of_four_completes_the_sweep_and_a_preempted_task_resumes(reference, env, tmp_path):
    out = tmp_path / "out"
    cmd = [
        *EMERGENCE,
        "sweep",
        "submit",
        str(TINY_CONFIG),
        f"out={out}",
        "--cluster",
        "local",
        "--slurm",
        "array=4,timeout_min=30",
    ]
    submitter = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    victim = _busy_worker(out, set(), time.monotonic() + 240)
    os.kill(victim["pid"], signal.SIGUSR2)  # what SLURM sends (submitit's --signal) before preempting a task
    stdout = submitter.communicate(timeout=300)[0]
    assert submitter.returncode == 0, stdout
    log = (out / "logs" / f"worker-{victim['name']}.log").read_text()
    assert log.count("=== ") == 2, log  # started, preempted, requeued, started again
    submitit_logs = "".join(p.read_text() for p in (out / "submitit").glob("*_log.*"))
    assert "this job is preempted" in submitit_logs and "Requeued job" in submitit_logs
    table = results_table(out)
    assert table["config_hash"].is_unique
    pd.testing.assert_frame_equal(comparable(table), comparable(reference[1]))
    status = run_cli(["sweep", "status", str(out)], env).stdout
    assert "workers: 4" in status and status.count("finished") == 4


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the drop shown here
def test_a_warning_dropped_inside_a_gc_callback_still_requeues_at_the_next_cell(tmp_path, monkeypatch):
    """Python may run the signal handler inside a garbage-collector callback (JAX has one), where
    its exception is printed and dropped; the task then stops at the next cell's progress line and
    runs submitit's requeue handler once."""
    import gc

    import emergence.sweep.runner as runner
    from emergence.sweep.slurm import Preempted, SweepTask

    requeued: list[int] = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: requeued.append(signum))

    def run(self, **options):
        def callback(phase, info):
            if phase == "start":
                os.kill(os.getpid(), signal.SIGUSR2)
                sum(range(1000))  # the handler runs here, in the callback

        gc.callbacks.append(callback)
        try:
            gc.collect()
        finally:
            gc.callbacks.remove(callback)
        self.echo("[1/10] a cell recorded")
        raise AssertionError("the task went on after the warning")

    monkeypatch.setattr(runner.Runner, "run", run)
    task = SweepTask(str(TINY_CONFIG), [f"out={tmp_path / 'out'}"], 4, None, str(REPO))
    try:
        with pytest.raises(Preempted):
            task(0)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert requeued == [signal.SIGUSR2]
    assert "preempted (signal SIGUSR2): requeued" in (tmp_path / "out/logs/worker-0.log").read_text()
