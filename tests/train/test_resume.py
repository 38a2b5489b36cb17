"""Resume: a run killed with SIGKILL and rerun with the same command ends with the uninterrupted adapter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from emergence.train.checkpoints import step_dirs
from emergence.train.config import FinetuneConfig, LoraConfig, OptimConfig
from emergence.train.finetune import run_finetune

from .conftest import BENCHMARKS, TINY

EMERGENCE = str(Path(sys.executable).with_name("emergence"))
STEPS, SAVE_EVERY = 300, 25
ARGS = ["--task", "cola", "--budget", "24", f"finetune.steps={STEPS}", "finetune.batch_size=4", "finetune.optim.lr=5e-3",
        "finetune.lora.dropout=0.1", "finetune.lora.rank=2", "finetune.seed=3", "--subset-seed", "1",
        f"finetune.save_every={SAVE_EVERY}", "finetune.log_every=25", "--data-dir", str(BENCHMARKS)]  # fmt: skip


def test_sigkill_mid_run_then_rerun_resumes_to_the_uninterrupted_result(tmp_path):
    out = tmp_path / "killed"
    cmd = [EMERGENCE, "finetune", str(TINY), *ARGS, "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not step_dirs(out / "checkpoints") and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "adapter_config.json").exists(), "the run finished before it could be killed"
    killed_at = step_dirs(out / "checkpoints")[-1][0]
    assert 0 < killed_at < STEPS

    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from step {killed_at}" in resumed.stderr or "resumed from step" in resumed.stderr

    cfg = FinetuneConfig(
        model=str(TINY), task="cola", budget=24, subset_seed=1, steps=STEPS, batch_size=4, seed=3,
        lora=LoraConfig(rank=2, dropout=0.1), optim=OptimConfig(lr=5e-3), save_every=SAVE_EVERY, log_every=25,
        data_dir=str(BENCHMARKS),
    )  # fmt: skip
    run_finetune(cfg, tmp_path / "straight")
    a = load_file(str(out / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "straight" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    steps_logged = [line for line in (out / "metrics.jsonl").read_text().splitlines() if line]
    assert len(steps_logged) == STEPS // 25  # lines past the checkpoint were trimmed, none duplicated
