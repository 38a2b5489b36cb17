"""Prefetching: the next hub checkpoint downloads while the runner works on the current one."""

from __future__ import annotations

import json
import threading
import time

from emergence.models import registry
from emergence.sweep.config import load_sweep_config
from emergence.sweep.prefetch import Prefetcher
from emergence.sweep.runner import Runner
from tests.sweep.helpers import TINY_LLAMA, tiny_raw, write_config


def test_only_the_next_hub_checkpoint_is_fetched_ahead():
    fetched: list[str] = []
    prefetch = Prefetcher(["org/a", "org/a", str(TINY_LLAMA / "gqa_tied"), "org/b", "org/c"], fetched.append)
    assert prefetch.order == ["org/a", str(TINY_LLAMA / "gqa_tied"), "org/b", "org/c"]
    prefetch.after("org/a")  # next is a local directory: already on disk
    prefetch.after(str(TINY_LLAMA / "gqa_tied"))
    prefetch.wait("org/b")
    assert fetched == ["org/b"]
    prefetch.after("org/c")  # the last one: nothing follows
    prefetch.after("not/in-this-run")
    assert fetched == ["org/b"]


def test_a_failed_prefetch_is_dropped_and_wait_blocks_until_it_ends():
    ended = threading.Event()

    def slow_failure(reference: str) -> None:
        time.sleep(0.2)
        ended.set()
        raise OSError(f"{reference}: connection reset")

    prefetch = Prefetcher(["org/a", "org/b"], slow_failure)
    prefetch.after("org/a")
    prefetch.wait("org/b")  # no error: the load will fetch again and report its own
    assert ended.is_set()


def test_the_runner_downloads_the_next_checkpoint_while_the_current_one_runs(tmp_path, monkeypatch):
    """Two hub checkpoints (downloads faked by local fixtures): the second one's download starts in a
    prefetch thread before the first checkpoint's cell is finished."""
    local = {"org/tiny-tied": TINY_LLAMA / "gqa_tied", "org/tiny-untied": TINY_LLAMA / "gqa_untied"}
    downloads: list[tuple[str, str, float]] = []

    def fake_download(repo_id: str):
        downloads.append((repo_id, threading.current_thread().name, time.time()))
        return local[repo_id]

    monkeypatch.setattr(registry, "_download", fake_download)
    raw = tiny_raw()
    raw.update(
        checkpoints=[{"model": ref, "id": ref.split("/")[1]} for ref in local],
        budgets=[0],
        out=str(tmp_path / "out"),
    )
    cfg = load_sweep_config(write_config(tmp_path / "s.yaml", raw))
    assert Runner(cfg, echo=lambda _: None).run().done_here == 2
    ahead = [
        (when, thread)
        for ref, thread, when in downloads
        if ref == "org/tiny-untied" and thread != "MainThread"
    ]
    assert len(ahead) == 1 and ahead[0][1].startswith("prefetch-")
    records = [json.loads(p.read_text()) for p in (tmp_path / "out" / "cells").glob("*.json")]
    (first,) = [r for r in records if r["row"]["checkpoint"] == "tiny-tied"]
    assert ahead[0][0] < first["finished"]
    assert [ref for ref, thread, _ in downloads if thread == "MainThread"] == list(local)
