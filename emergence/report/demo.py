"""`make demo`: the whole method on a laptop CPU — pretrain → sweep → fit → backtest → forecast → report.

A library module so that the command, the CI-sized test and a scripted variant call the same
:func:`run_demo`. Every stage resumes: a rerun after a kill skips finished models, recorded cells and
tasks whose ``analysis.json`` fingerprints the same rows and settings. Stage wall times and the load
average go to ``<work>/timings.json`` and the report, so a reader can tell a slow machine from a slow stage.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from emergence.config import to_dict
from emergence.errors import PartialFailure, UserError
from emergence.fileio import read_json, write_json, write_text
from emergence.report.demo_analysis import ANALYSIS_VERSION, analyse_task, first_post_emergence_flops
from emergence.report.demo_config import DemoConfig, fingerprint, held_out, sweep_section
from emergence.report.demo_report import STAGES, render_report, summarize
from emergence.results_table import NUMERIC_COLUMNS, RESULT_COLUMNS

ANALYSIS_JSON = "analysis.json"
SUMMARY_JSON = "summary.json"
REPORT_MD = "report.md"
RESULTS_CSV = "results.csv"
LADDER_STAMP = "demo_ladder.json"
#: Columns whose change must refit a task (not the timing or code-version columns).
_FIT_COLUMNS = ("checkpoint", "task", *NUMERIC_COLUMNS)


def write_report(out: Path, summary: dict, report: str) -> Path:
    """``summary.json`` (for machines) and ``report.md`` (for readers) in ``out``; returns the report."""
    write_json(out / SUMMARY_JSON, summary, strict=True)
    return write_text(out / REPORT_MD, report)


def _timings_path(cfg: DemoConfig) -> Path:
    return Path(cfg.work) / "timings.json"


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished helpers: beside the wall time and
    the load average it tells how long a stage would take on an idle machine."""
    import resource

    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )


@contextlib.contextmanager
def _timed(cfg: DemoConfig, stage: str) -> Iterator[dict]:
    """Record the block's wall and CPU seconds and the load average around it as ``stage``'s timing
    when it ends. A block that sets ``skipped`` keeps the stage's last *measured* time."""
    run = {"started": time.perf_counter(), "load": os.getloadavg()[0], "cpu": cpu_seconds(), "skipped": False}
    yield run
    path = _timings_path(cfg)
    timings = read_json(path) if path.is_file() else {}
    if run["skipped"] and stage in timings and not timings[stage].get("skipped"):
        timings[stage]["reused_at"] = time.time()
    else:
        timings[stage] = {
            "seconds": time.perf_counter() - run["started"],
            "cpu_seconds": cpu_seconds() - run["cpu"],
            "load_start": run["load"],
            "load_end": os.getloadavg()[0],
            "skipped": run["skipped"],
            "finished": time.time(),
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, timings, strict=True)


def pretrain_stage(cfg: DemoConfig, ladder, echo: Callable[[str], None]) -> Path:
    """Pretrain (or resume, or skip) the ladder; refuses a work folder holding another ladder."""
    from emergence.train.pretrain import (
        MANIFEST,
        prepare_world,
        pretrain_ladder,
        read_manifest,
        split_models,
        write_manifest,
    )

    out = cfg.ladder_dir
    stamp = out / LADDER_STAMP
    described = {k: v for k, v in to_dict(ladder).items() if k != "log_every"}
    unset = ladder.world.unset_options()  # so ladders stamped before an option existed still match
    described["world"] = {k: v for k, v in described["world"].items() if k not in unset}
    want = fingerprint(described)
    if stamp.is_file() and read_json(stamp).get("fingerprint") != want:
        raise UserError(
            f"{out} holds a ladder pretrained from another ladder config; delete it or choose another --work"
        )
    expected = sum(len(m.checkpoints) for m in ladder.models)
    manifest = out / MANIFEST
    with _timed(cfg, "pretrain") as run:
        if manifest.is_file() and stamp.is_file() and len(read_manifest(manifest)) == expected:
            echo(f"  skipped: {expected} checkpoints already in {manifest}")
            run["skipped"] = True
            return manifest
        out.mkdir(parents=True, exist_ok=True)
        write_json(stamp, {"fingerprint": want, "ladder": ladder.name}, strict=True)

        def log(m: dict) -> None:
            echo(
                f"  {m['model']:>10}  step {m['step']:>5}/{m['total_steps']}  loss {m['loss']:.3f}  "
                f"{m['tokens_per_s']:,.0f} tok/s"
            )

        mine, *theirs = split_models(ladder, cfg.workers)
        if theirs:
            prepare_world(ladder, out)  # once, before the helpers read it
        jobs = {
            f"pretraining {', '.join(group)}": ["pretrain", cfg.ladder, "--out", str(out)]
            + [a for name in group for a in ("--model", name)]
            for group in theirs
        }
        with _helpers(cfg, "pretrain", jobs, echo) as helpers:
            pretrain_ladder(ladder, out, on_log=log, models=mine)
        if any(helper.returncode for helper in helpers):
            raise UserError(f"a pretraining helper failed; see {Path(cfg.work)}/pretrain_worker*.log")
        manifest = write_manifest(out.resolve(), ladder)  # every model is done: the whole manifest
        n = len(read_manifest(manifest))
        echo(f"  {n} checkpoints -> {manifest}  ({time.perf_counter() - run['started']:.0f}s)")
    return manifest


