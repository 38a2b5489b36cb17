"""The sweep's output folder: one atomic record per cell, and expiring claims so runners never collide.

Layout of OUT::

    sweep.json          the resolved config and plan (written when a run starts)
    cells/<key>.json    a task cell's record: status done (with its results row) or failed (with the error)
    cells/<key>.lock    a claim: its mtime is the owner's heartbeat (a loss cell's is loss-<key>.lock)
    cells/<key>/        the cell's work: run.log, records.jsonl (per-example), finetune/ (adapter)
    loss/<key>.json     a loss cell's record: a checkpoint's pretraining loss (joined into its rows)

A record, written atomically (:mod:`emergence.fileio`), is the commit point: a runner killed at any
instant leaves no record or a complete one. A claim is a hard link of a complete private file (it
fails like O_CREAT|O_EXCL when the lock exists, and is never seen half-written), touched every
``ttl / 4`` seconds. A lock older than ``ttl``, or owned by a dead process on this host, is stale: a
runner takes it over under a short exclusive ``.takeover`` guard, re-checking staleness inside it.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emergence import fileio
from emergence.errors import UserError

HOST = socket.gethostname()


def read_json(path: Path) -> Any | None:
    """The JSON in ``path``, or None when it is missing, unreadable or does not parse (a record cut by
    a host crash, a lock being replaced): callers treat all of these as "no record"."""
    try:
        return fileio.read_json(path)
    except UserError:
        return None


class Store:
    def __init__(self, out: str | Path, ttl: float = 600.0):
        self.out = Path(out)
        self.cells = self.out / "cells"
        self.loss_dir = self.out / "loss"
        self.ttl = float(ttl)

    # ------------------------------------------------------------------ paths and records
    def record_path(self, key: str) -> Path:
        return self.cells / f"{key}.json"

    def lock_path(self, key: str) -> Path:
        return self.cells / f"{key}.lock"

    def work_dir(self, key: str) -> Path:
        return self.cells / key

    def record(self, key: str) -> dict | None:
        """The cell's record, or None when there is none or it is corrupt (the cell runs again)."""
        data = read_json(self.record_path(key))
        return data if _valid_record(data) else None

    def write(self, path: Path, record: dict) -> None:
        """Write a record atomically (mode 0644 under umask 022: a group can share OUT)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fileio.write_json(path, record, indent=1)

    def loss_path(self, key: str) -> Path:
        return self.loss_dir / f"{key}.json"

    def loss_record(self, key: str) -> dict | None:
        """A loss cell's record (one written before loss cells had a status counts as done)."""
        data = read_json(self.loss_path(key))
        if not isinstance(data, dict) or ("loss" not in data and data.get("status") != "failed"):
            return None
        return {"status": "done", **data}

    def records(self) -> dict[str, dict]:
        return self.scan_records()[0]

    def scan_records(self) -> tuple[dict[str, dict], list[Path]]:
        """Readable records by key, and the record files that are not (truncated, garbage, not an
        object, or "done" without a row): a runner reruns those cells, ``results`` names them."""
        out, corrupt = {}, []
        if self.cells.is_dir():
            for path in sorted(self.cells.glob("*.json")):
                data = read_json(path)
                if data is None and not path.is_file():
                    continue  # removed meanwhile
                if _valid_record(data):
                    out[path.stem] = data
                else:
                    corrupt.append(path)
        return out, corrupt

    # ------------------------------------------------------------------ claims
    def is_stale(self, path: Path) -> bool:
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return False
        if age > self.ttl:
            return True
        info = read_json(path)
        if isinstance(info, dict) and info.get("host") == HOST and isinstance(info.get("pid"), int):
            return not _alive(info["pid"])
        return False

    def claim(self, key: str) -> Claim | None:
        """An exclusive claim on ``key``, or None if a live runner holds it."""
        self.cells.mkdir(parents=True, exist_ok=True)
        path = self.lock_path(key)
        for _ in range(3):
            token = uuid.uuid4().hex
            # Write the owner's identity to a private file, then hard-link it into place: link() fails
            # if the lock exists (like O_CREAT|O_EXCL) and the lock is never seen half-written.
            tmp = path.with_name(f".{path.name}.{token}")
            tmp.write_text(
                json.dumps({"host": HOST, "pid": os.getpid(), "token": token, "since": time.time()})
            )
            try:
                os.link(tmp, path)
            except FileExistsError:
                if not self._break_if_stale(path):
                    return None
                continue
            finally:
                tmp.unlink(missing_ok=True)
            return Claim(self, key, token)
        return None

    def _break_if_stale(self, path: Path) -> bool:
        if not self.is_stale(path):
            return False
        guard = path.with_name(path.name + ".takeover")
        try:
            fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if time.time() - _mtime(guard) > self.ttl:  # a breaker died inside the guard
                guard.unlink(missing_ok=True)
            return False
        try:
            os.close(fd)
            if self.is_stale(path):  # re-checked under the guard: nobody re-took it meanwhile
                path.unlink(missing_ok=True)
                return True
            return False
        finally:
            guard.unlink(missing_ok=True)

    def clean_stale_locks(self) -> int:
        """Remove every stale claim (a killed runner's) and the scraps a kill can leave beside it
        (a claim's private temp file, a takeover guard), each older than ``ttl``; returns how many.
        Why: a claim is otherwise only broken when a runner wants *that* cell, and a cell another
        runner has since recorded is never claimed again."""
        removed = 0
        if not self.cells.is_dir():
            return 0
        for path in self.cells.glob("*.lock"):
            if self._break_if_stale(path):
                removed += 1
        now = time.time()
        for path in [*self.cells.glob(".*.lock.*"), *self.cells.glob("*.lock.takeover")]:
            if now - _mtime(path) > self.ttl:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def running(self) -> dict[str, dict]:
        """Live claims (lock files that are not stale), by key."""
        out = {}
        if self.cells.is_dir():
            for path in self.cells.glob("*.lock"):
                if not self.is_stale(path):
                    out[path.stem] = read_json(path) or {}
        return out


def _valid_record(data: Any) -> bool:
    """A record a reader can use: an object, and a "done" one carries its results row."""
    return isinstance(data, dict) and (data.get("status") != "done" or isinstance(data.get("row"), dict))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return time.time()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped by its parent) is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


class Heartbeat:
    """Touches ``path`` every ``ttl / 4`` seconds from a daemon thread, so a live owner's file never
    looks stale; stops when told, when the file is gone, or once ``still_ours()`` is False."""

    def __init__(self, path: Path, ttl: float, still_ours: Callable[[], bool] = lambda: True):
        self.path, self.interval, self.still_ours = path, max(0.05, ttl / 4), still_ours
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{path.stem}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval) and self.still_ours():
            try:
                os.utime(self.path)
            except FileNotFoundError:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class Claim:
    """A held lock with a heartbeat; ``owned()`` tells whether it is still ours. Released on leaving
    a ``with`` block."""

    def __init__(self, store: Store, key: str, token: str):
        self.store, self.key, self.token = store, key, token
        self.path = store.lock_path(key)
        self._heartbeat = Heartbeat(self.path, store.ttl, self.owned)

    def owned(self) -> bool:
        info = read_json(self.path)
        return isinstance(info, dict) and info.get("token") == self.token

    def release(self) -> None:
        self._heartbeat.stop()
        if self.owned():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
