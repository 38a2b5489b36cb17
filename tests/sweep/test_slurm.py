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
