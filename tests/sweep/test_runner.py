"""Running sweeps: end to end, killed and resumed, shared by concurrent runners, stale claims, failures.

The reference is one uninterrupted run of the CI sweep (configs/sweeps/tiny.yaml: 2 tiny checkpoints ×
CoLA × budgets {0, 16, 64} × 2 seeds = 10 cells) in a subprocess. Runner subprocesses share a JAX
persistent compilation cache, so only the first one compiles (both fixtures: tests/sweep/conftest.py).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest

from emergence.results_table import RESULT_COLUMNS
from emergence.sweep.config import load_sweep_config
from emergence.sweep.plan import expand, with_loss_cells
from emergence.sweep.results import incomplete_cells, results_table, sweep_status
from emergence.sweep.runner import Runner
from emergence.sweep.store import Store
from tests.sweep.helpers import (
    EMERGENCE,
    REPO,
    TINY_CONFIG,
    comparable,
    run_cli,
    tiny_raw,
    write_config,
)


def test_tiny_sweep_end_to_end(reference):
    out, table, stdout = reference
    cells = expand(load_sweep_config(TINY_CONFIG))
    assert list(table.columns) == [*RESULT_COLUMNS, "acc", "mcc"]
    assert len(table) == 10 and set(table["config_hash"]) == {c.key for c in cells}
    assert sorted(table["checkpoint"].unique()) == ["tiny-tied", "tiny-untied"]
    assert sorted(table["budget"].unique()) == [0, 16, 64]
    fewshot = table[table["budget"] == 0]
    assert fewshot["subset_seed"].isna().all() and set(fewshot["method"]) == {"none"}
    assert set(table.loc[table["budget"] > 0, "method"]) == {"lora"}
    assert (table["n_eval"] == 12).all() and table["tokens"].isna().all() and table["flops"].isna().all()
    assert (table.groupby("checkpoint")["pretrain_loss"].nunique() == 1).all()  # one loss per checkpoint
    assert np.allclose(table["acc"], table["n_correct"] / table["n_eval"])
    for key in table["config_hash"]:
        work = out / "cells" / key
        lines = (work / "records.jsonl").read_text().splitlines()
        assert len(lines) == 12 and {"id", "correct"} <= set(json.loads(lines[0]))
        assert "done in" in (work / "run.log").read_text()
    assert "(ETA" in stdout and "[10/10]" in stdout
    status = sweep_status(out)
    assert (status.total, status.done, status.failed, status.running, status.pending) == (10, 10, 0, 0, 0)


def test_rerun_skips_finished_cells(reference):
    out, table, _ = reference
    lines = []
    report = Runner(load_sweep_config(TINY_CONFIG, [f"out={out}"]), echo=lines.append).run()
    assert (report.skipped, report.done_here) == (10, 0)
    pd.testing.assert_frame_equal(results_table(out), table)


def _runs_until_progress(out, env, rng, cells_before_kill):
    """Start a runner, let it report ``cells_before_kill`` cells, wait a random moment, SIGKILL it."""
    proc = subprocess.Popen(
        [*EMERGENCE, "sweep", "run", str(TINY_CONFIG), f"out={out}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = 0
    for line in proc.stdout:
        seen += line.startswith("[")
        if seen >= cells_before_kill or line.startswith("finished"):
            break
    time.sleep(rng.uniform(0.0, 0.1))  # lands anywhere in the next cell: mid-training, mid-eval, mid-write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()


def _assert_no_partial_records(out):
    for path in (out / "cells").glob("*.json"):
        record = json.loads(path.read_text())  # a torn write would not parse
        # every column but pretrain_loss, which the table joins from the checkpoint's loss cell
        assert record["status"] == "done" and set(RESULT_COLUMNS) - set(record["row"]) == {"pretrain_loss"}


def test_sigkill_at_random_points_then_resume_gives_the_uninterrupted_table(reference, env, tmp_path):
    rng = random.Random(20240605)
    out = tmp_path / "out"
    for cells_before_kill in (1, 2, 2):
        _runs_until_progress(out, env, rng, cells_before_kill)
        _assert_no_partial_records(out)
    finished_before = len(list((out / "cells").glob("*.json")))
    assert 0 < finished_before < 10, "the kills should interrupt the sweep part way"
    proc = run_cli(["sweep", "run", str(TINY_CONFIG), f"out={out}"], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{finished_before} already recorded" in proc.stdout
    # the killed runners' claims (cell and loss locks) are gone, and the table is whole: exit 0
    assert sorted(p.name for p in (out / "cells").glob("*.lock*")) == []
    assert run_cli(["results", str(out), "--format", "csv"], env).returncode == 0
    table = results_table(out)
    assert table["config_hash"].is_unique
    pd.testing.assert_frame_equal(comparable(table), comparable(reference[1]))
    for key in table["config_hash"]:  # per example too: resumed finetunes equal uninterrupted ones
        mine, theirs = (_loglikelihoods(root / "cells" / key) for root in (out, reference[0]))
        assert mine == theirs, f"cell {key}: per-example log-likelihoods differ after resume"


def _loglikelihoods(work):
    return [json.loads(line)["loglikelihoods"] for line in (work / "records.jsonl").read_text().splitlines()]


def test_two_concurrent_runners_do_every_cell_exactly_once(reference, env, tmp_path):
    out = tmp_path / "out"
    cmd = [*EMERGENCE, "sweep", "run", str(TINY_CONFIG), f"out={out}"]
    procs = [
        subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    table = results_table(out)
    pd.testing.assert_frame_equal(comparable(table), comparable(reference[1]))
    for key in table["config_hash"]:
        starts = [
            line for line in (out / "cells" / key / "run.log").read_text().splitlines() if " start " in line
        ]
        assert len(starts) == 1, f"cell {key} was started {len(starts)} times"
    done_by = [text.count("cola D=") for text in outputs]
    assert sum(done_by) == 10
    loads = [
        line.split()[2]
        for text in outputs
        for line in text.splitlines()
        if line.startswith("loaded checkpoint")
    ]
    assert sorted(loads) == ["tiny-tied", "tiny-untied"]  # each checkpoint loaded by one of the two
    for key in table["config_hash"]:  # each process ran its own mix of cells from one loaded base model
        assert _loglikelihoods(out / "cells" / key) == _loglikelihoods(reference[0] / "cells" / key)


def _fewshot_only(tmp_path, **changes):
    raw = tiny_raw()
    raw["checkpoints"] = raw["checkpoints"][:1]
    raw["budgets"] = [0]
    raw["out"] = str(tmp_path / "out")
    raw["lock_ttl"] = 2
    raw.update(changes)
    return load_sweep_config(write_config(tmp_path / "s.yaml", raw))


def test_a_lock_left_by_a_dead_runner_expires_and_its_cell_is_taken_over(tmp_path):
    cfg = _fewshot_only(tmp_path)
    (cell,) = expand(cfg)
    lock = tmp_path / "out" / "cells" / f"{cell.key}.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": "a-host-that-died", "pid": 1, "token": "gone"}))
    lines: list[str] = []
    started = time.monotonic()
    report = Runner(cfg, echo=lines.append).run()  # waits for the claim to go stale (2 s), then takes it
    assert report.done_here == 1 and time.monotonic() - started >= 1.5
    assert not lock.exists()
    assert sweep_status(cfg.out).done == 1


def test_a_failed_cell_is_recorded_and_retried_only_when_asked(tmp_path):
    empty = tmp_path / "no_benchmarks"
    (empty / "cola").mkdir(parents=True)
    broken = _fewshot_only(tmp_path, eval={**tiny_raw()["eval"], "data_dir": str(empty)})
    report = Runner(broken, echo=lambda _: None).run()
    assert report.failed_here == 1
    status = sweep_status(broken.out)
    assert status.failed == 1 and "in_domain_dev.tsv" in status.failures[0][2]
    fixed = _fewshot_only(tmp_path)  # same cell key: the data folder is not part of a cell's identity
    assert Runner(fixed, echo=lambda _: None).run().skipped == 1
    report = Runner(fixed, echo=lambda _: None).run(retry_failed=True)
    assert report.done_here == 1 and sweep_status(fixed.out).done == 1


def test_retry_failed_retries_only_failures_recorded_before_the_run_began(tmp_path):
    """Concurrent workers started with --retry-failed share one cutoff: a failure one of them records
    during the run is not retried again by the others."""
    empty = tmp_path / "no_benchmarks"
    (empty / "cola").mkdir(parents=True)
    broken = _fewshot_only(tmp_path, eval={**tiny_raw()["eval"], "data_dir": str(empty)})
    before = time.time()
    assert Runner(broken, echo=lambda _: None).run().failed_here == 1
    fixed = _fewshot_only(tmp_path)
    late = Runner(fixed, echo=lambda _: None).run(retry_failed=True, retry_before=before)
    assert (late.skipped, late.done_here, len(late.failed_cells)) == (1, 0, 1)
    assert Runner(fixed, echo=lambda _: None).run(retry_failed=True).done_here == 1


def test_a_finetuned_cell_records_its_learning_curve_when_asked(tmp_path):
    """``finetune.eval_every``: step 0 scores the base as the few-shot cell does (same prompt, same
    split here), and the last point scores the finished model as the cell's own evaluation does."""
    raw = tiny_raw()
    raw.update(
        checkpoints=raw["checkpoints"][:1], budgets=[0, 16], subset_seeds=[0], out=str(tmp_path / "out")
    )
    raw["finetune"]["eval_every"] = 1
    cfg = load_sweep_config(write_config(tmp_path / "s.yaml", raw))
    assert Runner(cfg, echo=lambda _: None).run().done_here == 2
    records = [json.loads(p.read_text()) for p in (tmp_path / "out" / "cells").glob("*.json")]
    fewshot, tuned = sorted(records, key=lambda r: r["row"]["budget"])
    curve = tuned["train"]["curve"]
    assert [p["step"] for p in curve] == list(range(tuned["train"]["steps"] + 1))
    metrics = ("acc", "mcc")
    assert {m: curve[0]["eval"][m] for m in metrics} == pytest.approx({m: fewshot["row"][m] for m in metrics})
    assert {m: curve[-1]["eval"][m] for m in metrics} == pytest.approx({m: tuned["row"][m] for m in metrics})
    assert "curve" not in fewshot["train"] and tuned["config"]["finetune_curve"] == {
        "every": 1,
        "split": "validation",
    }


