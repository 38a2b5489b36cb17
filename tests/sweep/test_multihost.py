"""Cells on a mesh, and one sweep over the processes of a multi-host job.

The reference is the CI sweep (configs/sweeps/tiny.yaml) run by one process on one device. The
same sweep with one checkpoint sharded over 8 fake CPU devices, and the same sweep run by two
processes joined by ``jax.distributed`` (JAX's CPU collectives) with one mesh spanning both, must
give its table: the same cells (keys), the same n_correct, losses within 1e-5. In the two-process
job only process 0 writes, and it writes each record once (tests/sweep/write_audit.py lists every
write each process makes under the output folder).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pandas as pd
import pytest

from emergence.sweep.results import results_table
from tests.sweep.helpers import EMERGENCE, REPO, cli_env, comparable, run_cli, tiny_raw, write_config

LOSS_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return cli_env(tmp_path_factory.mktemp("jax_cache"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, env):
    folder = tmp_path_factory.mktemp("reference")
    config = write_config(folder / "tiny.yaml", tiny_raw())
    proc = run_cli(["sweep", "run", str(config), f"out={folder / 'out'}"], _devices(env, 1))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return folder / "out"


def _devices(env: dict[str, str], count: int) -> dict[str, str]:
    return env | {"XLA_FLAGS": f"--xla_force_host_platform_device_count={count}"}


def _final_losses(out) -> dict[str, float]:
    """Each finetuned cell's last training loss, from its record."""
    records = (json.loads(p.read_text()) for p in (out / "cells").glob("*.json"))
    return {r["key"]: r["train"]["final_loss"] for r in records if r["train"]}


def _assert_same_table(out, reference) -> None:
    table = comparable(results_table(out)).sort_values("config_hash").reset_index(drop=True)
    expected = comparable(results_table(reference)).sort_values("config_hash").reset_index(drop=True)
    assert list(table["config_hash"]) == list(expected["config_hash"])  # the same cells
    assert list(table["n_correct"]) == list(expected["n_correct"])
    assert (table["pretrain_loss"] - expected["pretrain_loss"]).abs().max() < LOSS_TOLERANCE
    losses, expected_losses = _final_losses(out), _final_losses(reference)
    assert losses.keys() == expected_losses.keys() and len(losses) == 8
    assert max(abs(losses[k] - expected_losses[k]) for k in losses) < LOSS_TOLERANCE
    exact = [c for c in expected.columns if c not in ("pretrain_loss",)]
    pd.testing.assert_frame_equal(table[exact], expected[exact])


def test_a_checkpoint_sharded_over_8_devices_gives_the_one_device_table(reference, env, tmp_path):
    raw = tiny_raw()
    raw["checkpoints"][0]["mesh"] = {"fsdp": 8}  # tiny-tied on 8 devices, tiny-untied on the sweep's 1
    config = write_config(tmp_path / "tiny.yaml", raw)
    proc = run_cli(["sweep", "run", str(config), f"out={tmp_path / 'out'}"], _devices(env, 8))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _assert_same_table(tmp_path / "out", reference)
    placed = {json.loads(p.read_text())["row"]["checkpoint"]: p.stem for p in (tmp_path / "out/cells").glob("*.json")}
    assert "model on data=1 fsdp=8 tensor=1" in (tmp_path / "out/cells" / placed["tiny-tied"] / "run.log").read_text()
    assert "model on 1 device" in (tmp_path / "out/cells" / placed["tiny-untied"] / "run.log").read_text()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def test_two_processes_on_one_mesh_give_the_one_process_table_and_write_each_file_once(
    reference, env, tmp_path
):
    raw = tiny_raw()
    raw["mesh"] = {"fsdp": -1, "distributed": True}  # 2 processes × 2 devices: fsdp = 4 spans both
    config = write_config(tmp_path / "tiny.yaml", raw)
    out = tmp_path / "out"
    job = _devices(env, 2) | {"JAX_COORDINATOR_ADDRESS": f"localhost:{_free_port()}", "JAX_NUM_PROCESSES": "2"}
    audit = [sys.executable, "-m", "tests.sweep.write_audit"]
    procs = [
        subprocess.Popen(
            [*audit, str(tmp_path / f"writes{i}.jsonl"), str(out), "sweep", "run", str(config), f"out={out}"],
            cwd=REPO, env=job | {"JAX_PROCESS_ID": str(i)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for i in (0, 1)
    ]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(logs)
    assert "process 1 of 2 follows process 0" in logs[1] and "[10/10]" in logs[0]
    _assert_same_table(out, reference)
    placed = (out / "cells" / results_table(out)["config_hash"][0] / "run.log").read_text()
    assert "model on data=1 fsdp=4 tensor=1" in placed

    leader, follower = (
        [json.loads(line) for line in (tmp_path / f"writes{i}.jsonl").read_text().splitlines()] for i in (0, 1)
    )
    assert follower == []  # process 1 computed every cell and wrote nothing
    replaced = [os.path.relpath(path, out) for event, path in leader if event == "os.rename"]
    results = [f for f in replaced if not f.startswith("workers/")]  # the runner's state file is rewritten per cell
    assert len(results) == len(set(results))  # atomic writes: no file of the sweep written twice
    assert len([f for f in replaced if re.fullmatch(r"cells/\w+\.json", f)]) == 10  # the records
    assert len([f for f in replaced if f.startswith("loss/")]) == 2 and "sweep.json" in replaced


def test_a_fully_finetuned_cell_over_two_processes_saves_the_one_process_model(env, tmp_path):
    """Full finetuning shards the trained weights over both hosts: every process gathers them, and
    process 0 writes the model a one-process run writes."""
    raw = tiny_raw() | {"budgets": [16], "subset_seeds": [0]}
    raw["checkpoints"] = raw["checkpoints"][:1]
    raw["finetune"] = raw.get("finetune", {}) | {"method": "full"}
    one = write_config(tmp_path / "one.yaml", raw)
    proc = run_cli(["sweep", "run", str(one), f"out={tmp_path / 'one'}"], _devices(env, 1))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job_config = write_config(tmp_path / "job.yaml", raw | {"mesh": {"fsdp": -1, "distributed": True}})
    job = _devices(env, 2) | {"JAX_COORDINATOR_ADDRESS": f"localhost:{_free_port()}", "JAX_NUM_PROCESSES": "2"}
    procs = [
        subprocess.Popen(
            [*EMERGENCE, "sweep", "run", str(job_config), f"out={tmp_path / 'job'}"], cwd=REPO,
            env=job | {"JAX_PROCESS_ID": str(i)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        for i in (0, 1)
    ]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(logs)
    from safetensors.numpy import load_file

    saved = {name: sorted((tmp_path / name / "cells").glob("*/finetune/model/model.safetensors")) for name in ("one", "job")}
    assert len(saved["one"]) == len(saved["job"]) == 1
    ours, theirs = load_file(str(saved["job"][0])), load_file(str(saved["one"][0]))
    assert ours.keys() == theirs.keys()
    assert max(float(abs(ours[k] - theirs[k]).max()) for k in ours) < LOSS_TOLERANCE
