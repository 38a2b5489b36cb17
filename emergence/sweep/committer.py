"""Finished cells committed on one background thread, while the runner computes the next cell.

Why: committing a cell — its per-example records, its record (the commit point), deleting its
training checkpoints, releasing its claim — is file work that takes milliseconds on a local disk and
far longer on the network filesystems shared sweeps run on. Done in line, it adds to every cell's wall
time; done here, it overlaps the next cell's training and evaluation (file writes release the GIL).

Order and safety:
- One thread runs the jobs in the order they were submitted.
- At most one job is pending. :meth:`Committer.submit` first waits for the previous job, so memory
  stays bounded and a job's error surfaces at the latest one cell later, in the runner's thread,
  as :class:`CommitFailed`: fatal for the run, never mistaken for the failure of the cell computing.
- A job writes its record last and releases its claim only after that. No other runner takes the
  cell in between. A runner killed with a job pending leaves a claimed cell without a record, and
  the next run redoes it, exactly as if the runner had been killed during the cell's compute.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor


class CommitFailed(RuntimeError):
    """A background write failed (its error is the cause); the cell it belonged to has no record."""


class Committer:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="commit")
        self._pending: Future | None = None

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` in the background once the previous job has finished (its error raises here)."""
        self.wait()
        self._pending = self._pool.submit(job)

    def wait(self) -> None:
        """Block until the pending job (if any) is done; raise :class:`CommitFailed` if it failed."""
        pending, self._pending = self._pending, None
        if pending is not None and (err := pending.exception()) is not None:
            raise CommitFailed(f"writing a finished cell failed: {type(err).__name__}: {err}") from err

    def close(self) -> None:
        """Finish the pending job, then stop the thread (errors re-raise after the thread is stopped)."""
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> Committer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