def test_a_fatal_error_stops_the_run_and_keeps_the_cells_recorded_before_it(tmp_path, monkeypatch):
    """A tokenizer mismatch found when a checkpoint loads is fatal for the run, not a cell's failure:
    the run stops, the cells finished before it keep their records, and no claim is left behind."""
    from emergence.sweep.runner import TokenizerMismatch

    raw = tiny_raw()
    raw.update(budgets=[0], out=str(tmp_path / "out"))
    cfg = load_sweep_config(write_config(tmp_path / "s.yaml", raw))
    load_base = Runner._base

    def second_checkpoint_fails(self, cell):
        if cell.checkpoint_id == "tiny-untied":
            raise TokenizerMismatch("checkpoint 'tiny-untied' has a different tokenizer (test)")
        return load_base(self, cell)

    monkeypatch.setattr(Runner, "_base", second_checkpoint_fails)
    with pytest.raises(TokenizerMismatch):
        Runner(cfg, echo=lambda _: None).run()
    status = sweep_status(cfg.out)
    assert (status.done, status.failed, status.running) == (1, 0, 0)
    assert not list((tmp_path / "out" / "cells").glob("*.lock"))


def test_a_cell_whose_adapter_cannot_be_written_is_recorded_as_failed(tmp_path, monkeypatch):
    """A finetuned cell is never recorded as done without its adapter: a failed write is the cell's
    failure (retried with --retry-failed), and its claim is released."""
    from emergence.train import adapters

    raw = tiny_raw()
    raw.update(checkpoints=raw["checkpoints"][:1], budgets=[16], subset_seeds=[0], out=str(tmp_path / "out"))
    cfg = load_sweep_config(write_config(tmp_path / "s.yaml", raw))

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(adapters, "save_lora_adapter", disk_full)
    report = Runner(cfg, echo=lambda _: None).run()
    assert report.failed_here == 1 and len(report.failed_cells) == 1
    status = sweep_status(cfg.out)
    assert (status.done, status.failed, status.running) == (0, 1, 0)
    assert "No space left on device" in status.failures[0][2]
    assert not list((tmp_path / "out" / "cells").glob("*.lock"))


