"""Finetuning settings are declared once (FinetuneSettings) and mean the same in every config that holds them."""

from __future__ import annotations

from pathlib import Path

import jax
import pytest

from emergence.config import load_config
from emergence.errors import UserError
from emergence.report.demo_config import load_demo_config
from emergence.sweep.config import finetune_config, load_sweep_config
from emergence.sweep.plan import expand
from emergence.train.config import (
    FinetuneConfig,
    FinetuneFile,
    FinetuneSettings,
    LoraConfig,
    OptimConfig,
    precision,
)

ROOT = Path(__file__).resolve().parents[2]
SWEEP = ROOT / "configs" / "sweeps" / "tiny.yaml"
DEMO = ROOT / "configs" / "demo_ci.yaml"
SECTION = "{method: full, optim: {lr: 3.0e-4, warmup_ratio: 0.1}, lora: {rank: 2}, epochs: 2, save_every: 7, log_every: 3}"
RUN = {"model": "m", "task": "cola", "budget": 16}


def _sweep_run(settings: FinetuneSettings) -> FinetuneConfig:
    return FinetuneConfig.of(settings, **RUN)


def test_one_finetune_section_means_the_same_in_a_sweep_a_demo_and_emergence_finetune():
    sweep = load_sweep_config(SWEEP, [f"finetune={SECTION}"]).finetune
    demo = load_demo_config(DEMO, [f"sweep.finetune={SECTION}"])[0].sweep.finetune
    command = load_config(FinetuneFile, None, [f"finetune={SECTION}"]).finetune
    assert sweep == demo == command
    assert (command.optim, command.lora.rank, command.epochs) == (
        OptimConfig(lr=3e-4, warmup_ratio=0.1),
        2,
        2.0,
    )


def test_a_section_keeps_the_defaults_of_its_config_for_keys_it_does_not_name():
    """A sweep logs and checkpoints rarely (many short cells); `emergence finetune` often (one run)."""
    sweep = load_sweep_config(SWEEP, ["finetune={epochs: 2}"]).finetune
    command = load_config(FinetuneFile, None, ["finetune.epochs=2"]).finetune
    assert (sweep.save_every, sweep.log_every, command.save_every, command.log_every) == (1000, 10, 50, 1)
    assert load_config(FinetuneFile, None, []).eval.shots == 0  # a learning curve scores zero-shot prompts


def test_a_cell_runs_the_sweep_settings_on_its_checkpoint_task_budget_and_seed():
    cfg = load_sweep_config(SWEEP)
    run = finetune_config(cfg, "m", "cola", 16, 1)
    assert (run.model, run.task, run.budget, run.subset_seed) == ("m", "cola", 16, 1)
    assert (run.dtype, run.param_dtype) == cfg.precision() == ("float32", "float32")  # on CPU
    assert run.lora == LoraConfig(rank=4, alpha=8, targets=("q_proj", "v_proj")) and run.optim.lr == 1e-3
    assert run.data_dir == cfg.eval.data_dir
    sharded = load_sweep_config(SWEEP, ["mesh={data: 1, fsdp: 2}"])
    assert finetune_config(sharded, "m", "cola", 16, 1).mesh.fsdp == 2
    assert [c.key for c in expand(sharded)] == [c.key for c in expand(cfg)]  # the same cells, on more devices


def test_the_fingerprint_ignores_what_does_not_change_the_trained_weights():
    base = _sweep_run(FinetuneSettings())
    same = [{"save_every": 3}, {"log_every": 9}, {"eval_every": 5}, {"keep_checkpoints": True}]
    for change in same:
        assert FinetuneConfig.of(FinetuneSettings(**change), **RUN).fingerprint() == base.fingerprint(), (
            change
        )
    assert (
        FinetuneConfig.of(FinetuneSettings(), **RUN, data_dir="elsewhere").fingerprint() == base.fingerprint()
    )
    assert _sweep_run(FinetuneSettings(epochs=4)).fingerprint() != base.fingerprint()
    assert FinetuneConfig.of(FinetuneSettings(), **{**RUN, "budget": 32}).fingerprint() != base.fingerprint()


def test_precision_defaults_to_float32_on_cpu_and_to_bf16_compute_on_accelerators(monkeypatch):
    assert precision("lora") == precision("full") == precision("none") == ("float32", "float32")
    assert precision("lora", "bfloat16") == ("bfloat16", "float32")  # CPU keeps float32 weights
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert precision("lora") == precision("none") == ("bfloat16", "bfloat16")  # a frozen base in bf16
    assert precision("full") == ("bfloat16", "float32")  # float32 master weights (and moments)
    assert precision("lora", "float32") == ("float32", "float32")
    assert precision("lora", None, "float32") == ("bfloat16", "float32")  # given values win
    assert (_sweep_run(FinetuneSettings()).dtype, _sweep_run(FinetuneSettings()).param_dtype) == (
        "bfloat16",
        "bfloat16",
    )


def test_precision_and_memory_settings_change_the_fingerprint_only_when_they_change_the_weights():
    base = _sweep_run(FinetuneSettings())
    assert "param_dtype" not in base.identity()  # float32 weights: fingerprints from before it existed
    for change in ({"remat": "block"}, {"peak_tflops": 1.0}):
        assert _sweep_run(FinetuneSettings(**change)).fingerprint() == base.fingerprint(), change
    bf16 = FinetuneConfig.of(FinetuneSettings(), **RUN, param_dtype="bfloat16")
    assert bf16.identity()["param_dtype"] == "bfloat16" and bf16.fingerprint() != base.fingerprint()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("finetune.optim.lr=0", "command line: finetune.optim: lr must be a finite number > 0, got 0.0"),
        ("finetune.lora.dropout=1", "command line: finetune.lora: dropout must be in [0, 1), got 1.0"),
        ("finetune.steps=0", "command line: finetune: steps must be a positive number of steps, got 0"),
        ("finetune.lr=1e-3", "command line: unknown key 'finetune.lr'"),
        ("eval.limit=0", "command line: eval: limit must be a positive number of examples, got 0"),
        ("finetune.remat=all", "command line: finetune: remat must be one of none, block, dots, got 'all'"),
        ("finetune.peak_tflops=0", "command line: finetune: peak_tflops must be a finite number > 0"),
    ],
)
def test_errors_name_the_yaml_key(override, message):
    with pytest.raises(UserError) as err:
        load_config(FinetuneFile, None, [override])
    assert str(err.value).startswith(message)
