"""The background committer: jobs in order, one pending at most, errors surface in the caller."""

from __future__ import annotations

import threading

import pytest

from emergence.sweep.committer import CommitFailed, Committer


def test_jobs_run_in_submission_order_on_one_background_thread():
    seen: list[tuple[int, str]] = []
    with Committer() as commits:
        for i in range(5):
            commits.submit(lambda i=i: seen.append((i, threading.current_thread().name)))
    assert [i for i, _ in seen] == list(range(5))
    assert {name for _, name in seen} != {threading.main_thread().name}
    assert len({name for _, name in seen}) == 1


def test_submit_waits_for_the_pending_job_so_at_most_one_waits():
    release = threading.Event()
    finished: list[int] = []

    def slow():
        release.wait(5)
        finished.append(1)

    commits = Committer()
    commits.submit(slow)
    timer = threading.Timer(0.2, release.set)
    timer.start()
    commits.submit(lambda: finished.append(2))  # returns only once `slow` is done
    assert finished[0] == 1
    commits.close()
    assert finished == [1, 2]


def test_a_failed_job_raises_in_the_caller_at_the_next_wait():
    commits = Committer()

    def broken():
        raise OSError("disk full")

    commits.submit(broken)
    with pytest.raises(CommitFailed, match="OSError: disk full") as err:
        commits.wait()
    assert isinstance(err.value.__cause__, OSError)
    commits.submit(lambda: None)  # the committer stays usable
    commits.close()


def test_close_finishes_the_pending_job_even_when_the_caller_is_failing():
    done: list[str] = []
    with pytest.raises(RuntimeError, match="next cell"), Committer() as commits:
        commits.submit(lambda: done.append("record written"))
        raise RuntimeError("next cell failed")
    assert done == ["record written"]
