"""`emergence sweep plan|run|status`, `emergence results`, `emergence loss`: output, and bad input → exit 2."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emergence.results_table import RESULT_COLUMNS
from emergence.sweep.config import load_sweep_config
from emergence.sweep.plan import expand
from emergence.sweep.store import Store
from tests.cli import run
from tests.sweep.helpers import (
    FIXTURES,
    PAPER_CONFIG,
    TINY_CONFIG,
    TINY_LLAMA,
    copy_with_other_tokenizer,
    tiny_raw,
    write_config,
)


def _bad_config(tmp_path, edit):
    raw = tiny_raw()
    raw["out"] = str(tmp_path / "out")
    edit(raw, tmp_path)
    return write_config(tmp_path / "bad.yaml", raw)


BAD_CONFIGS = {
    "unknown key": (lambda r, t: r["eval"].update(limt=3), "unknown key 'eval.limt'"),
    "missing checkpoint": (
        lambda r, t: r["checkpoints"].append({"model": str(t / "no_such_model")}),
        "checkpoints[2].model: checkpoint not found",
    ),
    "budget type": (lambda r, t: r.update(budgets=[0, 16.5]), "budgets[1]: expected an integer, got 16.5"),
    "duplicate ids": (
        lambda r, t: r["checkpoints"].append(
            {"model": str(TINY_LLAMA / "llama3_rope_mqa"), "id": "tiny-untied"}
        ),
        "duplicate checkpoint id 'tiny-untied' (checkpoints[1] and checkpoints[2])",
    ),
    "tokenizer mismatch": (
        lambda r, t: r["checkpoints"].append(
            {"model": str(copy_with_other_tokenizer(t / "odd")), "id": "odd"}
        ),
        "checkpoint 'odd' has a different tokenizer than 'tiny-tied'",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_sweep_configs_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, case):
    edit, culprit = BAD_CONFIGS[case]
    path = _bad_config(tmp_path, edit)
    for command in (["sweep", "plan", str(path)], ["sweep", "run", str(path)]):
        code, out, err = run(command, capsys)
        assert code == 2, (case, out, err)
        assert err.count("\n") == 1 and err.startswith("error: ") and culprit in err and "bad.yaml" in err
    assert not (tmp_path / "out").exists()


def test_a_bad_override_names_the_key(capsys):
    code, _, err = run(["sweep", "plan", str(TINY_CONFIG), "finetune.lrr=3e-4"], capsys)
    assert code == 2 and "unknown key 'finetune.lrr'" in err


def test_plan_prints_every_cell_and_a_cost_estimate_and_writes_nothing(tmp_path, capsys):
    code, out, _ = run(
        ["sweep", "plan", str(TINY_CONFIG), f"out={tmp_path / 'o'}", "finetune.optim.lr=3e-4"], capsys
    )
    assert code == 0
    for cell in expand(load_sweep_config(TINY_CONFIG, ["finetune.optim.lr=3e-4"])):
        assert cell.key in out
    assert "10 cells (2 few-shot, 8 finetuned)" in out and "estimated cost" in out
    assert not (tmp_path / "o").exists()


def test_plan_with_workers_prints_each_workers_checkpoints_offline(capsys, monkeypatch):
    import huggingface_hub

    def no_network(*args, **kwargs):
        raise AssertionError("plan must not download")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)
    code, out, _ = run(["sweep", "plan", str(PAPER_CONFIG), "--workers", "8", "--rows", "1"], capsys)
    assert code == 0
    assignment = out.split("8 workers:")[1]
    assert [line.split(":")[0].strip() for line in assignment.splitlines()[1:]] == [
        f"worker {i}" for i in range(8)
    ]
    for ckpt in load_sweep_config(PAPER_CONFIG).checkpoints:
        assert assignment.count(f" {ckpt.id},") + assignment.count(f" {ckpt.id}\n") == 1, ckpt.id


def test_conflicting_worker_options_and_bad_slurm_options_exit_2(tmp_path, capsys):
    out = f"out={tmp_path / 'o'}"
    code, _, err = run(["sweep", "run", str(TINY_CONFIG), out, "--shard", "0/2", "--workers", "2"], capsys)
    assert code == 2 and "give one of --shard, --worker and --workers" in err
    code, _, err = run(["sweep", "run", str(TINY_CONFIG), out, "--worker", "2/2"], capsys)
    assert code == 2 and "--worker '2/2'" in err
    code, _, err = run(["sweep", "submit", str(TINY_CONFIG), out, "--slurm", "partition=gpu"], capsys)
    assert code == 2 and "array=N" in err
    code, _, err = run(
        ["sweep", "submit", str(TINY_CONFIG), out, "--slurm", "array=2", "--cluster", "k8s"], capsys
    )
    assert code == 2 and "--cluster must be slurm or local" in err
    assert not (tmp_path / "o").exists()


def _fake_sweep(out):
    """A finished sweep's records written by hand: two done cells and a failed one."""
    store = Store(out)
    base = dict.fromkeys(RESULT_COLUMNS)
    rows = [
        {
            **base,
            "checkpoint": "b",
            "pretrain_loss": 3.0,
            "task": "cola",
            "shots": 0,
            "budget": 16,
            "subset_seed": 0,
            "method": "lora",
            "n_eval": 4,
            "n_correct": 3,
            "seconds": 1.0,
            "config_hash": "k2",
            "code_version": "v",
            "params": 10,
            "mcc": 0.5,
            "acc": 0.75,
        },
        {
            **base,
            "checkpoint": "a",
            "pretrain_loss": 4.0,
            "task": "cola",
            "shots": 0,
            "budget": 0,
            "subset_seed": None,
            "method": "none",
            "n_eval": 4,
            "n_correct": 2,
            "seconds": 1.0,
            "config_hash": "k1",
            "code_version": "v",
            "params": 10,
            "mcc": 0.0,
            "acc": 0.5,
        },
    ]
    for row in rows:
        store.write(store.record_path(row["config_hash"]), {"status": "done", "row": row})
    store.write(store.record_path("k3"), {"status": "failed", "error": "ValueError: boom"})
    return rows


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_results_writes_exactly_the_results_row_columns_then_metrics(tmp_path, capsys, fmt):
    _fake_sweep(tmp_path / "out")
    target = tmp_path / f"table.{fmt}"
    code, out, _ = run(["results", str(tmp_path / "out"), "--format", fmt, "--out", str(target)], capsys)
    assert code == 0 and "2 rows" in out
    frame = pd.read_csv(target) if fmt == "csv" else pd.read_parquet(target)
    assert list(frame.columns) == [*RESULT_COLUMNS, "acc", "mcc"]
    assert list(frame["checkpoint"]) == ["a", "b"]
    assert frame["tokens"].isna().all() and pd.isna(frame.loc[0, "subset_seed"])


