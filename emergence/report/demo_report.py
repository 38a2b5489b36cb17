"""The demo's summary.json (for machines: tests, a closing note) and report.md (for readers).

The report puts each number's definition beside it and states failures as plainly as successes: a
task whose few-shot curve never rose has no ground truth, and says so rather than show an error.
"""

from __future__ import annotations

import math
import os
import platform
import time
from pathlib import Path

from emergence.config import to_dict
from emergence.report.demo_analysis import MIN_COMPUTE_RATIO

MIN_TASKS = 2  # tasks on which the acceptance asks for a successful forecast
STAGES = ("pretrain", "sweep", "fit", "report")  # the demo's, in order: its progress and the time table
# the sections of a task's analysis.json that summary.json repeats
_HEADLINE = ("metric", "d0", "prediction", "truth", "error_nats", "baselines", "compute", "acceptance")
_HEADLINE += ("finetuned_vs_fewshot", "fit")


def cpu_model() -> str:
    """The CPU's model name and widest vector extension: float noise across machines follows them, so
    a run records them next to its numbers (Linux; "unknown" elsewhere)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown"

    def first(key: str) -> str:  # the first CPU's value of a field
        return next((line.split(":", 1)[1] for line in lines if line.startswith(key)), "")

    name, flags = first("model name").strip() or "unknown", first("flags").split()
    simd = next((f for f in ("avx512f", "avx2", "avx") if f in flags), "no avx")
    return f"{name} ({simd})"


def summarize(cfg, ladder, manifest: Path, frame, analyses: dict, timings: dict, source: str) -> dict:
    """Headline numbers per task, the acceptance verdicts, what ran and how long it took."""
    from emergence.train.pretrain import read_manifest

    flops = [e["flops"] for e in read_manifest(manifest)]
    tasks = {name: {k: a[k] for k in _HEADLINE} for name, a in analyses.items()}
    wins = sum(t["acceptance"]["success"] for t in tasks.values())
    higher = sum(bool(t["finetuned_vs_fewshot"]["finetuned_higher"]) for t in tasks.values())
    scored = [t for t in tasks.values() if t["error_nats"] is not None and t["baselines"]]
    law_mean = sum(t["error_nats"] for t in scored) / len(scored) if scored else None
    names = scored[0]["baselines"] if scored else {}
    baseline_means = {b: sum(t["baselines"][b]["error"] for t in scored) / len(scored) for b in names}
    own = {t.name: to_dict(t.holdout) for t in cfg.tasks if t.holdout is not None}
    held = {r["id"] for n, a in analyses.items() if n not in own for r in a["checkpoints"] if r["held_out"]}
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "name": cfg.name,
        "config": source,
        "out": cfg.out,
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {"cpus": cpus, "cpu": cpu_model(), "platform": platform.platform()},
        "ladder": {
            "name": ladder.name,
            "config": cfg.ladder,
            "models": [to_dict(m) for m in ladder.models],
            "checkpoints": len(flops),
            "flops_range": [min(flops), max(flops)],
        },
        "sweep": {
            "rows": len(frame),
            "budgets": sorted({int(b) for b in frame["budget"].dropna()}),
            "subset_seeds": sorted({int(s) for s in frame["subset_seed"].dropna()}),
            "tasks": [t.name for t in cfg.tasks],
        },
        "holdout": {"spec": to_dict(cfg.holdout), "checkpoints": sorted(held), "by_task": own},
        "fit": to_dict(cfg.fit),
        "tasks": tasks,
        "acceptance": {
            "tasks_within_0_1_with_2x": wins,
            "forecast_ok": wins >= MIN_TASKS,
            "tasks_finetuned_higher": higher,
            "finetuned_higher_everywhere": higher == len(tasks) and bool(tasks),
            "law_mean_error": law_mean,
            "baseline_mean_errors": baseline_means,
            "law_beats_best_baseline": law_mean < min(baseline_means.values()) if scored else None,
        },
        "timings": timings,
    }


def _f(value, spec: str = ".3f") -> str:
    """A number as the report prints it; – when missing or not finite."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return format(value, spec)


def _g(value) -> str:
    return _f(value, ".3g")


