"""The demo's summary.json and report.md: what ran, what was predicted, and how it compares to the truth.

Why both: summary.json is for machines (tests, a closing note), report.md for readers on GitHub.
The report states its numbers with their definitions next to them (what the ground truth is, what
the compute ratio divides) and states failures as plainly as successes: a task whose few-shot curve
never rose has no ground truth, and says so rather than showing a made-up error.
"""

from __future__ import annotations

import math
import platform
import time
from pathlib import Path

from emergence.config import to_dict
from emergence.report.demo_analysis import MIN_COMPUTE_RATIO

_STAGE_ORDER = {"pretrain": 0, "sweep": 1, "fit": 2, "report": 3}
#: Tasks on which the acceptance asks for a successful forecast.
MIN_TASKS = 2


def summarize(cfg, ladder, manifest: Path, frame, analyses: dict, timings: dict, source: str) -> dict:
    """Headline numbers per task, the acceptance verdicts, what ran and how long it took."""
    from emergence.train.pretrain import read_manifest

    entries = read_manifest(manifest)
    tasks = {}
    for name, a in analyses.items():
        tasks[name] = {
            "metric": a["metric"],
            "d0": a["d0"],
            "prediction": a["prediction"],
            "truth_elbow": a["truth"]["elbow"] if a["truth"]["emerged"] else None,
            "truth_emerged": a["truth"]["emerged"],
            "error_nats": a["error_nats"],
            "baselines": a.get("baselines", {}),
            "compute_ratio": a["compute"]["ratio"],
            "first_post_emergence": a["compute"]["first_post_emergence"],
            "max_fitted_flops": a["compute"]["max_fitted_flops"],
            "finetuned_higher": a["finetuned_vs_fewshot"]["finetuned_higher"],
            "acceptance": a["acceptance"],
            "diagnostics": {k: a["fit"]["diagnostics"].get(k) for k in ("r_hat_max", "divergences")},
            "held_out": sorted(r["id"] for r in a["checkpoints"] if r["held_out"]),
        }
    wins = sum(t["acceptance"]["success"] for t in tasks.values())
    scored = [t for t in tasks.values() if t["error_nats"] is not None and t["baselines"]]
    law_mean = sum(t["error_nats"] for t in scored) / len(scored) if scored else None
    baseline_means = (
        {b: sum(t["baselines"][b]["error"] for t in scored) / len(scored) for b in scored[0]["baselines"]}
        if scored
        else {}
    )
    higher = sum(bool(t["finetuned_higher"]) for t in tasks.values())
    own = {t.name: to_dict(t.holdout) for t in cfg.tasks if t.holdout is not None}
    held = sorted({h for name, t in tasks.items() if name not in own for h in t["held_out"]})
    return {
        "name": cfg.name,
        "config": source,
        "out": cfg.out,
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {"cpus": _cpus(), "platform": platform.platform()},
        "ladder": {
            "name": ladder.name,
            "config": cfg.ladder,
            "models": [to_dict(m) for m in ladder.models],
            "checkpoints": len(entries),
            "flops_range": [min(e["flops"] for e in entries), max(e["flops"] for e in entries)],
        },
        "sweep": {
            "rows": len(frame),
            "budgets": sorted({int(b) for b in frame["budget"].dropna()}),
            "subset_seeds": sorted({int(s) for s in frame["subset_seed"].dropna()}),
            "tasks": [t.name for t in cfg.tasks],
        },
        "holdout": {"spec": to_dict(cfg.holdout), "checkpoints": held, "by_task": own},
        "fit": to_dict(cfg.fit),
        "tasks": tasks,
        "acceptance": {
            "tasks_within_0_1_with_2x": wins,
            "forecast_ok": wins >= MIN_TASKS,
            "tasks_finetuned_higher": higher,
            "finetuned_higher_everywhere": higher == len(tasks) and bool(tasks),
            "law_mean_error": law_mean,
            "baseline_mean_errors": baseline_means,
            "law_beats_best_baseline": None
            if law_mean is None or not baseline_means
            else law_mean < min(baseline_means.values()),
        },
        "timings": timings,
    }


