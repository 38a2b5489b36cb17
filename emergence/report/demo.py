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
from collections.abc import Callable
from pathlib import Path

from emergence.config import to_dict
from emergence.errors import PartialFailure, UserError
from emergence.fileio import read_json, write_json, write_text
from emergence.report.demo_analysis import ANALYSIS_VERSION, analyse_task, first_post_emergence_flops
from emergence.report.demo_config import DemoConfig, fingerprint, held_out, sweep_section
from emergence.results_table import NUMERIC_COLUMNS, RESULT_COLUMNS

ANALYSIS_JSON = "analysis.json"
SUMMARY_JSON = "summary.json"
REPORT_MD = "report.md"
RESULTS_CSV = "results.csv"
LADDER_STAMP = "demo_ladder.json"
STAGES = ("pretrain", "sweep", "fit", "report")
#: Columns whose change must refit a task (not the timing or code-version columns).
_FIT_COLUMNS = ("checkpoint", "task", *NUMERIC_COLUMNS)


class Progress:
    """Stage headers with elapsed time and load average; every line flushed (progress shows live)."""

    def __init__(self, echo: Callable[[str], None]):
        self.echo = echo
        self.started = time.perf_counter()

    def __call__(self, line: str) -> None:
        self.echo(line)

    def stage(self, index: int, name: str, what: str) -> None:
        elapsed = time.perf_counter() - self.started
        load = os.getloadavg()[0]
        self.echo(f"[{index}/{len(STAGES)}] {name}: {what}  (t={elapsed:.0f}s, load {load:.1f})")


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


def _clock() -> tuple[float, float, float]:
    """Wall time, load average and CPU seconds at the start of a stage (for :func:`_record_timing`)."""
    return time.perf_counter(), os.getloadavg()[0], cpu_seconds()


def _record_timing(cfg: DemoConfig, stage: str, start: tuple[float, float, float], skipped: bool) -> None:
    """Keep the last *measured* time of each stage; a skipped stage keeps the earlier measurement."""
    path = _timings_path(cfg)
    timings = read_json(path) if path.is_file() else {}
    entry = {
        "seconds": time.perf_counter() - start[0],
        "cpu_seconds": cpu_seconds() - start[2],
        "load_start": start[1],
        "load_end": os.getloadavg()[0],
        "skipped": skipped,
    }
    if skipped and stage in timings and not timings[stage].get("skipped"):
        timings[stage]["reused_at"] = time.time()
    else:
        timings[stage] = entry | {"finished": time.time()}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, timings, strict=True)


def pretrain_stage(cfg: DemoConfig, ladder, progress: Progress) -> Path:
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
    start = _clock()
    if manifest.is_file() and stamp.is_file() and len(read_manifest(manifest)) == expected:
        progress(f"  skipped: {expected} checkpoints already in {manifest}")
        _record_timing(cfg, "pretrain", start, skipped=True)
        return manifest
    out.mkdir(parents=True, exist_ok=True)
    write_json(stamp, {"fingerprint": want, "ladder": ladder.name}, strict=True)

    def log(m: dict) -> None:
        progress(
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
    with _helpers(cfg, "pretrain", jobs, progress) as helpers:
        pretrain_ladder(ladder, out, on_log=log, models=mine)
    if any(helper.returncode for helper in helpers):
        raise UserError(f"a pretraining helper failed; see {Path(cfg.work)}/pretrain_worker*.log")
    manifest = write_manifest(out.resolve(), ladder)  # every model is done: the whole manifest
    n = len(read_manifest(manifest))
    progress(f"  {n} checkpoints -> {manifest}  ({time.perf_counter() - start[0]:.0f}s)")
    _record_timing(cfg, "pretrain", start, skipped=False)
    return manifest


def sweep_stage(cfg: DemoConfig, manifest: Path, source: str, progress: Progress):
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
    start = _clock()
    # more runners on the same sweep claim cells through lock files: each cell is computed once, by
    # whichever runner gets to it, and its numbers do not depend on which (test_demo_pipeline.py)
    jobs = {f"sweep runner {i + 1}": ["sweep", "run", str(path)] for i in range(1, cfg.workers)}
    with _helpers(cfg, "sweep", jobs, progress) as helpers:
        report = Runner(sweep, echo=lambda line: progress(f"  {line}")).run()
    for helper in helpers:
        if helper.returncode:
            progress(f"  a sweep helper exited with code {helper.returncode}; see its log")
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
    progress(f"  {len(frame)} rows -> {out / RESULTS_CSV}")
    _record_timing(cfg, "sweep", start, skipped=report.done_here == 0)
    return frame


@contextlib.contextmanager
def _helpers(cfg: DemoConfig, stage: str, jobs: dict[str, list[str]], progress: Progress):
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
        progress(f"  helper process: {what} (log: {log})")
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


def fit_stage(cfg: DemoConfig, frame, manifest: Path, progress: Progress) -> dict[str, dict]:
    """Per task: fit, backtest and forecast unless an up-to-date analysis.json exists."""
    from emergence.train.pretrain import read_manifest

    entries = read_manifest(manifest)
    present = set(frame["checkpoint"].astype(str))
    start, fitted_any = _clock(), False
    analyses = {}
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
        if previous.is_file():
            old = read_json(previous)
            if old.get("fingerprint") == stamp:
                progress(f"  {task.name}: skipped (analysis up to date in {previous})")
                analyses[task.name] = old
                continue
        t_task = time.perf_counter()
        analysis = analyse_task(
            frame, task, cfg.fit, held, folder, source=str(Path(cfg.out) / RESULTS_CSV), echo=progress
        )
        analysis["fingerprint"] = stamp
        analysis["seconds"] = time.perf_counter() - t_task
        write_json(previous, analysis, strict=True)  # last: its presence marks the task as done
        fitted_any = True
        progress(_headline(analysis))
        analyses[task.name] = read_json(previous)
    _record_timing(cfg, "fit", start, skipped=not fitted_any)
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
    from emergence.report.demo_report import render_report, summarize

    progress = Progress(echo or (lambda line: print(line, file=sys.stdout, flush=True)))
    n_ckpt = sum(len(m.checkpoints) for m in ladder.models)
    progress.stage(
        1, "pretrain", f"ladder '{ladder.name}', {len(ladder.models)} models, {n_ckpt} checkpoints"
    )
    manifest = pretrain_stage(cfg, ladder, progress)
    progress.stage(2, "sweep", f"{len(cfg.tasks)} toy tasks × few-shot + budgets × seeds -> {cfg.sweep_dir}")
    frame = sweep_stage(cfg, manifest, source, progress)
    progress.stage(3, "fit", f"emergence law per task on the non-held-out checkpoints -> {cfg.out}")
    analyses = fit_stage(cfg, frame, manifest, progress)
    progress.stage(4, "report", f"-> {Path(cfg.out) / REPORT_MD}")
    start = _clock()
    timings = read_json(_timings_path(cfg)) if _timings_path(cfg).is_file() else {}
    summary = summarize(cfg, ladder, manifest, frame, analyses, timings, source)
    path = write_report(Path(cfg.out), summary, render_report(summary, analyses))
    _record_timing(cfg, "report", start, skipped=False)
    total = time.perf_counter() - progress.started
    acc = summary["acceptance"]
    progress(
        f"done in {total:.0f}s: few-shot emergence within 0.1 nats with >= 2x compute lookahead on "
        f"{acc['tasks_within_0_1_with_2x']}/{len(analyses)} tasks; finetuned emergence at higher loss on "
        f"{acc['tasks_finetuned_higher']}/{len(analyses)} -> {path}"
    )
    return path
