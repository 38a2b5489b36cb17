"""Execute a sweep's cells: claim, compute, record atomically; resume, share work, retry failures.

One process loops over its cells (all, or every n-th with ``--shard i/n``) in plan order, so a
checkpoint is loaded once for all its cells and the jitted steps (keyed on the model's graph) compile
once per shape for the whole run; while it works on one checkpoint, the next hub checkpoint downloads
(:mod:`emergence.sweep.prefetch`). For each cell it: skips it if a record exists (done, or failed
unless ``retry_failed``); claims it (:mod:`emergence.sweep.store`), or moves on if a live runner holds
it; computes the checkpoint's pretraining loss once (cached in OUT/loss, under its own claim); runs
the cell (:mod:`emergence.sweep.cell`); then hands the cell to a background committer
(:mod:`emergence.sweep.committer`), which writes the per-example records, then the cell record — the
commit point — and releases the claim while the next cell computes. A runner killed at any instant
leaves no record and a lock whose dead owner makes it stale, so the next runner redoes exactly the
unfinished cells. When its own cells are done a runner waits for cells claimed by others, taking over
any whose claim goes stale, so the sweep ends complete.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emergence.config import to_dict
from emergence.errors import UserError
from emergence.results_table import RESULT_COLUMNS
from emergence.sweep.cell import CellLog, results_row, run_cell
from emergence.sweep.committer import CommitFailed, Committer
from emergence.sweep.config import SweepConfig, tokenizer_fingerprint
from emergence.sweep.plan import Cell, expand, shard, stable_hash
from emergence.sweep.prefetch import Prefetcher
from emergence.sweep.store import HOST, Store, read_json, write_json


class TokenizerMismatch(UserError):
    """Checkpoints of one sweep with different tokenizers: a config error, fatal for the whole run."""


@dataclass(frozen=True)
class _Finished:
    """A computed cell on its way to the committer: what :meth:`Runner._commit` writes."""

    cell: Cell
    claim: Any  # emergence.sweep.store.Claim, held until the record is written
    attempts: int  # this attempt's number (a failed record counts them)
    record: dict
    timing: dict[str, float]
    records: list[dict] | None  # per-example records; None when the cell failed
    log: CellLog


@dataclass
class RunReport:
    total: int  # cells in this runner's shard
    done_here: int = 0
    failed_here: int = 0
    skipped: int = 0  # finished or failed before this run
    seconds: float = 0.0
    timings: list[dict[str, float]] = field(default_factory=list)
    started: float = 0.0  # time.perf_counter() when the run started (for the ETA)
    # labels of the shard's cells recorded as failed when the run ended (here or by an earlier run):
    # the command exits 1 while any is left, so a script never takes a partial sweep for a whole one
    failed_cells: list[str] = field(default_factory=list)


def code_version() -> str:
    """Package version + git commit (``EMERGENCE_CODE_VERSION`` overrides, e.g. in a container without git)."""
    if os.environ.get("EMERGENCE_CODE_VERSION"):
        return os.environ["EMERGENCE_CODE_VERSION"]
    from importlib.metadata import PackageNotFoundError, version

    try:
        __version__ = version("emergence")
    except PackageNotFoundError:
        __version__ = "unknown"
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{sha}" if sha else __version__


class Runner:
    def __init__(self, cfg: SweepConfig, *, echo: Callable[[str], None] = print, poll: float | None = None):
        self.cfg = cfg
        self.store = Store(cfg.out, cfg.lock_ttl)
        self.echo = echo
        # Waiting for other runners: start polling fast, back off to ttl/10 (at most 10 s) while idle.
        self.max_poll = poll if poll is not None else min(10.0, max(0.2, cfg.lock_ttl / 10))
        self.version = code_version()
        self._loaded: tuple[str, Any] | None = None
        self._losses: dict[str, float] = {}  # loss file name -> value, once read or computed
        self._tokenizer: tuple[str, str] | None = None
        self.retry_failed = False
        self._commits: Committer | None = None  # set while run() runs
        self._prefetch = Prefetcher([])

    # ------------------------------------------------------------------ the loop
    def run(
        self, *, shard_spec: tuple[int, int] = (0, 1), retry_failed: bool = False, wait: bool = True
    ) -> RunReport:
        started = time.perf_counter()
        cells = expand(self.cfg)
        mine = shard(cells, *shard_spec)
        self._write_manifest(cells)
        self.store.clean_stale_locks()  # a killed runner's claims (loss locks too) are taken over
        report = RunReport(total=len(mine), started=started)
        attempted: set[str] = set()
        self.retry_failed = retry_failed

        def open_cells() -> list[Cell]:
            out = []
            for cell in mine:
                rec = self.store.record(cell.key)
                status = rec.get("status") if rec else None
                if status == "done" or (status == "failed" and (not retry_failed or cell.key in attempted)):
                    continue
                out.append(cell)
            return out

        if self.cfg.compile_cache:
            import jax

            jax.config.update("jax_compilation_cache_dir", self.cfg.compile_cache)
        pending = open_cells()
        report.skipped = len(mine) - len(pending)
        self.echo(
            f"sweep {self.cfg.name}: {len(mine)} cells in shard {shard_spec[0]}/{shard_spec[1]}, "
            f"{report.skipped} already recorded, {len(pending)} to do -> {self.cfg.out}"
        )
        self._prefetch = Prefetcher([cell.checkpoint.model for cell in pending])
        delay = 0.2
        with Committer() as self._commits:
            while pending:
                progressed = False
                for cell in pending:
                    if self._try_cell(cell, report):
                        attempted.add(cell.key)
                        progressed = True
                self._commits.wait()  # the records open_cells reads are all written
                pending = open_cells()
                # the rest are claimed by live runners: wait for them to finish or for their locks to expire
                if pending and wait:
                    delay = 0.2 if progressed else min(delay * 2, self.max_poll)
                    time.sleep(delay)
                elif pending:
                    break
        self._commits = None
        report.seconds = time.perf_counter() - started
        self.store.clean_stale_locks()
        report.failed_cells = [
            c.label() for c in mine if (self.store.record(c.key) or {}).get("status") == "failed"
        ]
        failed = len(report.failed_cells)
        self.echo(
            f"finished: {report.done_here} cells done and {report.failed_here} failed here in "
            f"{_fmt(report.seconds)}; shard has {failed} failed cell(s)"
            + (" (rerun with --retry-failed)" if failed else "")
        )
        return report

    def _write_manifest(self, cells: list[Cell]) -> None:
        manifest = {
            "name": self.cfg.name,
            "config": to_dict(self.cfg),
            "cells": [{"key": c.key, "index": c.index, "label": c.label()} for c in cells],
        }
        path = self.store.out / "sweep.json"
        if read_json(path) != manifest:
            write_json(path, manifest)

    def _try_cell(self, cell: Cell, report: RunReport) -> bool:
        """Claim and compute ``cell``, then hand it to the background committer. False if another
        runner holds or finished it (or it failed before and is not to be retried)."""
        claim = self.store.claim(cell.key)
        if claim is None:
            return False
        finished: _Finished | None = None
        try:
            rec = self.store.record(cell.key)  # finished by another runner between our check and claim
            status = (rec or {}).get("status")
            if status == "done" or (status == "failed" and not self.retry_failed):
                claim.release()
                return False
            finished = self._execute(cell, claim, (rec or {}).get("attempts", 0) + 1)
            # after the cell's own background writes (its adapter), which must not have failed
            self._commits.submit(functools.partial(self._commit, finished, report))
        except BaseException:
            if finished is not None:
                finished.log.close()
            claim.release()
            raise
        return True

    def _commit(self, done: _Finished, report: RunReport) -> None:
        """Write the cell's per-example records, then its record, then release its claim (in the
        committer's thread: :mod:`emergence.sweep.committer`)."""
        cell, record = done.cell, done.record
        try:
            if done.records is not None:
                from emergence.eval.evaluate import write_records

                try:
                    write_records(self.store.work_dir(cell.key) / "records.jsonl", done.records)
                except Exception as err:  # noqa: BLE001 - recorded as the cell's failure, like a compute error
                    record = self._failure(cell, err, done.log, done.attempts)
            if not done.claim.owned():
                self.echo(f"  lost the claim on {cell.key} (it went stale); its result is discarded")
                return
            cleanup = record.pop("_cleanup", ())
            self.store.write_record(cell.key, record)
            for path in cleanup:
                shutil.rmtree(path, ignore_errors=True)
        finally:
            done.log.close()
            done.claim.release()
        if record["status"] == "done":
            report.done_here += 1
            report.timings.append(done.timing)
        else:
            report.failed_here += 1
        self._progress(cell, record, done.timing, report)

    # ------------------------------------------------------------------ one cell
    def _execute(self, cell: Cell, claim, attempts: int) -> _Finished:
        """Compute the cell (held by ``claim``): its record (done or failed), timings, per-example
        records and open run log, for :meth:`_commit`."""
        work = self.store.work_dir(cell.key)
        log = CellLog(work / "run.log")
        t0 = time.perf_counter()
        timing = {"load": 0.0, "loss": 0.0, "train": 0.0, "eval": 0.0}
        log(f"start {cell.label()} key={cell.key} host={HOST} pid={os.getpid()}")
        try:
            base, t_load = self._base(cell)
            loss, t_loss = self._loss(cell, base)
            timing.update(load=t_load, loss=t_loss)
            t_cell = time.perf_counter()
            outcome = run_cell(cell, self.cfg, base, work, log, background=self._commits.submit)
            seconds = time.perf_counter() - t_cell
            timing.update(outcome.timings, cell=seconds, total=time.perf_counter() - t0)
            record = {
                "status": "done",
                "key": cell.key,
                "row": results_row(cell, base, loss, outcome, seconds, self.version),
                "config": cell.resolved,
                "timings": timing,
                "train": outcome.train,
                "host": HOST,
                "pid": os.getpid(),
                "finished": time.time(),
                "_cleanup": outcome.cleanup,  # taken out before the record is written
            }
            log(f"done in {seconds:.2f}s (train {timing['train']:.2f}s, eval {timing['eval']:.2f}s)")
            return _Finished(cell, claim, attempts, record, timing, outcome.records, log)
        except (TokenizerMismatch, CommitFailed):  # fatal for the run, not this cell's failure
            log.close()
            raise
        except Exception as err:  # noqa: BLE001 - a failed cell is recorded, the sweep goes on
            timing["total"] = time.perf_counter() - t0
            return _Finished(
                cell, claim, attempts, self._failure(cell, err, log, attempts), timing, None, log
            )

    def _failure(self, cell: Cell, err: Exception, log: CellLog, attempts: int) -> dict:
        """The record of a failed cell; the error and its traceback go to the cell's run log."""
        message = " ".join(str(err).split()) or type(err).__name__
        log(f"failed: {type(err).__name__}: {message}\n{traceback.format_exc()}")
        return {
            "status": "failed",
            "key": cell.key,
            "error": f"{type(err).__name__}: {message}",
            "attempts": attempts,
            "config": cell.resolved,
            "host": HOST,
            "pid": os.getpid(),
            "finished": time.time(),
        }

    def _base(self, cell: Cell):
        """The checkpoint's base model, loaded once for all of its cells; tokenizer checked on load."""
        if self._loaded and self._loaded[0] == cell.checkpoint_id:
            return self._loaded[1], 0.0
        from emergence.models.registry import load_model
        from emergence.train.mesh import place_on_default_mesh

        self._loaded = None  # free the previous checkpoint first
        t0 = time.perf_counter()
        self._prefetch.wait(cell.checkpoint.model)
        loaded = load_model(cell.checkpoint.model, dtype=self.cfg.dtype)
        self._prefetch.after(cell.checkpoint.model)  # the next hub checkpoint downloads meanwhile
        place_on_default_mesh(loaded.model)  # few-shot and finetuned cells then share compiled programs
        fp = tokenizer_fingerprint(loaded.tokenizer)
        self._check_tokenizer(cell.checkpoint_id, fp)
        self._loaded = (cell.checkpoint_id, loaded)
        return loaded, time.perf_counter() - t0

    def _check_tokenizer(self, cid: str, fp: str) -> None:
        known = [self._tokenizer] if self._tokenizer else []
        if self.store.loss_dir.is_dir():
            for path in sorted(self.store.loss_dir.glob("*.json")):
                data = read_json(path) or {}
                if data.get("tokenizer"):
                    known.append((data.get("checkpoint", path.stem), data["tokenizer"]))
        for other, other_fp in known:
            if other_fp != fp:
                raise TokenizerMismatch(
                    f"checkpoint '{cid}' has a different tokenizer than '{other}'; all checkpoints of a sweep "
                    "must share a tokenizer (losses in nats/token are not comparable otherwise)"
                )
        self._tokenizer = self._tokenizer or (cid, fp)

    def _loss(self, cell: Cell, base) -> tuple[float, float]:
        """The checkpoint's pretraining loss from OUT/loss, computing it once (under a claim) if missing."""
        ident = {"checkpoint": cell.resolved["checkpoint"], "loss": cell.resolved["loss"]}  # as planned
        name = stable_hash(ident)
        if name in self._losses:  # a loss file, once written, is never changed
            return self._losses[name], 0.0
        path = self.store.loss_dir / f"{name}.json"
        t0 = time.perf_counter()
        while True:
            data = read_json(path)
            if data is not None:
                self._losses[name] = float(data["loss"])
                return self._losses[name], time.perf_counter() - t0
            claim = self.store.claim(f"loss-{name}")
            if claim is None:  # another runner is computing it
                time.sleep(0.2)
                continue
            try:
                if read_json(path) is None:
                    from emergence.eval.pretrain_loss import corpus_loss

                    spec = self.cfg.loss
                    res = corpus_loss(
                        base,
                        corpus=spec.corpus,
                        hub=spec.hub,
                        hub_config=spec.hub_config,
                        split=spec.split,
                        field=spec.field,
                        tokens=spec.tokens,
                        seq_len=spec.seq_len,
                        batch_size=spec.batch_size,
                    )
                    write_json(
                        path,
                        {
                            "checkpoint": cell.checkpoint_id,
                            "loss": res.loss,
                            "n_tokens": res.n_tokens,
                            "seq_len": res.seq_len,
                            "seconds": res.seconds,
                            "tokenizer": tokenizer_fingerprint(base.tokenizer),
                            "identity": ident,
                        },
                    )
            finally:
                claim.release()

    # ------------------------------------------------------------------ progress
    def _progress(self, cell: Cell, record: dict, timing: dict, report: RunReport) -> None:
        finished = report.done_here + report.failed_here
        left = report.total - report.skipped - finished
        rate = (time.perf_counter() - report.started) / max(finished, 1)
        if record["status"] == "done":
            row = record["row"]
            metrics = ", ".join(
                f"{k}={row[k]:.3f}" for k in row if k not in _FIXED and isinstance(row[k], float)
            )
            what = f"{metrics}  {timing.get('cell', 0):.1f}s"
        else:
            what = f"FAILED: {record['error'][:160]}"
        self.echo(
            f"[{finished}/{report.total - report.skipped}] {cell.label()}  {what}  "
            f"(ETA {_fmt(rate * max(left, 0))})"
        )


def _fmt(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


_FIXED = set(RESULT_COLUMNS)


def run_sweep(
    cfg: SweepConfig,
    *,
    shard_spec: tuple[int, int] = (0, 1),
    retry_failed: bool = False,
    wait: bool = True,
    echo: Callable[[str], None] = print,
) -> RunReport:
    return Runner(cfg, echo=echo).run(shard_spec=shard_spec, retry_failed=retry_failed, wait=wait)