def test_status_counts_done_running_failed_pending(tmp_path, capsys):
    _fake_sweep(tmp_path / "out")
    code, out, _ = run(["sweep", "status", str(tmp_path / "out")], capsys)
    assert code == 0
    assert "done: 2" in out and "failed: 1" in out and "ValueError: boom" in out


def test_status_shows_each_worker_and_a_dead_one_as_lost(tmp_path, capsys):
    import socket

    _fake_sweep(tmp_path / "out")
    store = Store(tmp_path / "out")
    dead = {"host": socket.gethostname(), "pid": 2**22 + 1, "state": "running", "cell": "a cola D=16 seed=0"}
    store.write(tmp_path / "out" / "workers" / "1.json", {"name": "1", "loaded": ["a"], "done": 3, **dead})
    store.write(
        tmp_path / "out" / "workers" / "0.json", {**dead, "name": "0", "state": "finished", "cell": None}
    )
    code, out, _ = run(["sweep", "status", str(tmp_path / "out")], capsys)
    assert code == 0 and "workers: 2" in out
    first, second = (line.strip() for line in out.split("workers: 2")[1].strip().splitlines())
    assert first.startswith("worker 0") and " finished " in first
    assert second.startswith("worker 1") and "lost  a cola D=16 seed=0" in second and "loaded a" in second


def test_results_and_status_refuse_a_folder_that_is_not_a_sweep(tmp_path, capsys):
    for command in (["results", str(tmp_path / "nope")], ["sweep", "status", str(tmp_path)]):
        code, _, err = run(command, capsys)
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    code, _, err = run(["results", str(tmp_path), "--format", "xlsx"], capsys)
    assert code == 2 and "--format must be one of parquet, csv" in err


def test_loss_prints_nats_per_token(capsys):
    corpus = FIXTURES / "sweep" / "loss_corpus.txt"
    code, out, _ = run(
        [
            "loss",
            str(TINY_LLAMA / "gqa_tied"),
            "--corpus",
            str(corpus),
            "--tokens",
            "100",
            "--seq-len",
            "64",
            "--batch-size",
            "2",
        ],
        capsys,
    )
    assert code == 0 and "nats/token over 100 tokens" in out
    assert 0 < float(out.split()[1]) < 12


def test_loss_with_a_missing_corpus_exits_2(tmp_path, capsys):
    code, _, err = run(["loss", str(TINY_LLAMA / "gqa_tied"), "--corpus", str(tmp_path / "none.txt")], capsys)
    assert code == 2 and "loss corpus not found" in err


def test_loss_in_bits_per_byte_is_the_same_nll_over_the_bytes(capsys):
    args = ["loss", str(TINY_LLAMA / "gqa_tied"), "--corpus", str(FIXTURES / "sweep" / "loss_corpus.txt")]
    args += ["--tokens", "100", "--seq-len", "64"]
    code, nats, _ = run(args, capsys)
    code_bytes, bits, _ = run([*args, "--unit", "bits-per-byte"], capsys)
    assert code == code_bytes == 0 and "bits/byte over 100 tokens, " in bits
    n_bytes = int(bits.split(" tokens, ")[1].split()[0])
    assert float(bits.split()[1]) == pytest.approx(float(nats.split()[1]) * 100 / (np.log(2) * n_bytes), rel=1e-5)
    code, _, err = run([*args, "--unit", "bits"], capsys)
    assert code == 2 and "unit" in err and "bits-per-byte" in err
