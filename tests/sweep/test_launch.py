"""`sweep run --workers N`: pinned local workers that load each checkpoint once, survive kills, and
give the single-process table (the reference: tests/sweep/conftest.py)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from emergence.errors import UserError
from emergence.sweep.launch import (
    MAX_RESTARTS,
    Accelerators,
    Launcher,
    check_fit,
    detect_accelerators,
    worker_env,
)
from emergence.sweep.results import results_table, sweep_status
from tests.sweep.helpers import EMERGENCE, REPO, TINY_CONFIG, comparable, run_cli, tiny_raw, write_config


def test_each_gpu_worker_sees_only_its_own_gpus_and_takes_most_of_their_memory():
    acc = detect_accelerators({"CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7"})
    assert acc == Accelerators("gpu", tuple("01234567"))
    assert worker_env(acc, 1, 2, {}) == {
        "CUDA_VISIBLE_DEVICES": "2,3",
        "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.95",
    }
    mine = worker_env(acc, 7, 1, {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.8"})
    assert mine == {"CUDA_VISIBLE_DEVICES": "7", "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.8"}  # the user's wins
    check_fit(acc, 4, 2)
    with pytest.raises(UserError, match="needs 10 GPUs; this machine shows 8"):
        check_fit(acc, 5, 2)


def test_tpu_workers_get_their_own_chips_and_controller_ports():
    acc = Accelerators("tpu", ("0", "1", "2", "3"))
    two = worker_env(acc, 1, 2, {})
    assert two["TPU_VISIBLE_CHIPS"] == "2,3" and two["TPU_CHIPS_PER_PROCESS_BOUNDS"] == "1,2,1"
    assert two["TPU_PROCESS_BOUNDS"] == "1,1,1" and two["TPU_MESH_CONTROLLER_PORT"] == "8477"
    with pytest.raises(UserError, match="1, 2 or 4 chips"):
        check_fit(acc, 1, 3)


def test_cpu_workers_are_not_pinned():
    acc = detect_accelerators({"JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": "0"})
    assert acc == Accelerators("cpu", ()) and worker_env(acc, 3, 1, {}) == {}
    check_fit(acc, 16, 1)


def test_a_worker_that_keeps_dying_is_restarted_a_bounded_number_of_times(tmp_path, monkeypatch):
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    lines: list[str] = []
    crash = [sys.executable, "-c", "import sys; sys.exit(3)"]  # a bug (exit 3) at every start
    code = Launcher(crash, tmp_path / "out", workers=2, per_worker=1, echo=lines.append).run()
    assert code == 1  # nothing recorded: the sweep is not done
    assert sum("died (exit 3); restart" in line for line in lines) == 2 * MAX_RESTARTS
    assert sum("not restarted" in line for line in lines) == 2
    assert (tmp_path / "out" / "logs" / "worker-1.log").read_text().count("=== ") == MAX_RESTARTS + 1


def test_a_failed_cell_does_not_stop_the_other_workers_and_the_launcher_exits_1(env, tmp_path):
    raw = tiny_raw()  # its relative paths resolve from the repository, where run_cli runs
    raw.update(budgets=[0, 100000], subset_seeds=[0], out=str(tmp_path / "out"))  # too large a budget fails
    config = write_config(tmp_path / "s.yaml", raw)
    proc = run_cli(["sweep", "run", str(config), "--workers", "2"], env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    status = sweep_status(tmp_path / "out")
    assert (status.done, status.failed, status.pending) == (2, 2, 0)  # every few-shot cell ran
    assert proc.stderr.count("failed cell tiny-") == 2 and "D=100000" in proc.stderr


def _loads(out: Path) -> dict[str, list[str]]:
    """Checkpoint id -> the workers whose run log says they loaded it."""
    loads: dict[str, list[str]] = {}
    for log in sorted((out / "logs").glob("worker-*.log")):
        for line in log.read_text().splitlines():
            if line.startswith("loaded checkpoint "):
                loads.setdefault(line.split()[2], []).append(log.stem)
    return loads


def test_four_workers_load_each_checkpoint_once_and_give_the_single_process_table(reference, env, tmp_path):
    out = tmp_path / "out"
    proc = run_cli(["sweep", "run", str(TINY_CONFIG), f"out={out}", "--workers", "4"], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {k: len(v) for k, v in _loads(out).items()} == {"tiny-tied": 1, "tiny-untied": 1}
    pd.testing.assert_frame_equal(comparable(results_table(out)), comparable(reference[1]))
    assert "[10/10] 10 done, 0 failed" in proc.stdout and proc.stdout.rstrip().endswith("sweep: complete")
    status = run_cli(["sweep", "status", str(out)], env).stdout
    assert "workers: 4" in status and status.count("finished") == 4


def _busy_worker(out: Path, killed: set[int], deadline: float) -> dict:
    """A worker in the middle of a cell, by its state file."""
    while time.monotonic() < deadline:
        for path in (out / "workers").glob("*.json"):
            try:
                info = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if info.get("state") == "running" and info.get("cell") and info["pid"] not in killed:
                return info
        time.sleep(0.05)
    raise AssertionError("no worker was busy: the sweep ended before three kills")


def test_a_worker_killed_three_times_loses_no_cell_and_duplicates_none(reference, env, tmp_path):
    rng = random.Random(29)
    out = tmp_path / "out"
    cmd = [*EMERGENCE, "sweep", "run", str(TINY_CONFIG), f"out={out}", "--workers", "4"]
    launcher = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    killed: set[int] = set()
    deadline = time.monotonic() + 240
    for _ in range(3):
        victim = _busy_worker(out, killed, deadline)
        time.sleep(rng.uniform(0.0, 0.3))  # mid-load, mid-training, mid-eval or mid-write
        os.kill(victim["pid"], signal.SIGKILL)
        killed.add(victim["pid"])
    stdout = launcher.communicate(timeout=300)[0]
    assert launcher.returncode == 0, stdout
    assert stdout.count("died (signal SIGKILL); restart") == 3
    table = results_table(out)
    assert table["config_hash"].is_unique and len(list((out / "cells").glob("*.json"))) == 10
    pd.testing.assert_frame_equal(comparable(table), comparable(reference[1]))
    status = sweep_status(out)
    assert (status.done, status.failed, status.running, status.pending) == (10, 0, 0, 0)
    assert not list((out / "cells").glob("*.lock"))
