"""Claims on cells: exclusive, kept alive by a heartbeat, taken over only when their owner is gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from emergence.sweep.store import Store, read_json


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
    store = Store(tmp_path)
    path = store.record_path("k")
    store.write(path, {"status": "done", "v": 1})
    store.write(path, {"status": "done", "v": 2})
    assert read_json(path) == {"status": "done", "v": 2}
    assert sorted(p.name for p in path.parent.iterdir()) == ["k.json"]  # no temp files left behind


def test_stale_claims_and_a_kills_scraps_are_cleaned_on_takeover(tmp_path):
    """A loss lock whose loss file a later runner finds written is never claimed again: without the
    sweep-wide cleanup the killed runner's lock stayed forever."""
    store = Store(tmp_path, ttl=30)
    _foreign_lock(store, "loss-0123abcd", age=120)  # expired heartbeat: its owner is gone
    _foreign_lock(store, "cellkey", age=120)
    _foreign_lock(store, "alive", age=1)  # another host's live claim: kept
    scrap = store.cells / ".cellkey.lock.deadbeef"
    scrap.write_text("{}")
    stamp = time.time() - 120
    os.utime(scrap, (stamp, stamp))
    assert store.clean_stale_locks() == 3
    assert sorted(p.name for p in store.cells.iterdir()) == ["alive.lock"]


def test_records_are_written_with_the_users_umask(tmp_path, monkeypatch):
    from emergence import fileio

    for umask, mode in ((0o022, 0o644), (0o002, 0o664), (0o077, 0o600)):
        old = os.umask(umask)
        monkeypatch.setattr(fileio, "_umask", None)  # the umask is read once per process
        try:
            path = tmp_path / f"r{umask:o}.json"
            Store(tmp_path).write(path, {"status": "done"})
        finally:
            os.umask(old)
        assert path.stat().st_mode & 0o777 == mode, oct(path.stat().st_mode)


def test_results_name_a_corrupt_record_and_a_runner_reruns_it(tmp_path):
    store = Store(tmp_path)
    store.write(store.record_path("good"), {"status": "done", "row": {"task": "t"}})
    store.record_path("cut").write_text('{"status": "do')
    store.write(store.record_path("rowless"), {"status": "done"})
    records, corrupt = store.scan_records()
    assert set(records) == {"good"}
    assert sorted(p.stem for p in corrupt) == ["cut", "rowless"]
    assert store.record("cut") is None  # what the runner sees: no record, so the cell runs again
    assert store.record("rowless") is None
    assert store.record("good") == {"status": "done", "row": {"task": "t"}}
