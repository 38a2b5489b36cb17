"""Finite failures are failures, and a resumed run's counters continue where they stopped."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from emergence.errors import UserError
from emergence.train.checkpoints import step_dirs
from emergence.train.config import FinetuneConfig, OptimConfig
from emergence.train.divergence import DivergenceWatch
from emergence.train.finetune import METRICS_FILE, run_finetune
from emergence.train.trainer import TrainingDiverged

from .conftest import BENCHMARKS, TINY


def test_a_loss_far_above_its_start_is_divergence():
    watch = DivergenceWatch()
    assert watch.check(1, 5.9, 20.0) is None
    assert watch.check(2, 9.0, 30.0) is None  # +3.1 nats but not doubled: a bad step, not divergence
    reason = watch.check(3, 12.5, 900.0)
    assert reason is not None and "far above its start 5.9" in reason


def test_a_loss_stuck_with_a_zero_gradient_is_divergence():
    watch = DivergenceWatch()
    assert watch.check(1, 2.3, 15.0) is None
    assert watch.check(2, 4.1, 0.0) is None  # one zero-gradient step may be chance
    reason = watch.check(3, 4.1, 0.0)
    assert reason is not None and "stuck at 4.1 with zero gradient" in reason


def test_healthy_runs_are_not_flagged():
    watch = DivergenceWatch()
    for step, loss in enumerate([5.9, 5.2, 6.3, 4.0, 4.4, 2.1, 0.3, 0.01, 0.0], start=1):
        assert watch.check(step, loss, 0.0 if loss == 0.0 else 3.0) is None
    # a model that fits its data perfectly has a zero gradient and a (near) zero loss: converged
    assert watch.check(10, 0.0, 0.0) is None


def test_a_resumed_watch_keeps_its_reference():
    watch = DivergenceWatch(reference=2.0)
    assert watch.check(40, 5.5, 10.0) is not None  # would pass if 5.5 were taken as the start


def _cfg(**overrides) -> FinetuneConfig:
    base = dict(
        model=str(TINY), task="cola", budget=16, steps=4, batch_size=4, max_seq_len=96, save_every=2,
        data_dir=str(BENCHMARKS), optim=OptimConfig(lr=1e-4),
    )
    return FinetuneConfig(**{**base, **overrides})


def test_a_finetuning_run_that_blows_up_is_reported_as_diverged(tmp_path):
    cfg = _cfg(method="full", optim=OptimConfig(lr=30.0, clip_norm=None), steps=6)
    with pytest.raises(TrainingDiverged, match="far above its start"):
        run_finetune(cfg, tmp_path / "run")
    assert issubclass(TrainingDiverged, UserError)  # a sweep records the cell as failed
    assert not (tmp_path / "run" / "adapter_config.json").exists()


def test_resumed_tokens_continue_where_they_stopped(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    run_finetune(_cfg(), whole)
    run_finetune(_cfg(), killed)
    # as if killed after the step-2 checkpoint: the result, the later checkpoint and log lines gone
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (killed / name).unlink()
    for step, path in step_dirs(killed / "checkpoints"):
        if step > 2:
            shutil.rmtree(path)
    result = run_finetune(_cfg(), killed)
    assert result.start_step == 2

    def tokens(folder):
        lines = [json.loads(x) for x in (folder / METRICS_FILE).read_text().splitlines()]
        return [(m["step"], m["tokens"]) for m in lines if "loss" in m]

    assert tokens(killed) == tokens(whole)
    assert tokens(whole)[-1][1] > tokens(whole)[1][1] > 0


def test_finetuning_outputs_have_the_users_umask(tmp_path, monkeypatch):
    from emergence import fileio

    old = os.umask(0o022)
    monkeypatch.setattr(fileio, "_umask", None)
    try:
        run_finetune(_cfg(steps=2), tmp_path / "run")
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "run").iterdir() if p.is_file()]
    assert {p.name for p in files} >= {"adapter_model.safetensors", "adapter_config.json", "run.json"}
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in files} == {p.name: "0o644" for p in files}
