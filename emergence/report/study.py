"""`emergence study`: the demo repeated over world and training seeds and over every compute cutoff.

One demo run is one draw: a lucky seed can make a law look good (or bad). A study reruns the demo's
pretraining and sweep per seed (world and training seed together) and scores the law as a researcher
would use it: for every task, seed and compute cutoff leaving at least ``min_lookahead``× compute
before the first post-emergence checkpoint, the law's MLE (the paper's scoring rule) fitted on the
cheaper checkpoints against the full few-shot curve's elbow, beside the naive baselines
(:mod:`emergence.laws.baselines`). The report separates the seeds the demo was tuned on from the
others, so a reader can tell a tuned success from an honest one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from emergence.config import read_yaml, to_dict
from emergence.errors import UserError, check_fields
from emergence.report.demo_report import _f, _table

CASES_CSV = "cases.csv"


@dataclass(frozen=True)
class StudyConfig:
    """Which demo to repeat, over which seeds, and which cutoffs count as forecasts."""

    demo: str  # the demo config whose ladder, world, sweep and fit the study repeats
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)  # world seed = ladder training seed
    tuned_seeds: tuple[int, ...] = (0,)  # seeds the demo's design was chosen on (reported apart)
    out: str = "results/study"
    work: str = "runs/study"
    min_lookahead: float = 2.0  # first post-emergence checkpoint's FLOPs ÷ the cutoff
    min_checkpoints: int = 4  # fitted checkpoints a cutoff must leave

    def __post_init__(self) -> None:
        seeds = self.seeds
        if len(seeds) < 1 or len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
            raise UserError(f"seeds must be distinct whole numbers >= 0, got {list(seeds)}")
        check_fields(self, lambda v: math.isfinite(v) and v >= 1, ">= 1", "min_lookahead")
        check_fields(self, lambda v: v >= 2, ">= 2", "min_checkpoints")


def seeded_demo(study: StudyConfig, seed: int):
    """The demo config and ladder of one seed: its own ladder file, work and out folders."""
    from emergence.config import write_yaml
    from emergence.report.demo_config import load_demo_config
    from emergence.train.ladder_config import LadderConfig

    base, _ = load_demo_config(
        study.demo, out=str(Path(study.out) / f"seed{seed}"), work=str(Path(study.work) / f"seed{seed}")
    )
    raw = read_yaml(base.ladder)
    raw["seed"] = seed
    raw["world"] = dict(raw.get("world") or {}, seed=seed)
    raw["name"] = f"{raw['name']}-seed{seed}"
    work = Path(base.work)
    work.mkdir(parents=True, exist_ok=True)
    ladder_file = work / "ladder_config.yaml"
    write_yaml(ladder_file, raw, f"# {base.ladder} with seed {seed} (written by emergence study)\n")
    return replace(base, ladder=str(ladder_file)), LadderConfig.from_file(ladder_file)


def cutoff_cases(frame: pd.DataFrame, task, fit_settings, study: StudyConfig, seed: int) -> list[dict]:
    """Every admissible cutoff of one task and seed, each fitted (MLE) and scored with its baselines."""
    from emergence.laws.law_fit import fit_law
    from emergence.laws.predict import success
    from emergence.report.demo_analysis import finetuned_vs_fewshot, task_truth

    data, truth = task_truth(frame, task, fit_settings, f"seed {seed}")
    base = {"task": task.name, "seed": seed, "tuned": seed in study.tuned_seeds}
    higher = finetuned_vs_fewshot(data, truth.elbow if truth.emerged else None)["finetuned_higher"]
    if not truth.emerged:
        return [base | {"status": "no few-shot emergence on the ladder", "finetuned_higher": higher}]
    ckpt = pd.DataFrame({"id": data.checkpoint, "flops": data.flops, "loss": data.loss}).groupby("id").mean()
    first_post = float(ckpt.loc[ckpt["loss"] < truth.elbow, "flops"].min())
    cases = []
    for cutoff in sorted(ckpt["flops"].unique()):
        fitted = ckpt.index[ckpt["flops"] <= cutoff]
        lookahead = first_post / cutoff
        if lookahead < study.min_lookahead or len(fitted) < study.min_checkpoints:
            continue
        case = base | {
            "cutoff_flops": float(cutoff),
            "n_checkpoints": len(fitted),
            "lookahead": lookahead,
            "truth": truth.elbow,
            "finetuned_higher": higher,
        }
        try:
            fit = fit_law(data.subset(np.isin(data.checkpoint, fitted)), replace(fit_settings, sample=False))
        except UserError as err:
            cases.append(case | {"status": f"not fitted: {err}"})
            continue
        mle = fit.emergence()["mle"]
        case |= {
            "status": "scored",
            "law": mle,
            "error_law": abs(mle - truth.elbow),
            "within_0_1": success(mle, truth.elbow),
        }
        for name, value in fit.baselines().items():
            case |= {name: value, f"error_{name}": abs(value - truth.elbow)}
        cases.append(case)
    if not cases:  # every cutoff sees too little ahead or too few checkpoints: say so, do not drop the pair
        first = f"first post-emergence checkpoint at {first_post:.3g} FLOPs"
        cases.append(
            base
            | {"status": f"no admissible cutoff ({first})", "truth": truth.elbow, "finetuned_higher": higher}
        )
    return cases


def summarize_cases(cases: pd.DataFrame) -> dict:
    """Share within 0.1 nats, the law against the best baseline (paired bootstrap), finetuned higher."""
    from emergence.laws.baselines import BASELINES, compare

    out = {}
    for name, part in (("all", cases), ("untuned_seeds", cases[~cases["tuned"].astype(bool)])):
        scored = part[part["status"] == "scored"]
        if scored.empty:
            out[name] = {"cases": 0}
            continue
        errors = {"law": scored["error_law"].to_numpy(float)}
        errors |= {b: scored[f"error_{b}"].to_numpy(float) for b in BASELINES}
        comparison = compare(errors)
        best = comparison["best_baseline"]
        pairs = part.drop_duplicates(["task", "seed"])
        known = pairs["finetuned_higher"].dropna()
        out[name] = {
            "cases": int(len(scored)),
            "within_0_1": float(scored["within_0_1"].astype(bool).mean()),
            "law_mean_error": comparison["methods"]["law"]["mean_error"],
            "best_baseline": best,
            "law_over_best": comparison["versus"][best]["ratio"],
            "law_minus_best": comparison["versus"][best]["difference"],
            "comparison": comparison,
            "task_seed_pairs": int(len(pairs)),
            "pairs_without_truth": int((pairs["status"] == "no few-shot emergence on the ladder").sum()),
            "finetuned_higher_share": float(known.astype(bool).mean()) if len(known) else None,
        }
    return out


def run_study(study: StudyConfig, echo: Callable[[str], None] = print) -> Path:
    """Pretrain and sweep every seed (resumable), score every admissible cutoff, write the report."""
    from emergence.report.demo import pretrain_stage, sweep_stage, write_report
    from emergence.results_table import write_results

    out = Path(study.out)
    out.mkdir(parents=True, exist_ok=True)
    cases: list[dict] = []
    for i, seed in enumerate(study.seeds, start=1):
        cfg, ladder = seeded_demo(study, seed)
        echo(f"[seed {seed}: {i}/{len(study.seeds)}] pretrain + sweep -> {cfg.work}")
        manifest = pretrain_stage(cfg, ladder, echo)
        frame = sweep_stage(cfg, manifest, f"{study.demo} (seed {seed})", echo)
        for task in cfg.tasks:
            found = cutoff_cases(frame, task, cfg.fit, study, seed)
            scored = [c for c in found if c["status"] == "scored"]
            echo(
                f"  {task.name}: {len(scored)} cutoff(s) scored, "
                f"{sum(c['within_0_1'] for c in scored)} within 0.1 nats"
            )
            cases.extend(found)
    table = pd.DataFrame(cases)
    write_results(table, out / CASES_CSV, "csv")
    summary = {"config": to_dict(study), **summarize_cases(table)}
    return write_report(out, summary, render_study(summary, table))


def render_study(summary: dict, table: pd.DataFrame) -> str:
    """report.md: the headline per seed group, then every case."""
    from emergence.laws.baselines import BASELINES

    cfg = summary["config"]
    lines = [
        f"# Emergence study of `{cfg['demo']}`",
        "",
        f"Seeds {list(cfg['seeds'])} (world and training seed; tuned on {list(cfg['tuned_seeds'])}); every compute "
        f"cutoff leaving ≥ {cfg['min_lookahead']:g}× compute before the first post-emergence checkpoint and "
        f"≥ {cfg['min_checkpoints']} fitted checkpoints. The law's MLE of E(D0) against the full few-shot "
        "curve's elbow; baselines from the same rows. Reproduce: `emergence study configs/study.yaml`.",
        "",
        *_table(
            "seeds | cases | law within 0.1 | law mean \\|error\\| (95%) | best baseline | law ÷ best (95%) | "
            "finetuned higher (task, seed)",
            map(_headline, ("all", "untuned_seeds"), (summary["all"], summary["untuned_seeds"])),
        ),
        "",
        "## Every case",
        "",
    ]
    head = ["task", "seed", "cutoff FLOPs", "ckpts", "lookahead", "truth", "law", *BASELINES, "status"]
    rows = []
    for row in table.to_dict("records"):
        if row.get("status") == "scored":
            cutoff = f"{row['cutoff_flops']:.3g} | {int(row['n_checkpoints'])} | {row['lookahead']:.2f}×"
            predictions = [f"{_f(row[m])} ({_f(row[f'error_{m}'])})" for m in ("law", *BASELINES)]
            status = ""
        else:
            cutoff, predictions, status = "– | – | –", ["–"] * (1 + len(BASELINES)), str(row["status"])
        cells = [row["task"], str(row["seed"]), cutoff, _f(row.get("truth")), *predictions, status]
        rows.append(" | ".join(cells))
    lines += [*_table(" | ".join(head), rows), "", "Cells: prediction (|error|), nats."]
    return "\n".join(lines) + "\n"


def _headline(name: str, s: dict) -> str:
    """A seed group's row of the headline table."""
    if not s.get("cases"):
        return f"{name} | 0 | – | – | – | – | –"
    e, r = s["law_mean_error"], s["law_over_best"]
    return (
        f"{name} | {s['cases']} | {s['within_0_1']:.0%} | {_f(e['value'])} ({_f(e['low'])}–{_f(e['high'])}) | "
        f"{s['best_baseline']} {_f(s['comparison']['methods'][s['best_baseline']]['mean_error']['value'])} | "
        f"{_f(r['value'], '.2f')} ({_f(r['low'], '.2f')}–{_f(r['high'], '.2f')}) | "
        f"{_f(s['finetuned_higher_share'], '.2f')} of {s['task_seed_pairs'] - s['pairs_without_truth']}"
    )
