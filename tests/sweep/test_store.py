"""Claims on cells: exclusive, kept alive by a heartbeat, taken over only when their owner is gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from emergence.sweep.store import Store, read_json, write_json


def _foreign_lock(store: Store, key: str, *, age: float, host: str = "another-host", pid: int = 4242) -> None:
    store.cells.mkdir(parents=True, exist_ok=True)
    path = store.lock_path(key)
    path.write_text(json.dumps({"host": host, "pid": pid, "token": "theirs"}))
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))


def test_a_claim_is_exclusive_until_released(tmp_path):
    store = Store(tmp_path, ttl=30)
    first = store.claim("k")
    assert first is not None and first.owned()
    assert store.claim("k") is None
    assert set(store.running()) == {"k"}
    first.release()
    assert not store.lock_path("k").exists()
    second = store.claim("k")
    assert second is not None
    second.release()


def test_a_live_foreign_claim_is_respected(tmp_path):
    store = Store(tmp_path, ttl=30)
    _foreign_lock(store, "k", age=1)
    assert store.claim("k") is None
    assert read_json(store.lock_path("k"))["token"] == "theirs"


def test_a_claim_without_heartbeat_for_longer_than_ttl_is_taken_over(tmp_path):
    store = Store(tmp_path, ttl=5)
    _foreign_lock(store, "k", age=60)
    claim = store.claim("k")
    assert claim is not None and read_json(store.lock_path("k"))["token"] == claim.token
    assert not store.lock_path("k").with_name("k.lock.takeover").exists()
    claim.release()


def test_a_claim_of_a_dead_process_on_this_host_is_taken_over_at_once(tmp_path):
    from emergence.sweep.store import HOST

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store = Store(tmp_path, ttl=3600)
    _foreign_lock(store, "k", age=0, host=HOST, pid=dead.pid)
    claim = store.claim("k")
    assert claim is not None
    claim.release()


def test_the_heartbeat_keeps_a_long_claim_fresh(tmp_path):
    store = Store(tmp_path, ttl=0.4)
    claim = store.claim("k")
    time.sleep(1.0)  # 2.5 TTLs: without heartbeats the lock would be stale
    assert not store.is_stale(store.lock_path("k"))
    assert Store(tmp_path, ttl=0.4).claim("k") is None
    claim.release()


def test_a_taken_over_claim_knows_it_is_no_longer_owned(tmp_path):
    store = Store(tmp_path, ttl=30)
    claim = store.claim("k")
    store.lock_path("k").unlink()  # as a takeover would
    other = store.claim("k")
    assert not claim.owned() and other.owned()
    claim.release()  # must not remove the new owner's lock
    assert store.lock_path("k").exists()
    other.release()


def test_records_are_replaced_atomically(tmp_path):
    path = tmp_path / "cells" / "k.json"
    write_json(path, {"status": "done", "v": 1})
    write_json(path, {"status": "done", "v": 2})
    assert read_json(path) == {"status": "done", "v": 2}
    assert sorted(p.name for p in path.parent.iterdir()) == ["k.json"]  # no temp files left behind