def _yes(value) -> str:
    return "–" if value is None else ("yes" if value else "no")


def _band(q: dict) -> str:
    return f"{_f(q['median'])} ({_f(q['q05'])}–{_f(q['q95'])})"


def _table(header: str, rows) -> list[str]:
    """A markdown table from "a | b | c" strings: the header, its rule, the rows."""
    return [f"| {header} |", "|---" * (header.count(" | ") + 1) + "|", *(f"| {row} |" for row in rows)]


def render_report(summary: dict, analyses: dict[str, dict]) -> str:
    """report.md from the summary and each task's analysis (paths relative to the report's folder)."""
    s, acc, n = summary, summary["acceptance"], len(analyses)
    lad, sweep, fit, own = s["ladder"], s["sweep"], s["fit"], s["holdout"]["by_task"]
    held = []
    for name, a in analyses.items():
        rule = "own holdout, " if name in own else ""
        rule += "; ".join(
            f"{k}: {v}" for k, v in own.get(name, s["holdout"]["spec"]).items() if v not in (None, 0, [])
        )
        ids = ", ".join(sorted(r["id"] for r in a["checkpoints"] if r["held_out"]))
        held.append(f"- **Held out** of the `{name}` fit ({rule}): {ids}.")
    names = list(next(iter(analyses.values()))["baselines"])
    baselines = [
        f"`{name}` | {_f(a['error_nats'])} | " + " | ".join(_f(a["baselines"][b]["error"]) for b in names)
        for name, a in analyses.items()
    ]
    verdict = []
    if acc["law_mean_error"] is not None:
        baselines.append(
            f"mean | **{_f(acc['law_mean_error'])}** | "
            + " | ".join(_f(acc["baseline_mean_errors"][b]) for b in names)
        )
        below = "below" if acc["law_beats_best_baseline"] else "not below"
        verdict = [f"- The law's mean error is **{below}** the best baseline's on these tasks.", ""]
    lines = [
        f"# Emergence demo: `{s['name']}`",
        "",
        f"Generated by `emergence demo {s['config']}` on {s['created']} ({s['machine']['cpus']} CPUs). The "
        "whole method on a CPU: tiny LLaMA models pretrained on the toy world (docs/toy-world.md), few-shot "
        "and finetuned evaluations of every checkpoint, the emergence law (Snell et al., 2024) fitted on the "
        "smaller checkpoints only, and its few-shot prediction checked against the held-out larger ones.",
        "",
        f"- **Ladder** `{lad['name']}` ({lad['config']}): {len(lad['models'])} models, {lad['checkpoints']} "
        f"checkpoints, {_g(lad['flops_range'][0])}–{_g(lad['flops_range'][1])} training FLOPs.",
        f"- **Sweep**: {sweep['rows']} cells over tasks {', '.join(sweep['tasks'])}; budgets "
        f"{sweep['budgets']} (0 = few-shot), subset seeds {sweep['subset_seeds']}.",
        *held,
        f"- **Fit**: {fit['form']} E(D), {fit['likelihood']} likelihood, NUTS {fit['chains']} chains × "
        f"{fit['samples']} draws ({fit['warmup']} warmup).",
        "",
        "## Results",
        "",
        "Predicted E(D0): the MLE of the few-shot emergence point (the paper's rule), with the posterior "
        "median and 90% interval, from the fitted checkpoints. True elbow: hard-ReLU elbow of the *full* "
        "few-shot curve (held-out checkpoints included), with the p-value of its rise. Compute ratio: FLOPs "
        "of the first post-emergence checkpoint ÷ the largest fitted FLOPs. Finetuned higher: every budget "
        "whose curve rose did so at a higher loss than the few-shot elbow (– when none could be compared).",
        "",
        *_table(
            "task | metric | rows fitted | predicted E(D0): MLE (median, 90%) | true elbow (p) | error (nats) | "
            "≤ 0.1 | compute ratio | finetuned higher",
            [
                f"`{name}` | {a['metric']} | {a['n_rows_fitted']} of {a['n_rows']} | "
                f"{_f(p['mle'])} ({_f(p['median'])}, {_f(p['q05'])}–{_f(p['q95'])}) | "
                f"{_f(t['elbow'] if t['emerged'] else None)} ({t['p_value']:.2g}) | {_f(a['error_nats'])} | "
                f"{_yes(a['acceptance']['within_0_1_nats'] if t['emerged'] else None)} | "
                f"{_f(a['compute']['ratio'], '.2f')}× | {_yes(a['finetuned_vs_fewshot']['finetuned_higher'])}"
                for name, a in analyses.items()
                for p, t in [(a["prediction"], a["truth"])]
            ],
        ),
        "",
        f"- Few-shot emergence predicted within 0.1 nats from checkpoints with ≥ {MIN_COMPUTE_RATIO:g}× less "
        f"compute than the first post-emergence checkpoint: **{acc['tasks_within_0_1_with_2x']}/{n} tasks** "
        f"(target ≥ {MIN_TASKS}: {'met' if acc['forecast_ok'] else 'not met'}).",
        f"- Finetuned emergence at higher loss than few-shot: **{acc['tasks_finetuned_higher']}/{n} tasks**.",
        "",
        "Baselines, from the same fitted rows: `strongest` = the strongest fitted checkpoint's loss; "
        "`smallest_budget` = the observed elbow of the smallest finetuning budget; `linear` = a straight "
        "line through the observed per-budget elbows in log D, extrapolated to D0. |error| in nats:",
        "",
        *_table("task | law (MLE) | " + " | ".join(names), baselines),
        "",
        *verdict,
        "Can the fitted rows identify the law? Budgets whose finetuned curve rises significantly (p < 0.01) "
        "on the fitted checkpoints (target ≥ 4); Spearman's ρ of their elbows against D (≥ 0.8); the width "
        "of E(D0)'s 90% interval (≤ 0.25 nats, none below 0); r̂ (≤ 1.01); divergences (0):",
        "",
        *_table(
            "task | budgets rising | ρ(elbow, D) | 90% width | r̂ | ESS min | divergences | fit seconds",
            [
                f"`{name}` | {ok['budgets_rising_before_holdout']} | {_f(ok['elbows_spearman'], '.2f')} | "
                f"{_f(ok['interval_width'])} | {_f(d['r_hat_max'])} | {_f(d['ess_min'], '.0f')} | "
                f"{d['divergences']} | {a['fit']['seconds']:.1f}"
                for name, a in analyses.items()
                for ok, d in [(a["acceptance"], a["fit"]["diagnostics"])]
            ],
        ),
        "",
    ]
    for name, a in analyses.items():
        lines += _task_section(name, a)
    return "\n".join(lines + _tail(s)) + "\n"


