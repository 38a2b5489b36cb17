"""Time loading a PyTorch ``.bin`` checkpoint against its safetensors twin (results/bench/bin_loading.md).

    .venv-bench/bin/python scripts/make_bin_fixtures.py --bench /tmp/binbench
    PYTHONPATH=. .venv/bin/python scripts/bench_bin_loading.py /tmp/binbench/bench /tmp/binbench/bench_st

Two timings per directory, alternating formats, each the median of ``--repeats`` runs with the files
in the page cache (a first untimed pass reads them): reading every tensor (``load_hf_directory``,
then each reader once) and ``load_model`` (the same plus conversion and the transfer to the device).
"""

from __future__ import annotations

import argparse
import statistics
import time

from emergence.models.hf_checkpoint import load_hf_directory
from emergence.models.registry import load_model


def read_all(directory: str) -> int:
    _, tensors, _ = load_hf_directory(directory)
    return sum(tensors[name].nbytes for name in tensors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bin_dir")
    parser.add_argument("safetensors_dir")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    dirs = {"bin": args.bin_dir, "safetensors": args.safetensors_dir}
    sizes = {fmt: read_all(d) for fmt, d in dirs.items()}  # warm the page cache
    assert sizes["bin"] == sizes["safetensors"], sizes
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeats):
        for what, run in (("read tensors", read_all), ("load_model", load_model)):
            for fmt, directory in dirs.items():
                start = time.perf_counter()
                run(directory)
                times.setdefault((what, fmt), []).append(time.perf_counter() - start)
    print(f"{sizes['bin'] / 1e6:.0f} MB of tensors, {args.repeats} runs each: median (min) seconds")
    print("| step | .bin | safetensors | .bin / safetensors (medians) |\n|---|---|---|---|")
    for what in ("read tensors", "load_model"):
        (b, b_min), (s, s_min) = (
            (statistics.median(t), min(t)) for t in (times[(what, fmt)] for fmt in dirs)
        )
        print(f"| {what} | {b:.3f} ({b_min:.3f}) | {s:.3f} ({s_min:.3f}) | {b / s:.2f} |")


if __name__ == "__main__":
    main()