def test_the_pretraining_loss_is_a_cell_of_its_own_joined_into_the_rows(tmp_path):
    """Task cells do not wait on their checkpoint's loss: while another runner holds the loss cell
    they finish, and the table lacks only the loss; once the loss cell is recorded, its loss is the
    ``pretrain_loss`` of every row of its checkpoint."""
    cfg = _fewshot_only(tmp_path)
    (cell,) = expand(cfg)
    loss, task = with_loss_cells([cell])
    assert task is cell and loss.label() == "tiny-tied pretraining loss"
    store = Store(cfg.out, cfg.lock_ttl)
    held = store.claim(f"loss-{loss.key}")  # a live runner computing the loss
    report = Runner(cfg, echo=lambda _: None).run(wait=False)
    held.release()
    assert report.done_here == 1 and store.loss_record(loss.key) is None
    assert "pretrain_loss" not in store.record(cell.key)["row"]
    assert [line.split()[:2] for line in incomplete_cells(cfg.out)] == [["pretraining", "loss"]]
    lines: list[str] = []
    assert Runner(cfg, echo=lines.append).run().skipped == 1
    recorded = store.loss_record(loss.key)
    assert recorded["status"] == "done" and recorded["identity"] == loss.resolved
    assert any("tiny-tied pretraining loss:" in line for line in lines)
    assert incomplete_cells(cfg.out) == []
    assert results_table(cfg.out)["pretrain_loss"].tolist() == [recorded["loss"]]


def test_a_sweep_in_bits_per_byte_adds_that_column_and_keeps_every_key(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    nats = _fewshot_only(tmp_path / "a")
    cfg = _fewshot_only(tmp_path / "b", loss={**tiny_raw()["loss"], "unit": "bits-per-byte"})
    assert [c.key for c in expand(cfg)] == [c.key for c in expand(nats)]  # both units are always measured
    Runner(cfg, echo=lambda _: None).run()
    (loss,) = Store(cfg.out).loss_dir.glob("*.json")
    recorded = json.loads(loss.read_text())
    assert recorded["bits_per_byte"] == pytest.approx(
        recorded["loss"] * recorded["n_tokens"] / (np.log(2) * recorded["n_bytes"])
    )
    table = results_table(cfg.out)
    assert list(table.columns[4:6]) == ["pretrain_loss", "pretrain_bits_per_byte"]
    assert table["pretrain_bits_per_byte"].tolist() == [recorded["bits_per_byte"]]
    assert table["pretrain_loss"].tolist() == [recorded["loss"]]
