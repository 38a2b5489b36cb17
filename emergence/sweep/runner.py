"""Execute a sweep's cells: loop, claim, compute, record; resume, share work, retry failures.

One process works through whole checkpoints (which ones: :mod:`emergence.sweep.assign`), holding the
checkpoint's claim while it runs its cells in plan order, loss cell first, so a checkpoint is loaded
once for all its cells and the jitted steps compile once per shape for the whole run. A cell with a record is
skipped (a failed one unless ``retry_failed``, and then only a failure recorded before this run
began); otherwise the runner claims it (:mod:`emergence.sweep.store`) or moves on if a live runner
holds it, computes it, and writes its record — the commit point — before releasing the claim.
A runner killed at any instant leaves no record and a lock whose dead owner makes it stale, so the
next runner redoes exactly the unfinished cells. When its own cells are done a runner waits for cells
claimed by others, taking over any whose claim goes stale, so the sweep ends complete.

Each checkpoint is loaded onto its cells' mesh (the sweep's ``mesh`` or its own), where they are
finetuned and evaluated. In a multi-host job (``mesh.distributed``) process 0 is the runner above
and the other processes compute each cell it announces with it, writing nothing
(:mod:`emergence.sweep.multihost`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
from flax import nnx

from emergence.config import to_dict
from emergence.models.global_arrays import mesh_of
from emergence.results_table import RESULT_COLUMNS
from emergence.sweep import multihost
from emergence.sweep.assign import CheckpointGroup, blocks, checkpoint_groups, preference, shard
from emergence.sweep.cell import CellLog, results_row, run_cell
from emergence.sweep.config import SweepConfig, TokenizerMismatch, check_tokenizer, tokenizer_fingerprint
from emergence.sweep.plan import Cell, LossCell, expand
from emergence.sweep.store import HOST, Store, read_json
from emergence.sweep.workers import WorkerState


@dataclass
class RunReport:
    total: int  # task cells in this runner's shard (every cell for a worker)
    done_here: int = 0
    failed_here: int = 0
    skipped: int = 0  # finished or failed before this run
    started: float = 0.0  # time.perf_counter() when the run started (for the ETA)
    # labels of the shard's cells recorded as failed when the run ended (here or by an earlier run):
    # the command exits 1 while any is left, so a script never takes a partial sweep for a whole one
    failed_cells: list[str] = field(default_factory=list)


def code_version() -> str:
    """Package version + git commit (``EMERGENCE_CODE_VERSION`` overrides, e.g. in a container without git)."""
    if os.environ.get("EMERGENCE_CODE_VERSION"):
        return os.environ["EMERGENCE_CODE_VERSION"]
    from emergence import __version__ as package

    git = ["git", "-C", str(Path(__file__).resolve().parents[2]), "rev-parse", "--short", "HEAD"]
    try:
        sha = subprocess.run(git, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return package
    return f"{package}+g{sha}" if sha else package


class Runner:
    def __init__(self, cfg: SweepConfig, *, echo: Callable[[str], None] = print):
        self.cfg = cfg
        self.store = Store(cfg.out, cfg.lock_ttl)
        self.echo = echo
        # Waiting for other runners: start polling fast, back off to ttl/10 (at most 10 s) while idle.
        self.max_poll = min(10.0, max(0.2, cfg.lock_ttl / 10))
        self.version = code_version()
        self._loaded: tuple[str, Any] | None = None
        self._first_tokenizer: tuple[str, str] | None = None  # (checkpoint, fingerprint) of this run's first load
        self._state: WorkerState | None = None
        self.writes = True  # False in the processes of a multi-host job but the first
        self._positions: dict[tuple[bool, str], int] | None = None  # where a multi-host job's cells are in the plan

    # ------------------------------------------------------------------ the loop
    def run(
        self,
        *,
        shard_spec: tuple[int, int] = (0, 1),
        worker: tuple[int, int] | None = None,
        retry_failed: bool = False,
        retry_before: float | None = None,
        wait: bool = True,
    ) -> RunReport:
        """Run this runner's cells: the block of ``shard_spec``, or, as ``worker`` i of n, its own block
        and then checkpoints left by the others. With ``retry_failed``, cells recorded as failed before
        ``retry_before`` (default: now) run again, so concurrent workers retry each failure once."""
        started = time.perf_counter()
        if self.cfg.mesh.distributed:
            from emergence.train.mesh import start_distributed

            start_distributed()  # before expand, whose precision() starts a JAX backend
        cells = expand(self.cfg)
        mine = cells if worker else shard(cells, *shard_spec)
        position, count = worker or (0, 1)
        groups = checkpoint_groups(mine)
        owned = blocks(groups, count)
        group_of = {g.checkpoint_id: i for i, g in enumerate(groups)}
        report = RunReport(total=len(mine), started=started)
        planned = [c for g in groups for c in g.cells]
        if self.cfg.mesh.distributed and (hosts := jax.process_count()) > 1:
            multihost.check_same_plan([c.key for c in planned])
            multihost.check_meshes_span_hosts(self.cfg)
            self._positions = {(isinstance(c, LossCell), c.key): i for i, c in enumerate(planned)}
            self.writes = jax.process_index() == 0  # process 0 leads
            if not self.writes:
                return self._follow(planned, report, hosts)
        self._write_manifest(cells)
        self.store.clean_stale_locks()  # a killed runner's claims are taken over
        cutoff = (time.time() if retry_before is None else retry_before) if retry_failed else None

        def still_open(cells: list[Cell | LossCell]) -> list[Cell | LossCell]:
            # a closed cell never reopens (records are not deleted; this run's failures are not
            # retried), so each pass rereads only the records of the cells still open
            return [c for c in cells if _is_open(self._record(c), cutoff)]

        if self.cfg.compile_cache:
            jax.config.update("jax_compilation_cache_dir", self.cfg.compile_cache)
        pending = still_open(planned)
        todo = sum(isinstance(c, Cell) for c in pending)
        report.skipped = len(mine) - todo
        where = f"worker {position}/{count}" if worker else f"shard {shard_spec[0]}/{shard_spec[1]}"
        self.echo(
            f"sweep {self.cfg.name}: {len(mine)} cells in {where}, "
            f"{report.skipped} already recorded, {todo} to do -> {self.cfg.out}"
        )
        name = str(position) if worker else f"{HOST}-{os.getpid()}"
        self._state = WorkerState(self.store, name, worker=f"{position}/{count}" if worker else None)
        end = "stopped"  # a preemption (SystemExit) or a fatal error
        try:
            delay = 0.2
            while pending:
                open_cells = Counter(group_of[c.checkpoint_id] for c in pending)
                progressed = any(  # one checkpoint per pass: the next is chosen from fresh counts
                    self._work_on(groups[g], pending, report, cutoff)
                    for g in preference(owned, position, open_cells)
                )
                pending = still_open(pending)
                # the rest are held by live runners: wait for them to finish or for their claims to expire
                if pending and not progressed and wait:
                    if self._state.state["cell"] is not None:
                        self._state.update(checkpoint=None, cell=None)  # waiting for other runners
                    delay = min(delay * 2, self.max_poll)
                    time.sleep(delay)
                elif pending and not progressed:
                    break
                else:
                    delay = 0.2
            end = "finished"
        finally:
            if self._positions is not None:
                multihost.broadcast_position(multihost.DONE)  # the other processes stop following
            self._state.close(end, done=report.done_here, failed=report.failed_here)
        self.store.clean_stale_locks()
        report.failed_cells = [
            c.label() for c in planned if (self._record(c) or {}).get("status") == "failed"
        ]
        failed = len(report.failed_cells)
        self.echo(
            f"finished: {report.done_here} cells done and {report.failed_here} failed here in "
            f"{_fmt(time.perf_counter() - started)}; shard has {failed} failed cell(s)"
            + (" (rerun with --retry-failed)" if failed else "")
        )
        return report

    def _work_on(
        self, group: CheckpointGroup, pending: list[Cell | LossCell], report: RunReport, cutoff: float | None
    ) -> bool:
        """Run the pending cells of ``group`` under the checkpoint's claim; False if another runner
        holds the checkpoint or every cell of it."""
        claim = self.store.claim(group.claim_name)
        if claim is None:
            return False
        with claim:
            cells = [c for c in pending if c.checkpoint_id == group.checkpoint_id]
            return sum(self._try_cell(cell, report, cutoff) for cell in cells) > 0

    def _follow(self, planned: list[Cell | LossCell], report: RunReport, hosts: int) -> RunReport:
        """A multi-host job's process other than the first: compute each cell process 0 announces, with it."""
        self.echo(f"sweep {self.cfg.name}: process {jax.process_index()} of {hosts} follows process 0")
        while (position := multihost.broadcast_position()) != multihost.DONE:
            self._compute(planned[position], attempts=0)
        return report

    def _write_manifest(self, cells: list[Cell]) -> None:
        manifest = {
            "name": self.cfg.name,
            "config": to_dict(self.cfg),
            "cells": [{"key": c.key, "index": i, "label": c.label()} for i, c in enumerate(cells)],
        }
        path = self.store.out / "sweep.json"
        if read_json(path) != manifest:
            self.store.write(path, manifest)

    def _record(self, cell: Cell | LossCell) -> dict | None:
        if isinstance(cell, LossCell):
            return self.store.loss_record(cell.key)
        return self.store.record(cell.key)

    def _try_cell(self, cell: Cell | LossCell, report: RunReport, retry_before: float | None) -> bool:
        """Claim, compute and record ``cell``. False if another runner holds or finished it."""
        is_loss = isinstance(cell, LossCell)
        claim = self.store.claim(f"loss-{cell.key}" if is_loss else cell.key)
        if claim is None:
            return False
        with claim:
            rec = self._record(cell)  # finished by another runner between our check and claim
            if not _is_open(rec, retry_before):
                return False
            attempts = (rec or {}).get("attempts", 0) + 1
            # one write per cell: the counts of the cells before this one, and where the worker is
            where = {"checkpoint": cell.checkpoint_id, "cell": cell.label()}
            self._state.update(**where, done=report.done_here, failed=report.failed_here)
            if self._positions is not None:  # the other processes compute it too
                multihost.broadcast_position(self._positions[(is_loss, cell.key)])
            record, cleanup = self._compute(cell, attempts)
            if not claim.owned():
                self.echo(f"  lost the claim on {cell.key} (it went stale); its result is discarded")
                return True
            path = self.store.loss_path(cell.key) if is_loss else self.store.record_path(cell.key)
            self.store.write(path, record)
            for folder in cleanup:
                shutil.rmtree(folder, ignore_errors=True)
        if is_loss:
            done = record["status"] == "done"
            what = f"{record['loss']:.4f} nats/token" if done else f"FAILED: {record['error'][:160]}"
            self.echo(f"  {cell.label()}: {what}")
        else:
            report.done_here += record["status"] == "done"
            report.failed_here += record["status"] == "failed"
            self._progress(cell, record, report)
        return True

    # ------------------------------------------------------------------ one cell
    def _compute(self, cell: Cell | LossCell, attempts: int) -> tuple[dict, list[Path]]:
        """The cell's record, done or failed (the error's traceback goes to a task cell's run log),
        and the folders to delete once it is written."""
        run_log = self.store.work_dir(cell.key) / "run.log" if self.writes else None
        log = None if isinstance(cell, LossCell) else CellLog(run_log)
        try:
            fields, cleanup = self._loss(cell) if log is None else self._task(cell, log)
            record = {"status": "done", "key": cell.key, **fields}
        except TokenizerMismatch:  # fatal for the run, not this cell's failure
            raise
        except Exception as err:  # noqa: BLE001 - a failed cell is recorded, the sweep goes on
            message = " ".join(str(err).split()) or type(err).__name__
            if log is not None:
                log(f"failed: {type(err).__name__}: {message}\n{traceback.format_exc()}")
            error = f"{type(err).__name__}: {message}"
            record = {"status": "failed", "key": cell.key, "error": error, "attempts": attempts}
            record["config"], cleanup = cell.resolved, []
        finally:
            if log is not None:
                log.close()
        return {**record, "host": HOST, "pid": os.getpid(), "finished": time.time()}, cleanup

    def _task(self, cell: Cell, log: CellLog) -> tuple[dict, list[Path]]:
        """Evaluate (after finetuning) and write the per-example records."""
        from emergence.eval.evaluate import write_records

        work = self.store.work_dir(cell.key)
        t0 = time.perf_counter()
        log(f"start {cell.label()} key={cell.key} host={HOST} pid={os.getpid()}")
        base, load = self._base(cell)
        mesh = mesh_of(nnx.state(base.model))
        log("model on " + ("1 device" if mesh is None else " ".join(f"{k}={v}" for k, v in mesh.shape.items())))
        t_cell = time.perf_counter()
        outcome = run_cell(cell, self.cfg, base, work, log)
        seconds = time.perf_counter() - t_cell
        timing = {"load": load, **outcome.timings, "cell": seconds, "total": time.perf_counter() - t0}
        if self.writes:
            write_records(work / "records.jsonl", outcome.records)
        log(f"done in {seconds:.2f}s (train {timing['train']:.2f}s, eval {timing['eval']:.2f}s)")
        row = results_row(cell, base, outcome, seconds, self.version)
        fields = {"row": row, "config": cell.resolved, "timings": timing, "train": outcome.train}
        return fields, outcome.cleanup

    def _loss(self, cell: LossCell) -> tuple[dict, list[Path]]:
        """The checkpoint's pretraining loss, with its tokenizer's fingerprint for :meth:`_base`."""
        from emergence.eval.pretrain_loss import corpus_loss

        base, load = self._base(cell)
        res = corpus_loss(base, **self.cfg.loss.scoring())
        fields = {"checkpoint": cell.checkpoint_id, "loss": res.loss, "n_tokens": res.n_tokens}
        fields.update(n_bytes=res.n_bytes, bits_per_byte=res.bits_per_byte)
        fields.update(seq_len=res.seq_len, seconds=res.seconds, timings={"load": load, "loss": res.seconds})
        fields.update(tokenizer=tokenizer_fingerprint(base.tokenizer), identity=cell.resolved)
        return fields, []

    def _base(self, cell: Cell | LossCell):
        """The checkpoint's base model, loaded once for all of its cells.

        A hub or GGUF checkpoint's tokenizer is only known once loaded (the config checks local
        ones), so every load is checked against the fingerprints in the loss records and against this
        runner's first load (a checkpoint whose loss cell failed has no fingerprint on disk)."""
        if self._loaded and self._loaded[0] == cell.checkpoint_id:
            return self._loaded[1], 0.0
        from emergence.models.registry import load_model
        from emergence.train.mesh import build_mesh, placement

        self._loaded = None  # free the previous checkpoint first
        t0 = time.perf_counter()
        dtype, param_dtype = self.cfg.precision()
        mesh = build_mesh(self.cfg.checkpoint_mesh(cell.checkpoint))
        # on the mesh its finetuning runs on, so few-shot and finetuned cells share compiled programs
        loaded = load_model(cell.checkpoint.model, dtype=dtype, param_dtype=param_dtype, placement=placement(mesh))
        fp = tokenizer_fingerprint(loaded.tokenizer)
        known = [self._first_tokenizer] if self._first_tokenizer else []
        for path in sorted(self.store.loss_dir.glob("*.json")):
            other = read_json(path) or {}
            known.append((other.get("checkpoint", path.stem), other.get("tokenizer", fp)))
        check_tokenizer(cell.checkpoint_id, fp, known)
        self._first_tokenizer = self._first_tokenizer or (cell.checkpoint_id, fp)
        self._loaded = (cell.checkpoint_id, loaded)
        seconds = time.perf_counter() - t0
        self.echo(f"loaded checkpoint {cell.checkpoint_id} in {seconds:.1f}s")
        if self._state is not None:
            self._state.update(loaded=[*self._state.state["loaded"], cell.checkpoint_id])
        return loaded, seconds

    # ------------------------------------------------------------------ progress
    def _progress(self, cell: Cell, record: dict, report: RunReport) -> None:
        finished = report.done_here + report.failed_here
        left = report.total - report.skipped - finished
        rate = (time.perf_counter() - report.started) / max(finished, 1)
        if record["status"] == "done":
            row = record["row"]
            metrics = ", ".join(
                f"{k}={row[k]:.3f}" for k in row if k not in RESULT_COLUMNS and isinstance(row[k], float)
            )
            what = f"{metrics}  {record['timings'].get('cell', 0):.1f}s"
        else:
            what = f"FAILED: {record['error'][:160]}"
        self.echo(
            f"[{finished}/{report.total - report.skipped}] {cell.label()}  {what}  "
            f"(ETA {_fmt(rate * max(left, 0))})"
        )


def _is_open(record: dict | None, retry_before: float | None) -> bool:
    """Not yet recorded, or recorded as failed before ``retry_before`` (None: failures stay closed)."""
    status = (record or {}).get("status")
    if status == "failed" and retry_before is not None:
        return record.get("finished", 0.0) < retry_before
    return status is None


def _fmt(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")

