"""Calibration of the emergence law: do 90% intervals of E(D0) cover the truth ~90% of the time?

Draws ``--fits`` simulated results tables (varying the ladder, 4–6 budgets, 0–2 post-emergence
checkpoints and the true parameters), fits each with MLE + NUTS (4 chains), and reports the
fraction of posterior 90% intervals that contain the true E(D0), with a binomial standard error.
Acceptance (issue 6): coverage within 85–95% over >= 100 fits.

    .venv/bin/python scripts/calibration.py --fits 100 --out /tmp/calibration.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")


def design_for(rng):
    """A random but realistic sweep design."""
    from emergence.laws.simulate import Design

    all_sizes = (20e6, 40e6, 60e6, 100e6, 150e6, 250e6, 400e6)
    n_sizes = int(rng.integers(4, 8))
    sizes = tuple(sorted(rng.choice(all_sizes, n_sizes, replace=False)))
    all_budgets = (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
    n_budgets = int(rng.integers(4, 7))
    budgets = tuple(sorted(int(b) for b in rng.choice(all_budgets, n_budgets, replace=False)))
    return Design(sizes=sizes, steps_per_size=3, budgets=budgets, n_emerged=int(rng.integers(0, 3)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fits", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--out", default=None, help="write per-fit records and the summary as JSON")
    parser.add_argument(
        "--log",
        default=None,
        help="append each fit's record to this JSONL file as it finishes; with --resume, skip fits already there",
    )
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)

    import numpy as np

    from emergence.laws.law_fit import FitOptions, fit_law
    from emergence.laws.nuts import SamplerConfig, enable_compile_cache
    from emergence.laws.simulate import draw_truth, simulate
    from emergence.laws.table import select

    enable_compile_cache()
    records = []
    if args.resume and args.log and os.path.exists(args.log):
        with open(args.log) as handle:
            records = [json.loads(line) for line in handle if line.strip()]
        records = [r for r in records if r["i"] < args.fits]
        print(f"resuming after {len(records)} logged fits", flush=True)
    done = {r["i"] for r in records}
    start = time.perf_counter()
    for i in range(args.fits):
        if i in done:
            continue
        rng = np.random.default_rng([args.seed, i])
        design = design_for(rng)
        truth = draw_truth(design, rng)
        frame = simulate(truth, design, seed=int(rng.integers(2**31)))
        data = select(frame, design.task, source=f"sim-{i}")
        options = FitOptions(sampler=SamplerConfig(num_warmup=args.warmup, num_samples=args.samples, seed=i))
        fit = fit_law(data, options)
        e0 = fit.emergence()
        diag = fit.posterior.diagnostics
        record = {
            "i": i,
            "truth": truth.e0,
            **e0,
            "covered": bool(e0["q05"] <= truth.e0 <= e0["q95"]),
            "width": e0["q95"] - e0["q05"],
            "abs_err_median": abs(e0["median"] - truth.e0),
            "abs_err_mle": abs(e0["mle"] - truth.e0),
            "n_rows": int(data.loss.size),
            "n_emerged": design.n_emerged,
            "r_hat_max": diag.r_hat_max,
            "divergences": diag.divergences,
            "seconds": fit.seconds,
        }
        records.append(record)
        if args.log:
            with open(args.log, "a") as handle:
                handle.write(json.dumps(record) + "\n")
        covered = np.mean([r["covered"] for r in records])
        print(
            f"[{i + 1}/{args.fits}] truth {truth.e0:.3f} median {e0['median']:.3f} "
            f"90% [{e0['q05']:.3f}, {e0['q95']:.3f}] {'covered' if record['covered'] else 'MISSED'}; "
            f"running coverage {covered:.3f}; {fit.seconds:.1f} s",
            flush=True,
        )
    n = len(records)
    coverage = float(np.mean([r["covered"] for r in records]))
    summary = {
        "fits": n,
        "coverage_90": coverage,
        "coverage_se": math.sqrt(coverage * (1 - coverage) / n),
        "median_width": float(np.median([r["width"] for r in records])),
        "median_abs_err_median": float(np.median([r["abs_err_median"] for r in records])),
        "median_abs_err_mle": float(np.median([r["abs_err_mle"] for r in records])),
        "success_rate_0p1": float(np.mean([r["abs_err_median"] <= 0.1 for r in records])),
        "max_r_hat": float(np.max([r["r_hat_max"] for r in records])),
        "total_divergences": int(np.sum([r["divergences"] for r in records])),
        "wall_seconds": time.perf_counter() - start,
        "settings": vars(args),
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        with open(args.out + ".tmp", "w") as handle:
            json.dump({"summary": summary, "fits": records}, handle, indent=2)
        os.replace(args.out + ".tmp", args.out)
    ok = 0.85 <= coverage <= 0.95
    print(
        f"coverage {coverage:.3f} ± {summary['coverage_se']:.3f}: {'PASS' if ok else 'FAIL'} (target 0.85–0.95)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
