"""`emergence sweep run --workers N`: N local workers, each on its own devices, watched from one place.

Each worker is an ordinary ``sweep run --worker i/N`` process on the shared output folder, so the
launcher adds no ledger of its own: the cell records and claims coordinate the workers
(:mod:`emergence.sweep.assign` decides who starts where), and the launcher only starts them, pins
them to devices, restarts one that dies, and prints the whole sweep's progress from the records.

Pinning, so that processes never share a device or reserve memory on one that is not theirs: on
GPUs ``CUDA_VISIBLE_DEVICES`` and ``XLA_PYTHON_CLIENT_MEM_FRACTION`` (JAX otherwise takes 75 % of
each visible GPU; a worker alone on its GPUs may take nearly all); on a TPU VM the libtpu variables
for non-communicating processes (visible chips, per-process chip bounds, one mesh-controller port
per process); on CPU nothing. A worker that exits 0 (done) or 1 (done, with failed cells) has
finished; 2 is a user error a restart cannot mend; any other end (a crash, a kill, the OOM killer) is
restarted, at most ``MAX_RESTARTS`` times per worker. A killed worker's cell has no record and its
claims belong to a dead process, so the restarted worker, or another, takes the cell over at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from emergence.errors import UserError

MAX_RESTARTS = 3  # per worker: one that dies more often has a problem a restart does not mend
POLL_SECONDS = 0.2  # how soon a worker's exit is noticed
PROGRESS_SECONDS = 2.0  # how often the records are read for the progress line
GPU_MEMORY_FRACTION = "0.95"  # one process per GPU (README "On GPUs and TPUs")
TPU_CHIP_BOUNDS = {1: "1,1,1", 2: "1,2,1", 4: "2,2,1"}  # chips per process on a TPU VM host
TPU_CONTROLLER_PORT = 8476


@dataclass(frozen=True)
class Accelerators:
    kind: str  # gpu | tpu | cpu
    ids: tuple[str, ...]  # device ids a worker may be pinned to (empty on CPU)


def detect_accelerators(environ: dict[str, str]) -> Accelerators:
    """The devices on this machine, found without starting JAX (which would reserve GPU memory in
    the launcher itself): the visible GPUs, the TPU chips, or the CPU."""
    platforms = {p.strip() for p in environ.get("JAX_PLATFORMS", "").split(",") if p.strip()}
    if platforms == {"cpu"}:
        return Accelerators("cpu", ())
    if environ.get("CUDA_VISIBLE_DEVICES", "").strip():
        return Accelerators("gpu", tuple(x.strip() for x in environ["CUDA_VISIBLE_DEVICES"].split(",")))
    nvidia = Path("/proc/driver/nvidia/gpus")
    if nvidia.is_dir() and any(nvidia.iterdir()):
        return Accelerators("gpu", tuple(str(i) for i in range(len(list(nvidia.iterdir())))))
    chips = sorted(Path("/dev").glob("accel*")) or sorted(p for p in Path("/dev/vfio").glob("[0-9]*"))
    if chips:
        return Accelerators("tpu", tuple(str(i) for i in range(len(chips))))
    return Accelerators("cpu", ())


def worker_env(acc: Accelerators, index: int, per_worker: int, environ: dict[str, str]) -> dict[str, str]:
    """The environment variables that pin worker ``index`` to its ``per_worker`` devices."""
    ids = ",".join(acc.ids[index * per_worker : (index + 1) * per_worker])
    if acc.kind == "gpu":
        fraction = environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION", GPU_MEMORY_FRACTION)
        return {"CUDA_VISIBLE_DEVICES": ids, "XLA_PYTHON_CLIENT_MEM_FRACTION": fraction}
    if acc.kind == "tpu":
        port = str(TPU_CONTROLLER_PORT + index)
        return {
            "TPU_VISIBLE_CHIPS": ids,
            "TPU_VISIBLE_DEVICES": ids,  # the name older libtpu releases read
            "TPU_CHIPS_PER_PROCESS_BOUNDS": TPU_CHIP_BOUNDS[per_worker],
            "TPU_PROCESS_BOUNDS": "1,1,1",
            "TPU_MESH_CONTROLLER_ADDRESS": f"localhost:{port}",
            "TPU_MESH_CONTROLLER_PORT": port,
        }
    return {}


def check_fit(acc: Accelerators, workers: int, per_worker: int) -> None:
    if workers < 1 or per_worker < 1:
        raise UserError(f"--workers and --devices-per-worker must be >= 1, got {workers} and {per_worker}")
    if acc.kind == "tpu" and per_worker not in TPU_CHIP_BOUNDS:
        raise UserError(f"--devices-per-worker {per_worker}: a TPU worker takes 1, 2 or 4 chips")
    if acc.kind != "cpu" and workers * per_worker > len(acc.ids):
        raise UserError(
            f"--workers {workers} x --devices-per-worker {per_worker} needs {workers * per_worker} "
            f"{acc.kind.upper()}s; this machine shows {len(acc.ids)} ({','.join(acc.ids)})"
        )


def worker_log(out: str | Path, index: int, start: str) -> IO[str]:
    """``OUT/logs/worker-<i>.log``, opened to append after a line marking this start: a restarted
    worker or a requeued SLURM task appends to its log."""
    path = Path(out) / "logs" / f"worker-{index}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    log = path.open("a", encoding="utf-8")
    log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} start {start}\n")
    log.flush()
    return log


class Launcher:
    def __init__(self, command: list[str], out: Path, workers: int, per_worker: int, echo=print):
        """``command``: the ``sweep run`` command line every worker runs, before ``--worker i/n``."""
        self.command, self.out, self.workers, self.per_worker = command, out, workers, per_worker
        self.echo = echo
        self.acc = detect_accelerators(dict(os.environ))
        check_fit(self.acc, workers, per_worker)
        self.procs: dict[int, subprocess.Popen] = {}
        self.logs: dict[int, IO[str]] = {}
        self.restarts = [0] * workers
        self.exit_codes: dict[int, int] = {}

    def _start(self, index: int) -> None:
        if index in self.logs:
            self.logs[index].close()
        pins = worker_env(self.acc, index, self.per_worker, dict(os.environ))
        start = f"{self.restarts[index] + 1} {' '.join(f'{k}={v}' for k, v in pins.items())}"
        self.logs[index] = worker_log(self.out, index, start)
        self.procs[index] = subprocess.Popen(
            [*self.command, "--worker", f"{index}/{self.workers}"],
            env={**os.environ, **pins},
            stdout=self.logs[index],
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        pinned = (
            f" on {self.acc.kind} {pins.get('CUDA_VISIBLE_DEVICES') or pins.get('TPU_VISIBLE_CHIPS')}"
            if pins
            else ""
        )
        self.echo(f"worker {index}: pid {self.procs[index].pid}{pinned}, log {self.logs[index].name}")

    def run(self) -> int:
        """Run the workers to the end; the sweep's exit code (0 whole, 1 failed or missing cells, 2 a
        worker stopped on a user error)."""
        from emergence.sweep.results import incomplete_cells

        previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            for index in range(self.workers):
                self._start(index)
            last, due = None, time.monotonic() + PROGRESS_SECONDS
            while self.procs:
                time.sleep(POLL_SECONDS)
                self._reap()
                if time.monotonic() >= due or not self.procs:
                    due = time.monotonic() + PROGRESS_SECONDS
                    line = self._progress()
                    if line and line != last:
                        self.echo(line)
                        last = line
        finally:
            signal.signal(signal.SIGTERM, previous)
            self._stop_all()
        problems = incomplete_cells(self.out) if (self.out / "sweep.json").is_file() else ["no sweep.json"]
        failed = sum(line.startswith("failed") for line in problems)
        self.echo(
            f"sweep: {len(problems)} cell(s) not done ({failed} failed)" if problems else "sweep: complete"
        )
        for line in problems[:20]:  # as a single `sweep run` names its failed cells (README "Exit codes")
            print(line, file=sys.stderr)
        if 2 in self.exit_codes.values():
            return 2
        return 1 if problems else 0

    def _reap(self) -> None:
        for index, proc in list(self.procs.items()):
            code = proc.poll()
            if code is None:
                continue
            del self.procs[index]
            if code in (0, 1, 2):
                self.exit_codes[index] = code
                what = {0: "finished", 1: "finished with failed cells", 2: "stopped on a user error"}[code]
                self.echo(f"worker {index}: {what} (exit {code})")
            elif self.restarts[index] < MAX_RESTARTS:
                self.restarts[index] += 1
                self.echo(
                    f"worker {index}: died ({_describe(code)}); restart {self.restarts[index]}/{MAX_RESTARTS}"
                )
                self._start(index)
            else:
                self.exit_codes[index] = code
                self.echo(
                    f"worker {index}: died ({_describe(code)}) after {MAX_RESTARTS} restarts; not restarted"
                )

    def _progress(self) -> str | None:
        from emergence.sweep.results import sweep_status
        from emergence.sweep.store import Store
        from emergence.sweep.workers import read_workers

        try:
            status = sweep_status(self.out)
        except UserError:  # no worker has written the plan yet
            return None
        busy = [
            f"w{w['name']} {w['cell'] or w['checkpoint'] or 'waiting'}"
            for w in read_workers(Store(self.out))
            if w.get("worker") and w.get("state") == "running"
        ]
        return (
            f"[{status.done + status.failed}/{status.total}] {status.done} done, {status.failed} failed, "
            f"{status.running} running" + (f" | {'; '.join(busy)}" if busy else "")
        )

    def _stop_all(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self.logs.values():
            log.close()


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit {code}"