def sweep_stage(cfg: DemoConfig, manifest: Path, source: str, echo: Callable[[str], None]):
    """Run (or resume) the sweep and write the results table; returns it as a DataFrame."""
    from emergence.config import write_yaml
    from emergence.results_table import write_results
    from emergence.sweep.config import load_sweep_config
    from emergence.sweep.plan import expand
    from emergence.sweep.results import results_table, sweep_status
    from emergence.sweep.runner import Runner

    path = Path(cfg.work) / "sweep.yaml"
    header = "# written by `emergence demo` from " + source + "; `emergence sweep status` reads it\n"
    write_yaml(path, sweep_section(cfg, manifest), header)
    sweep = load_sweep_config(path)
    with _timed(cfg, "sweep") as run:
        # more runners on the same sweep claim cells through lock files: each cell is computed once, by
        # whichever runner gets to it, and its numbers do not depend on which (test_demo_pipeline.py)
        jobs = {f"sweep runner {i + 1}": ["sweep", "run", str(path)] for i in range(1, cfg.workers)}
        with _helpers(cfg, "sweep", jobs, echo) as helpers:
            report = Runner(sweep, echo=lambda line: echo(f"  {line}")).run()
        for helper in helpers:
            if helper.returncode:
                echo(f"  a sweep helper exited with code {helper.returncode}; see its log")
        failed = sweep_status(sweep.out).failed
        if report.failed_here or failed:
            raise PartialFailure(
                f"{failed} sweep cell(s) failed; see `emergence sweep status {path}`, fix, "
                f"then `emergence sweep run {path} --retry-failed` and rerun the demo"
            )
        # only this plan's cells: the folder may also hold cells of an earlier config (other settings)
        keys = {cell.key for cell in expand(sweep)}
        frame = results_table(sweep.out)
        frame = frame[frame["config_hash"].isin(keys)].reset_index(drop=True)
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        write_results(frame, out / RESULTS_CSV, "csv")
        echo(f"  {len(frame)} rows -> {out / RESULTS_CSV}")
        run["skipped"] = report.done_here == 0
    return frame


@contextlib.contextmanager
def _helpers(cfg: DemoConfig, stage: str, jobs: dict[str, list[str]], echo: Callable[[str], None]):
    """Run ``emergence ARGS`` for each job in a helper process (output in
    ``<work>/<stage>_worker<i>.log``) beside the block; wait for them when it ends, or stop them if it
    fails (a helper's unfinished work is then redone by the rerun)."""
    helpers = []
    for i, (what, args) in enumerate(jobs.items(), start=1):
        log = Path(cfg.work) / f"{stage}_worker{i}.log"
        with open(log, "w") as handle:
            helpers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "emergence.cli", *args], stdout=handle, stderr=subprocess.STDOUT
                )
            )
        echo(f"  helper process: {what} (log: {log})")
    try:
        yield helpers
    except BaseException:
        for helper in helpers:
            helper.terminate()
        raise
    finally:
        for helper in helpers:
            helper.wait()


def _task_fingerprint(frame, task, cfg: DemoConfig, held: set[str]) -> str:
    rows = frame[frame["task"].astype(str) == task.name]
    columns = [c for c in rows.columns if c in _FIT_COLUMNS or c not in RESULT_COLUMNS]
    data = rows[columns].astype(object).where(rows[columns].notna(), None).to_dict("records")
    described = {"version": ANALYSIS_VERSION, "rows": data, "task": to_dict(task), "fit": to_dict(cfg.fit)}
    return fingerprint(described | {"held": sorted(held)})


