"""The next hub checkpoint downloads while the runner works on the current one.

Why: a ladder from the hub (configs/sweeps/openllama_v1.yaml: 26 checkpoints of 7–26 GB) spends
minutes per checkpoint downloading, and a runner that fetched each checkpoint only when it needed it
would leave the accelerator idle for all of that time. The runner knows the order of its checkpoints.
So while it runs the cells of one checkpoint, it fetches the files of the next into the hub cache.
That uses disk only: nothing is loaded into memory. The load that follows finds the files there.

- At most one download runs ahead of the runner.
- Local paths and aliases are never prefetched: they are already on disk.
- The download runs in a daemon thread, so a runner that exits (done, failed or interrupted) never
  waits for a download it will not use.
- A failed prefetch is forgotten. The load then fetches the checkpoint itself and reports the error
  as it would have without a prefetch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

from emergence.sweep.config import is_hub_id


def fetch_from_hub(reference: str) -> None:
    """Download ``reference``'s files into the hub cache (what :func:`load_model` reads them from)."""
    from emergence.models import registry

    registry.resolve(reference)


class Prefetcher:
    def __init__(self, references: list[str], fetch: Callable[[str], None] = fetch_from_hub):
        self.order = list(dict.fromkeys(references))  # distinct, in the order the runner loads them
        self._fetch = fetch
        self._fetches: dict[str, Future] = {}

    def after(self, reference: str) -> None:
        """Start fetching the hub checkpoint that follows ``reference`` in the runner's order."""
        if reference not in self.order:
            return
        position = self.order.index(reference) + 1
        if position < len(self.order):
            upcoming = self.order[position]
            if is_hub_id(upcoming) and upcoming not in self._fetches:
                self._fetches[upcoming] = _in_daemon_thread(self._fetch, upcoming)

    def wait(self, reference: str) -> None:
        """Block until the prefetch of ``reference`` (if one was started) has ended; its error, if
        any, is dropped (the load reports its own)."""
        fetch = self._fetches.pop(reference, None)
        if fetch is not None:
            fetch.exception()


def _in_daemon_thread(fn: Callable[[str], None], reference: str) -> Future:
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(fn(reference))
        except BaseException as err:  # noqa: BLE001 - kept in the future; the load reports its own
            future.set_exception(err)

    threading.Thread(target=run, name=f"prefetch-{reference}", daemon=True).start()
    return future