def _cpus() -> int | None:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _f(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def _g(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.3g}"


def _yes(value) -> str:
    return "–" if value is None else ("yes" if value else "no")


def render_report(summary: dict, analyses: dict[str, dict]) -> str:
    """report.md from the summary and each task's analysis (paths relative to the report's folder)."""
    lines = _head(summary)
    for name in summary["tasks"]:
        lines += _task_section(name, analyses[name])
    lines += _tail(summary)
    return "\n".join(lines) + "\n"


def _head(s: dict) -> list[str]:
    acc = s["acceptance"]
    n = len(s["tasks"])
    lad = s["ladder"]
    lines = [
        f"# Emergence demo: `{s['name']}`",
        "",
        f"Generated by `emergence demo {s['config']}` on {s['created']} ({s['machine']['cpus']} CPUs). "
        "The whole method on a CPU: a ladder of tiny LLaMA models pretrained on the toy world "
        "(docs/toy-world.md), few-shot and finetuned evaluations of every checkpoint, the emergence law "
        "(Snell et al., 2024) fitted on the smaller checkpoints only, and its few-shot prediction checked "
        "against the held-out larger ones.",
        "",
        f"- **Ladder** `{lad['name']}` ({lad['config']}): {len(lad['models'])} models, {lad['checkpoints']} "
        f"checkpoints, {_g(lad['flops_range'][0])}–{_g(lad['flops_range'][1])} training FLOPs.",
        f"- **Sweep**: {s['sweep']['rows']} cells over tasks {', '.join(s['sweep']['tasks'])}; budgets "
        f"{s['sweep']['budgets']} (0 = few-shot), subset seeds {s['sweep']['subset_seeds']}.",
        *_holdout_lines(s),
        f"- **Fit**: {s['fit']['form']} E(D), {s['fit']['likelihood']} likelihood, NUTS {s['fit']['chains']} "
        f"chains × {s['fit']['samples']} draws ({s['fit']['warmup']} warmup).",
        "",
        "## Results",
        "",
        "Predicted E(D0): the MLE of the few-shot emergence point (the paper's rule), with the posterior "
        "median and 90% interval beside it, from the fitted checkpoints. True elbow: hard-ReLU elbow of the *full* few-shot curve (held-out checkpoints "
        "included). Compute ratio: FLOPs of the first post-emergence checkpoint ÷ the largest FLOPs among "
        "the fitted checkpoints. Finetuned higher: every finetuning budget whose curve rose did so at a "
        "higher loss than the few-shot curve's elbow (– when the few-shot curve or no finetuned curve rose).",
        "",
        "| task | metric | predicted E(D0): MLE (median, 90%) | true elbow | error (nats) | ≤ 0.1 | compute ratio | "
        "finetuned higher |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, t in s["tasks"].items():
        p = t["prediction"]
        lines.append(
            f"| `{name}` | {t['metric']} | {_f(p['mle'])} ({_f(p['median'])}, {_f(p['q05'])}–{_f(p['q95'])}) | "
            f"{_f(t['truth_elbow'])} | {_f(t['error_nats'])} | {_yes(t['acceptance']['within_0_1_nats'] if t['truth_emerged'] else None)} | "
            f"{_f(t['compute_ratio'], 2)}× | {_yes(t['finetuned_higher'])} |"
        )
    lines += [
        "",
        f"- Few-shot emergence predicted within 0.1 nats from checkpoints with ≥ {MIN_COMPUTE_RATIO:g}× less "
        f"compute than the first post-emergence checkpoint: **{acc['tasks_within_0_1_with_2x']}/{n} tasks** "
        f"(target ≥ {MIN_TASKS}: {'met' if acc['forecast_ok'] else 'not met'}).",
        f"- Finetuned emergence at higher loss than few-shot: **{acc['tasks_finetuned_higher']}/{n} tasks** "
        f"({'every task' if acc['finetuned_higher_everywhere'] else 'not every task'}).",
        "",
        *_baseline_lines(s),
        *_identification_lines(s),
    ]
    return lines


def _identification_lines(s: dict) -> list[str]:
    """Whether each task's fitted rows can identify the law at all (issue 25's data checks)."""
    lines = [
        "Can the fitted rows identify the law? Budgets whose finetuned curve rises significantly "
        "(p < 0.01) on the fitted checkpoints (target ≥ 4); Spearman's ρ of their elbows against D "
        "(target ≥ 0.8); the width of E(D0)'s 90% interval (target ≤ 0.25 nats, none below 0 nats); "
        "r̂ (≤ 1.01) and divergences (0):",
        "",
        "| task | budgets rising | ρ(elbow, D) | 90% width | r̂ | divergences |",
        "|---|---|---|---|---|---|",
    ]
    for name, t in s["tasks"].items():
        a, d = t["acceptance"], t["diagnostics"]
        lines.append(
            f"| `{name}` | {a['budgets_rising_before_holdout']} | {_f(a['elbows_spearman'], 2)} | "
            f"{_f(a['interval_width'])} | {_f(d['r_hat_max'])} | {d['divergences']} |"
        )
    return lines + [""]


def _baseline_lines(s: dict) -> list[str]:
    """The law's |error| beside the naive baselines' (emergence.laws.baselines), task by task."""
    tasks = {n: t for n, t in s["tasks"].items() if t.get("baselines")}
    if not tasks:
        return []
    names = list(next(iter(tasks.values()))["baselines"])
    lines = [
        "Baselines, from the same fitted rows: `strongest` = the strongest fitted checkpoint's loss; "
        "`smallest_budget` = the observed elbow of the smallest finetuning budget; `linear` = a straight "
        "line through the observed per-budget elbows in log D, extrapolated to D0. |error| in nats:",
        "",
        "| task | law (MLE) | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for name, t in tasks.items():
        lines.append(
            f"| `{name}` | {_f(t['error_nats'])} | "
            + " | ".join(_f(t["baselines"][b]["error"]) for b in names)
            + " |"
        )
    acc = s["acceptance"]
    if acc.get("law_mean_error") is not None:
        lines.append(
            f"| mean | **{_f(acc['law_mean_error'])}** | "
            + " | ".join(_f(acc["baseline_mean_errors"][b]) for b in names)
            + " |"
        )
        verdict = "below" if acc["law_beats_best_baseline"] else "not below"
        lines += ["", f"- The law's mean error is **{verdict}** the best baseline's on these tasks."]
    return lines + [""]


def _task_section(name: str, a: dict) -> list[str]:
    p, t, c = a["prediction"], a["truth"], a["compute"]
    files = a["files"]
    lines = [
        f"## `{name}` ({a['metric']})",
        "",
        f"![accuracy vs loss by budget]({name}/{files['law_plot']})",
        "",
    ]
    lines.append(
        f"- **Predicted few-shot emergence** E(D0 = {a['d0']:g}) = **{_f(p['mle'])} nats** (MLE; "
        f"posterior median {_f(p['median'])}, 90% interval {_f(p['q05'])}–{_f(p['q95'])}), fitted on "
        f"{a['n_rows_fitted']} of {a['n_rows']} rows."
    )
    if t["emerged"]:
        lines.append(
            f"- **Ground truth** (elbow of the full few-shot curve, held-out checkpoints included): "
            f"**{_f(t['elbow'])} nats** (rise significant, p = {t['p_value']:.2g})."
        )
        ok = "within" if a["acceptance"]["within_0_1_nats"] else "outside"
        lines.append(
            f"- **Error**: |{_f(p['mle'])} − {_f(t['elbow'])}| = **{_f(a['error_nats'])} nats**, {ok} 0.1."
        )
    else:
        lines.append(
            f"- **Ground truth**: none — the few-shot curve never rises significantly above chance on this "
            f"ladder (p = {t['p_value']:.2g}), so there is no elbow to check the prediction against."
        )
    first = c["first_post_emergence"]
    if first is not None:
        lines.append(
            f"- **Compute**: the fitted checkpoints used at most {_g(c['max_fitted_flops'])} FLOPs; the first "
            f"post-emergence checkpoint `{first['id']}` used {_g(first['flops'])} FLOPs: "
            f"**{_f(c['ratio'], 2)}× more**."
        )
    if c["fitted_post_emergence"]:
        lines.append(
            f"- Note: fitted checkpoints already past the true elbow: {', '.join(c['fitted_post_emergence'])}."
        )
    f = a["forecast"]
    law = a["fit"]["compute_law"]
    if f is not None and law is not None:
        e = f["flops"]
        lines.append(
            f"- **Forecast in compute**: L(C) = {law['e_inf']:.3f} + {law['a']:.3f}·(C/{law['c_ref']:.3g})^−{law['b']:.3f} "
            f"(rmse {law['rmse']:.3f}, {law['n_points']} fitted checkpoints) puts E(D0) at "
            f"{_g(e['median'])} FLOPs (90% {_g(e['q05'])}–{_g(e['q95'])}; P(unreachable) {f['p_unreachable']:.2f}); "
            f"observed first post-emergence checkpoint: {_g(f.get('observed_first_post_emergence_flops'))} FLOPs."
        )
    lines += ["", _elbow_table(a), ""]
    lines.append(
        f"![emergence vs data]({name}/{files['elbows_plot']}) ![E(D0) posterior]({name}/{files['e0_cdf_plot']})"
    )
    if "forecast_plot" in files:
        lines.append(f"![forecast]({name}/{files['forecast_plot']})")
    d = a["fit"]["diagnostics"]
    lines += [
        "",
        f"Fit diagnostics: r̂ max {_f(d['r_hat_max'])}, ESS min {_f(d['ess_min'], 0)}, divergences "
        f"{d['divergences']}; {a['fit']['seconds']:.1f} s.",
    ]
    lines += [f"- warning: {w}" for w in a["fit"]["warnings"]]
    lines += ["", *_protocols(a.get("protocols")), "", *_checkpoints(a["checkpoints"], a["metric"]), ""]
    return lines


def _elbow_table(a: dict) -> str:
    rows = [
        "| budget D | observed elbow (nats) | law E(D) median (90%) | rose? | higher than few-shot |",
        "|---|---|---|---|---|",
    ]
    fs = a["finetuned_vs_fewshot"]["fewshot_elbow"]
    p = a["prediction"]
    rows.append(
        f"| few-shot (D0={a['d0']:g}) | {_f(fs)} | {_f(p['median'])} ({_f(p['q05'])}–{_f(p['q95'])}) | {_yes(a['truth']['emerged'])} | |"
    )
    for b in a["finetuned_vs_fewshot"]["budgets"]:
        law = b.get("law") or {"median": b.get("law_mle"), "q05": None, "q95": None}
        rows.append(
            f"| {b['budget']} | {_f(b['elbow']) if b['emerged'] else '–'} | {_f(law['median'])} "
            f"({_f(law['q05'])}–{_f(law['q95'])}) | {_yes(b['emerged'])} | {_yes(b['higher_than_fewshot'])} |"
        )
    return "\n".join(rows)


def _protocols(protocols: dict | None) -> list[str]:
    if protocols is None:
        return []
    if "not_run" in protocols:
        return [f"Backtest protocols: not run ({protocols['not_run']})."]
    lines = [
        "<details><summary>The paper's backtest protocols on the full table (MLE only)</summary>",
        "",
        "| protocol | rows | checkpoints | E(D0) MLE | abs. error (nats) | ≤ 0.1 |",
        "|---|---|---|---|---|---|",
    ]
    for r in protocols["rows"]:
        lines.append(
            f"| {r['protocol']} | {r['n_rows']} | {r['n_checkpoints']} | {_f(r['mle'])} | {_f(r['error'])} | {_yes(r['success'])} |"
        )
    lines += [*(f"- skipped {s}" for s in protocols["skipped"]), "", "</details>"]
    return lines


def _checkpoints(table: list[dict], metric: str) -> list[str]:
    budgets = sorted({int(b) for r in table for b in r["by_budget"]})
    names = ["few-shot" if b == 0 else f"D={b}" for b in budgets]
    lines = [
        f"<details><summary>Checkpoints: {metric} by budget (mean over subset seeds)</summary>",
        "",
        f"| checkpoint | params | tokens | FLOPs | loss | {' | '.join(names)} | held out | past true elbow |",
        "|---|---|---|---|---|" + "---|" * len(budgets) + "---|---|",
    ]
    for r in table:
        values = " | ".join(_f(r["by_budget"].get(str(b))) for b in budgets)
        lines.append(
            f"| `{r['id']}` | {_g(r['params'])} | {_g(r['tokens'])} | {_g(r['flops'])} | {_f(r['loss'])} | "
            f"{values} | {_yes(r['held_out'])} | {_yes(r['post_emergence'])} |"
        )
    return [*lines, "", "</details>"]


def _tail(s: dict) -> list[str]:
    lines = [
        "## Time",
        "",
        "| stage | wall seconds | CPU seconds | load average (start → end) | |",
        "|---|---|---|---|---|",
    ]
    for stage, t in sorted(s["timings"].items(), key=lambda kv: _STAGE_ORDER.get(kv[0], 99)):
        note = "skipped (outputs existed)" if t.get("skipped") else ""
        lines.append(
            f"| {stage} | {t['seconds']:.0f} | {t.get('cpu_seconds', float('nan')):.0f} | "
            f"{t['load_start']:.1f} → {t['load_end']:.1f} | {note} |"
        )
    lines += [
        "",
        "Wall-clock and CPU seconds (user + system, all threads of the demo process and of its helper "
        "processes) of the last run that did each stage's work, with the 1-minute load average "
        f"around it, on a machine with {s['machine']['cpus']} CPUs: when the load average exceeds the "
        "CPU count, other processes slow every stage. On an idle machine a stage needs at least its CPU "
        "seconds ÷ CPUs, and about its CPU seconds where its work runs on one thread at a time (as tiny "
        "JAX programs mostly do).",
        "",
        "## Reproduce",
        "",
        "```",
        f"emergence demo {s['config']}            # or: make demo; reruns skip finished stages",
        f"emergence forecast {s['out']}/<task> --flops 1e15   # P(emerged) for a bigger model",
        "```",
    ]
    return lines


def _holdout_lines(s: dict) -> list[str]:
    """The held-out checkpoints: one line when every task shares them, else one per own holdout."""
    own = s["holdout"].get("by_task") or {}
    shared = [n for n in s["tasks"] if n not in own]
    lines = []
    if shared:
        scope = "every fit" if not own else "the fits of " + ", ".join(f"`{n}`" for n in shared)
        lines.append(
            f"- **Held out** of {scope} (the backtest's future): {', '.join(s['holdout']['checkpoints'])}."
        )
    for name in own:
        lines.append(
            f"- **Held out** of the `{name}` fit (its own holdout, {_holdout_spec(own[name])}): "
            f"{', '.join(s['tasks'][name]['held_out'])}."
        )
    return lines


def _holdout_spec(spec: dict) -> str:
    """A Holdout in words, naming only the ways it uses ("FLOPs above 1.2e+12; the 2 largest")."""
    parts = []
    if spec.get("models"):
        parts.append(f"models {', '.join(spec['models'])}")
    if spec.get("checkpoints"):
        parts.append(f"checkpoints {', '.join(spec['checkpoints'])}")
    if spec.get("flops_above") is not None:
        parts.append(f"FLOPs above {_g(spec['flops_above'])}")
    if spec.get("largest"):
        parts.append(f"the {spec['largest']} largest")
    return "; ".join(parts)
