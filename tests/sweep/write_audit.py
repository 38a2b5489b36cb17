"""Run the CLI and list what it writes under a folder: ``python -m tests.sweep.write_audit LOG FOLDER ARGS...``.

A Python audit hook sees every file opened for writing, every rename (atomic writes end in one),
removal, directory creation and time stamp (a claim's heartbeat) that the process makes through
Python; on exit the events under FOLDER go to LOG as JSON lines ``[event, path]``. The multi-host
test runs each process of a job under it to show which process writes which file.
"""

from __future__ import annotations

import atexit
import json
import os
import sys

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
PATH_EVENTS = {"os.mkdir": 0, "os.remove": 0, "os.rmdir": 0, "shutil.rmtree": 0, "os.utime": 0, "os.rename": 1}


def main() -> None:
    log, folder, args = sys.argv[1], os.path.realpath(sys.argv[2]), sys.argv[3:]
    events: list[tuple[str, str]] = []

    def under(path) -> str | None:
        if isinstance(path, (str, bytes, os.PathLike)) and not isinstance(path, int):
            full = os.path.realpath(os.fsdecode(path))
            return full if full == folder or full.startswith(folder + os.sep) else None
        return None

    def hook(event: str, hook_args: tuple) -> None:
        if event == "open" and isinstance(hook_args[2], int) and hook_args[2] & WRITE_FLAGS:
            path = under(hook_args[0])
        elif event in PATH_EVENTS:
            path = under(hook_args[PATH_EVENTS[event]])
        else:
            return
        if path is not None:
            events.append((event, path))

    def dump() -> None:
        with open(log, "w") as handle:
            handle.writelines(json.dumps(e) + "\n" for e in events)

    atexit.register(dump)
    sys.addaudithook(hook)
    sys.argv = ["emergence", *args]
    from emergence.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