def fit_stage(cfg: DemoConfig, frame, manifest: Path, echo: Callable[[str], None]) -> dict[str, dict]:
    """Per task: fit, backtest and forecast unless an up-to-date analysis.json exists."""
    from emergence.train.pretrain import read_manifest

    entries = read_manifest(manifest)
    present = set(frame["checkpoint"].astype(str))
    analyses = {}
    with _timed(cfg, "fit") as run:
        run["skipped"] = True
        for task in cfg.tasks:
            holdout = task.holdout or cfg.holdout
            first_post = first_post_emergence_flops(frame, task, cfg.fit) if holdout.lookahead else None
            held = held_out(holdout, entries, first_post) & present
            which = f"task {task.name}'s holdout" if task.holdout else "the demo config's holdout"
            if not held:
                raise UserError(f"no held-out checkpoint is in the results table: check {which}")
            if held == present:
                raise UserError(f"every checkpoint is held out: {which} leaves nothing to fit")
            folder = Path(cfg.out) / task.name
            stamp = _task_fingerprint(frame, task, cfg, held)
            previous = folder / ANALYSIS_JSON
            if previous.is_file() and (old := read_json(previous)).get("fingerprint") == stamp:
                echo(f"  {task.name}: skipped (analysis up to date in {previous})")
                analyses[task.name] = old
                continue
            t_task = time.perf_counter()
            analysis = analyse_task(
                frame, task, cfg.fit, held, folder, source=str(Path(cfg.out) / RESULTS_CSV), echo=echo
            )
            analysis["fingerprint"] = stamp
            analysis["seconds"] = time.perf_counter() - t_task
            write_json(previous, analysis, strict=True)  # last: its presence marks the task as done
            run["skipped"] = False
            echo(_headline(analysis))
            analyses[task.name] = read_json(previous)
    return analyses


def _headline(a: dict) -> str:
    p, t = a["prediction"], a["truth"]
    truth = f"{t['elbow']:.3f}" if t["emerged"] else "none (no significant rise)"
    error = f"{a['error_nats']:.3f}" if a["error_nats"] is not None else "-"
    ratio = a["compute"]["ratio"]
    return (
        f"  {a['task']}: E(D0) MLE {p['mle']:.3f} (median {p['median']:.3f}, 90% {p['q05']:.3f}-{p['q95']:.3f}) "
        f"vs truth {truth}; "
        f"error {error} nats; compute ratio {'-' if ratio is None else f'{ratio:.2f}'}x; "
        f"finetuned higher: {a['finetuned_vs_fewshot']['finetuned_higher']}"
    )


def run_demo(
    cfg: DemoConfig, ladder, *, source: str = "demo config", echo: Callable[[str], None] | None = None
) -> Path:
    """Run (or resume) every stage; returns the report path."""
    echo = echo or partial(print, flush=True)
    started = time.perf_counter()

    def stage(index: int, what: str) -> None:
        elapsed, load = time.perf_counter() - started, os.getloadavg()[0]
        echo(f"[{index}/{len(STAGES)}] {STAGES[index - 1]}: {what}  (t={elapsed:.0f}s, load {load:.1f})")

    n_ckpt = sum(len(m.checkpoints) for m in ladder.models)
    stage(1, f"ladder '{ladder.name}', {len(ladder.models)} models, {n_ckpt} checkpoints")
    manifest = pretrain_stage(cfg, ladder, echo)
    stage(2, f"{len(cfg.tasks)} toy tasks × few-shot + budgets × seeds -> {cfg.sweep_dir}")
    frame = sweep_stage(cfg, manifest, source, echo)
    stage(3, f"emergence law per task on the non-held-out checkpoints -> {cfg.out}")
    analyses = fit_stage(cfg, frame, manifest, echo)
    stage(4, f"-> {Path(cfg.out) / REPORT_MD}")
    with _timed(cfg, "report"):
        timings = read_json(_timings_path(cfg)) if _timings_path(cfg).is_file() else {}
        summary = summarize(cfg, ladder, manifest, frame, analyses, timings, source)
        path = write_report(Path(cfg.out), summary, render_report(summary, analyses))
    acc = summary["acceptance"]
    echo(
        f"done in {time.perf_counter() - started:.0f}s: few-shot emergence within 0.1 nats with >= 2x "
        f"compute lookahead on {acc['tasks_within_0_1_with_2x']}/{len(analyses)} tasks; finetuned "
        f"emergence at higher loss on {acc['tasks_finetuned_higher']}/{len(analyses)} -> {path}"
    )
    return path