def _task_section(name: str, a: dict) -> list[str]:
    """A task's plots, its compute forecast, and its elbow, protocol and checkpoint tables."""
    c, f, law, files = a["compute"], a["forecast"], a["fit"]["compute_law"], a["files"]
    first = c["first_post_emergence"]
    lines = [
        f"## `{name}` ({a['metric']}, D0 = {a['d0']:g})",
        "",
        f"![accuracy vs loss by budget]({name}/{files['law_plot']})",
        "",
    ]
    if not a["truth"]["emerged"]:
        lines.append(
            "- No ground truth: the few-shot curve never rises significantly above chance on this ladder, "
            "so there is no elbow to check the prediction against."
        )
    if first is not None:
        past = ", ".join(c["fitted_post_emergence"])
        lines.append(
            f"- Compute: the fitted checkpoints used at most {_g(c['max_fitted_flops'])} FLOPs, the first "
            f"post-emergence checkpoint `{first['id']}` {_g(first['flops'])}"
            + (f"; fitted checkpoints already past the true elbow: {past}." if past else ".")
        )
    if f is not None and law is not None:
        lines.append(
            f"- Forecast in compute: L(C) = {law['e_inf']:.3f} + {law['a']:.3f}·(C/{law['c_ref']:.3g})^−"
            f"{law['b']:.3f} (rmse {law['rmse']:.3f}, {law['n_points']} fitted checkpoints) puts E(D0) at "
            f"{_g(f['flops']['median'])} FLOPs (90% {_g(f['flops']['q05'])}–{_g(f['flops']['q95'])}; "
            f"P(unreachable) {f['p_unreachable']:.2f}); observed first post-emergence checkpoint: "
            f"{_g(f.get('observed_first_post_emergence_flops'))} FLOPs."
        )
    lines += [f"- Fit warning: {w}" for w in a["fit"]["warnings"]]
    elbows = a["finetuned_vs_fewshot"]
    rows = [
        f"few-shot | {_f(elbows['fewshot_elbow'])} | {_band(a['prediction'])} | {_yes(a['truth']['emerged'])} | "
    ]
    rows += [
        f"{b['budget']} | {_f(b['elbow'] if b['emerged'] else None)} | "
        f"{_band(b.get('law') or {'median': b.get('law_mle'), 'q05': None, 'q95': None})} | "
        f"{_yes(b['emerged'])} | {_yes(b['higher_than_fewshot'])}"
        for b in elbows["budgets"]
    ]
    alt = {"elbows_plot": "emergence vs data", "e0_cdf_plot": "E(D0) posterior", "forecast_plot": "forecast"}
    lines += [
        "",
        *_table(
            "budget D | observed elbow (nats) | law E(D) median (90%) | rose? | higher than few-shot", rows
        ),
        "",
        " ".join(f"![{text}]({name}/{files[key]})" for key, text in alt.items() if key in files),
        "",
    ]
    protocols = a.get("protocols")
    if protocols is not None and "not_run" in protocols:
        lines += [f"Backtest protocols: not run ({protocols['not_run']}).", ""]
    elif protocols is not None:
        lines += [
            "<details><summary>The paper's backtest protocols on the full table (MLE only)</summary>",
            "",
            *_table(
                "protocol | rows | checkpoints | E(D0) MLE | abs. error (nats) | ≤ 0.1",
                (
                    f"{r['protocol']} | {r['n_rows']} | {r['n_checkpoints']} | {_f(r['mle'])} | {_f(r['error'])} | "
                    f"{_yes(r['success'])}"
                    for r in protocols["rows"]
                ),
            ),
            *(f"- skipped {skipped}" for skipped in protocols["skipped"]),
            "",
            "</details>",
            "",
        ]
    budgets = sorted({int(b) for r in a["checkpoints"] for b in r["by_budget"]})
    columns = " | ".join("few-shot" if b == 0 else f"D={b}" for b in budgets)
    return lines + [
        f"<details><summary>Checkpoints: {a['metric']} by budget (mean over subset seeds)</summary>",
        "",
        *_table(
            f"checkpoint | params | tokens | FLOPs | loss | {columns} | held out | past true elbow",
            (
                f"`{r['id']}` | {_g(r['params'])} | {_g(r['tokens'])} | {_g(r['flops'])} | {_f(r['loss'])} | "
                + " | ".join(_f(r["by_budget"].get(str(b))) for b in budgets)
                + f" | {_yes(r['held_out'])} | {_yes(r['post_emergence'])}"
                for r in a["checkpoints"]
            ),
        ),
        "",
        "</details>",
        "",
    ]


def _tail(s: dict) -> list[str]:
    rows = (
        f"{stage} | {t['seconds']:.0f} | {t.get('cpu_seconds', math.nan):.0f} | "
        f"{t['load_start']:.1f} → {t['load_end']:.1f} | {'skipped (outputs existed)' if t.get('skipped') else ''}"
        for stage in STAGES
        if (t := s["timings"].get(stage)) is not None
    )
    return [
        "## Time",
        "",
        *_table("stage | wall seconds | CPU seconds | load average (start → end) | ", rows),
        "",
        "Wall-clock and CPU seconds (user + system, the demo's process and its helpers) of the last run that "
        f"did each stage's work, with the 1-minute load average around it, on {s['machine']['cpus']} CPUs: a "
        "load above the CPU count means other processes slowed the stage.",
        "",
        "## Reproduce",
        "",
        "```",
        f"emergence demo {s['config']}            # or: make demo; reruns skip finished stages",
        f"emergence forecast {s['out']}/<task> --flops 1e15   # P(emerged) for a bigger model",
        "```",
    ]
