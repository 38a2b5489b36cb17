"""Benchmark the emergence-law fit: wall time incl. compilation, diagnostics, and growth with size.

Each measurement runs in a fresh Python process (so "cold" really includes JAX compilation),
fitting a simulated, well-specified table with 4 chains × (1000 warmup + 1000 samples):

* 200 points with chains in parallel (one CPU device per chain) and vectorized, cold;
* in the same process, a second table of the same size and a third one checkpoint larger (the
  sampler pads rows to a bucket, so both reuse the compiled program; the MLE compiles again for
  a new row count), and the same table in a new process with the persistent compilation cache
  filled by the previous one;
* 2,000 and 20,000 points, cold, to show how the time grows.

Target (issue 6): <= 10 s wall for 200 points on the project's 2-core CPU, r̂ <= 1.01, no
divergences. ``make bench`` runs this; timings depend on machine load (the 1-minute load
average is printed with each row).

    .venv/bin/python scripts/bench_law.py [--sizes 200,2000,20000] [--out bench.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def _cpu() -> float:
    """User + system CPU seconds of this process (all threads): a load-independent cost measure.

    On a shared, oversubscribed machine wall time mostly measures the neighbours; with parallel
    chains on 2 cores, an idle machine's wall time would be about max(cpu / 2, serial part).
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one(points: int, method: str, repeat: int, seed: int) -> list[dict]:
    """Fit ``repeat`` simulated tables of about ``points`` rows in this process; one record each."""
    start = time.perf_counter()
    os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
    import numpy as np

    from emergence.laws.fit_config import FitSettings
    from emergence.laws.law_fit import fit_law
    from emergence.laws.nuts import enable_compile_cache
    from emergence.laws.simulate import Design, draw_truth, simulate
    from emergence.laws.table import select

    enable_compile_cache()  # EMERGENCE_JAX_CACHE=off (set by the driver for cold runs) disables it
    imported = time.perf_counter() - start
    per_checkpoint = 6 * 2  # (5 budgets + few-shot) × 2 seeds
    records = []
    for r in range(repeat):
        n_ckpt = max(4, round(points / per_checkpoint)) + (r >= 2)  # the third table: another size
        design = Design(sizes=tuple(np.geomspace(20e6, 4e8, n_ckpt)), steps_per_size=1)
        truth = draw_truth(design, np.random.default_rng([seed, r]))
        data = select(simulate(truth, design, seed=seed + r), design.task)
        options = FitSettings(warmup=1000, samples=1000, chain_method=method)
        t0, c0 = time.perf_counter(), _cpu()
        fit = fit_law(data, options)
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        e0, diag = fit.emergence(), fit.posterior.diagnostics
        records.append(
            {
                "points": int(data.loss.size),
                "method": fit.posterior.chain_method,
                "run": r,
                "fit_wall_s": wall,
                "fit_cpu_s": cpu,
                "nuts_s": fit.posterior.seconds,
                "import_s": imported if r == 0 else 0.0,
                "r_hat_max": diag.r_hat_max,
                "ess_min": diag.ess_min,
                "divergences": diag.divergences,
                "covered": bool(e0["q05"] <= truth.e0 <= e0["q95"]),
                "abs_err": abs(e0["median"] - truth.e0),
                "load1": os.getloadavg()[0],
            }
        )
    return records


SAME_PROCESS = ("same process, a second table", "same process, a third, larger table")


def spawn(points: int, method: str, repeat: int, seed: int, cache: str) -> list[dict]:
    env = dict(os.environ, EMERGENCE_JAX_CACHE=cache)
    cmd = [sys.executable, __file__, "--one", str(points), method, str(repeat), str(seed)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    process = time.perf_counter() - t0
    records = json.loads(done.stdout.strip().splitlines()[-1])
    records[0]["process_s"] = process
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="200,2000,20000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    parser.add_argument("--one", nargs=4, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        points, method, repeat, seed = args.one
        print(json.dumps(one(int(points), method, int(repeat), int(seed))))
        return 0

    rows = []
    with tempfile.TemporaryDirectory() as cache:
        plan = [
            ("cold, parallel chains, then warm in-process", 200, "parallel", 3, "off"),
            ("cold, vectorized chains", 200, "vectorized", 1, "off"),
            ("fills the persistent cache", 200, "parallel", 1, cache),
            ("new process, persistent cache hit", 200, "parallel", 1, cache),
        ]
        plan += [("cold, parallel chains", int(n), "parallel", 1, "off") for n in args.sizes.split(",")[1:]]
        for label, points, method, repeat, where in plan:
            for record in spawn(points, method, repeat, args.seed, where):
                record["label"] = label if record["run"] == 0 else SAME_PROCESS[record["run"] - 1]
                rows.append(record)
                print(
                    f"{record['label']:<45} n={record['points']:>6} {record['method']:<10} "
                    f"fit {record['fit_wall_s']:6.2f} s wall, {record['fit_cpu_s']:6.2f} s CPU "
                    f"(NUTS {record['nuts_s']:6.2f} s"
                    + (f", process {record['process_s']:.1f} s" if "process_s" in record else "")
                    + f") r_hat {record['r_hat_max']:.4f} ESS {record['ess_min']:.0f} "
                    f"div {record['divergences']} load {record['load1']:.1f}",
                    flush=True,
                )
    target = next(r for r in rows if r["points"] < 400 and r["method"] == "parallel" and r["run"] == 0)
    ok = target["fit_wall_s"] <= 10 and target["r_hat_max"] <= 1.01 and target["divergences"] == 0
    print(
        f"200-point cold fit: {target['fit_wall_s']:.2f} s incl. compilation "
        f"(+{target['import_s']:.1f} s imports), r_hat {target['r_hat_max']:.4f}, "
        f"{target['divergences']} divergences: {'PASS' if ok else 'FAIL'} (target <= 10 s, r_hat <= 1.01, 0 div)"
    )
    if args.out:
        from emergence.fileio import write_json

        write_json(args.out, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
