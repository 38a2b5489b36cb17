"""`emergence finetune`: a run end to end, and one line + exit 2 for every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emergence.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TINY = str(FIXTURES / "tiny_llama" / "gqa_untied")
DATA = str(FIXTURES / "benchmarks")


def _run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(["finetune", TINY, "--task", "cola", "--data-dir", DATA, *args])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget", "61"], "budget 61 is larger than the cola training data"),
        (["--budget", "8", "finetune.lora.targets=[qkv_proj]"], "LoRA target 'qkv_proj' matches no linear module"),
        (["--budget", "8", "finetune.lora.rank=0"], "finetune.lora: rank must be a positive integer, got 0"),
        (["--budget", "8", "finetune.lora.rank=two"], "finetune.lora.rank: expected an integer, got 'two'"),
        (["--budget", "8", "finetune.rnak=2"], "unknown key 'finetune.rnak'"),
        (["--budget", "8", "finetune.method=qlora"], "finetune: method must be one of lora, full"),
        (["--budget", "8", "finetune.eval_every=0"], "finetune: eval_every must be a positive number of steps"),
        (["--budget", "8", "finetune.eval_every=2", "finetune.eval_split=dev"], "task cola has no local split 'dev'"),
        (["--budget", "8", "finetune.mesh.data=a"], "finetune.mesh.data: expected an integer, got 'a'"),
        (["--budget", "8", "optim.lr=1"], "unknown key 'optim'"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(capsys, tmp_path, args, message):
    code, _, err = _run(capsys, *args, "--out", str(tmp_path / "run"))
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], err
    assert not (tmp_path / "run" / "run.json").exists()  # a rejected command claims no directory


def test_a_diverging_run_stops_with_a_clear_message_and_keeps_its_last_good_checkpoint(capsys, tmp_path):
    out = tmp_path / "nan"
    code, _, err = _run(
        capsys,
        "--budget",
        "8",
        "finetune.steps=6",
        "finetune.batch_size=4",
        "finetune.optim.lr=1e30",
        "finetune.save_every=1",
        "--out",
        str(out),
    )
    assert code == 2
    assert "training diverged" in err and "non-finite" in err
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts and all(name.startswith("step_") for name in ckpts)  # no half-written checkpoint
    assert not (out / "adapter_config.json").exists()
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(m["loss"] == m["loss"] for m in metrics)  # only finite losses were logged


def test_finetune_writes_metrics_and_an_adapter_that_evaluates(capsys, tmp_path):
    from emergence.models.registry import load_model
    from emergence.train.adapters import load_adapter

    out = tmp_path / "ok"
    settings = ("--budget", "8", "finetune.steps=4", "finetune.batch_size=4", "finetune.optim.lr=1e-2")
    code, stdout, _ = _run(capsys, *settings, "--peak-tflops", "1.0", "--out", str(out))
    assert code == 0 and "finished 4 steps" in stdout
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    assert all(m["tokens_per_s"] > 0 for m in metrics)
    # MFU on CPU too, against --peak-tflops: LoRA's 4N FLOPs per token over the interval's tokens/s
    n_params = load_model(TINY).config.num_params()
    for m in metrics:
        assert m["flops_rule"] == "4N" and m["mfu"] == pytest.approx(m["tflops_per_device"] / 1.0)
        assert m["tflops_per_device"] == pytest.approx(m["tokens_per_s_per_device"] * 4 * n_params / 1e12)
    base = load_model(TINY)
    tuned = load_adapter(load_model(TINY), out)
    import jax.numpy as jnp

    tokens = jnp.asarray([[5, 6, 7]])
    assert float(jnp.max(jnp.abs(tuned.model(tokens)[0] - base.model(tokens)[0]))) > 0
    code, stdout, _ = _run(
        capsys, "--budget", "8", "finetune.steps=4", "finetune.batch_size=4", "finetune.optim.lr=1e-2", "--out", str(out)
    )
    assert code == 0 and "already finished" in stdout
    code, _, err = _run(
        capsys, "--budget", "8", "finetune.steps=5", "finetune.batch_size=4", "finetune.optim.lr=1e-2", "--out", str(out)
    )
    assert code == 2 and "different config" in err


def test_eval_every_prints_and_records_the_learning_curve(capsys, tmp_path):
    out = tmp_path / "curve"
    args = ["--budget", "8", "finetune.steps=4", "finetune.batch_size=4", "finetune.eval_every=2", "--out", str(out)]
    code, stdout, err = _run(capsys, *args)
    assert code == 0, err
    assert "learning curve on cola validation (0-shot):" in stdout
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    points = [line for line in lines if "eval" in line]
    assert [p["step"] for p in points] == [0, 2, 4]
    assert all(set(p["eval"]) == {"mcc", "acc"} for p in points)
    assert len(lines) == len(points) + 4  # and one training line per step


def test_a_config_file_and_overrides_set_the_same_keys_as_a_sweep_config(capsys, tmp_path):
    """``--config`` holds a sweep's finetune/eval sections; overrides after the model win over it."""
    config = tmp_path / "ft.yaml"
    config.write_text("finetune: {steps: 3, batch_size: 4, optim: {lr: 1.0e-2}, lora: {rank: 2}}\n")
    out = tmp_path / "from_file"
    code, stdout, err = _run(capsys, "--budget", "8", "--config", str(config), "finetune.steps=2", "--out", str(out))
    assert code == 0 and "finished 2 steps" in stdout, err
    run = json.loads((out / "run.json").read_text())["config"]
    assert (run["lora"]["rank"], run["optim"]["lr"], run["batch_size"], run["steps"]) == (2, 1e-2, 4, 2)
    config.write_text("finetune: {lora: {rank: 0}}\n")
    code, _, err = _run(capsys, "--budget", "8", "--config", str(config), "--out", str(tmp_path / "bad"))
    assert code == 2 and f"{config}: finetune.lora: rank must be a positive integer" in err  # names the YAML key
