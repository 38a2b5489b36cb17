"""One toy task of the demo: fit on the non-held-out checkpoints, score against the held-out truth.

The backtest a newcomer should see: the law is fit only on checkpoints trained with less compute
(the researcher's situation) and its E(D0) is compared with the elbow of the *full* few-shot curve
(the paper's ground truth). Beside the 0.1-nat error it reports how far ahead the fit saw, the
forecast in compute, and whether finetuning moved emergence to higher loss at every budget (the
paper's central observation, on the raw per-budget curves). The fit's files are written by
:func:`emergence.laws.law_fit.write_fit_dir`, as ``emergence fit``'s, so ``emergence forecast`` reads them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from emergence.errors import UserError
from emergence.report.demo_config import DemoFit, DemoTask

#: Bumped when the analysis changes, so a rerun refits instead of reusing an older analysis.json.
ANALYSIS_VERSION = 8
#: The acceptance's lookahead: fitted checkpoints with at least this many times less compute.
MIN_COMPUTE_RATIO = 2.0
#: What makes a demo task's data able to identify the law: budgets that rise significantly before
#: the holdout, elbows increasing with D, and a narrow, physical interval.
MIN_RISING_BUDGETS = 4
MIN_SPEARMAN = 0.8
MAX_INTERVAL_NATS = 0.25


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def checkpoint_table(data, held: set[str], truth_elbow: float | None) -> list[dict]:
    """Per checkpoint: size, compute, loss, few-shot metric, held out?, past the true elbow?"""
    frame = pd.DataFrame(
        {
            "id": data.checkpoint,
            "params": data.params,
            "tokens": data.tokens,
            "flops": data.flops,
            "loss": data.loss,
            "fewshot": np.where(data.fewshot, data.y, np.nan),
            "budget": data.budget,
            "y": data.y,
        }
    )
    agg = frame.groupby("id", sort=False).agg("mean").sort_values("flops", kind="mergesort")
    by_budget = frame.groupby(["id", "budget"])["y"].mean()
    rows = []
    for cid, r in agg.iterrows():
        past = truth_elbow is not None and float(r["loss"]) < truth_elbow
        rows.append(
            {
                "id": str(cid),
                "params": _finite(r["params"]),
                "tokens": _finite(r["tokens"]),
                "flops": _finite(r["flops"]),
                "loss": float(r["loss"]),
                "fewshot": _finite(r["fewshot"]),
                "held_out": str(cid) in held,
                "post_emergence": bool(past),
                # mean metric over subset seeds, per budget (0 = few-shot)
                "by_budget": {str(int(b)): float(v) for b, v in by_budget.loc[cid].items()},
            }
        )
    return rows


def task_truth(frame: pd.DataFrame, task: DemoTask, settings: DemoFit, source: str = "results"):
    """A demo task's rows as the law reads them (the task's metric and chance level, the fit's D0),
    and their ground truth: the elbow of the full few-shot curve. Returns ``(LawData, TruthElbow)``."""
    from emergence.laws.predict import fewshot_truth
    from emergence.laws.table import select

    data = select(frame, task.name, metric=task.metric, d0=settings.d0, chance=task.chance, source=source)
    return data, fewshot_truth(data)


def first_post_emergence_flops(frame: pd.DataFrame, task: DemoTask, settings: DemoFit) -> float | None:
    """FLOPs of the cheapest checkpoint past the elbow of the task's full few-shot curve (None: no rise)."""
    data, truth = task_truth(frame, task, settings)
    if not truth.emerged:
        return None
    past = data.flops[data.fewshot & (data.loss < truth.elbow)]
    return float(np.nanmin(past)) if past.size else None


def fitted_budget_shape(fitted) -> dict:
    """What the fitted rows say about E(D): how many budgets rise significantly before the holdout,
    and whether their elbows increase with D (Spearman's rank correlation)."""
    from scipy import stats

    from emergence.laws.baselines import budget_elbows

    elbows = budget_elbows(fitted)
    budgets = sorted(elbows)
    rho = float(stats.spearmanr(budgets, [elbows[b] for b in budgets])[0]) if len(budgets) >= 3 else None
    return {
        "budgets_rising": len(budgets),
        "elbows": {str(int(b)): elbows[b] for b in budgets},
        "spearman": rho if rho is None or math.isfinite(rho) else None,
    }


def compute_lookahead(table: list[dict]) -> dict:
    """First post-emergence checkpoint (least compute past the true elbow) ÷ max fitted compute."""
    fitted = [r["flops"] for r in table if not r["held_out"] and r["flops"] is not None]
    past = [r for r in table if r["post_emergence"] and r["flops"] is not None]
    first = min(past, key=lambda r: r["flops"]) if past else None
    max_fitted = max(fitted) if fitted else None
    ratio = first["flops"] / max_fitted if first and max_fitted else None
    fitted_past = [r["id"] for r in table if r["post_emergence"] and not r["held_out"]]
    return {
        "max_fitted_flops": max_fitted,
        "first_post_emergence": None if first is None else {"id": first["id"], "flops": first["flops"]},
        "ratio": ratio,
        "fitted_post_emergence": fitted_past,
    }


def finetuned_vs_fewshot(data, fewshot_elbow: float | None, fit=None) -> dict:
    """Observed emergence point of every budget's curve (hard-ReLU elbow) against the few-shot one,
    and the law's E(D)."""
    from emergence.laws.baselines import budget_fits
    from emergence.laws.emergence_law import elbow_at
    from emergence.laws.predict import quantiles

    rows = []
    for budget, t in budget_fits(data).items():
        entry = {
            "budget": int(budget),
            "elbow": _finite(t.elbow),
            "emerged": t.emerged,
            "p_value": t.p_value,
            # undetermined (None) unless both this budget's curve and the few-shot curve rose
            "higher_than_fewshot": None
            if not t.emerged or fewshot_elbow is None
            else bool(t.elbow > fewshot_elbow),
        }
        if fit is not None:
            entry["law_mle"] = float(elbow_at(fit.mle.theta, fit.geo, float(budget)))
            if fit.posterior is not None:
                entry["law"] = quantiles(elbow_at(fit.posterior.samples, fit.geo, float(budget)))
        rows.append(entry)
    verdicts = [r["higher_than_fewshot"] for r in rows if r["higher_than_fewshot"] is not None]
    return {
        "fewshot_elbow": fewshot_elbow,
        "budgets": rows,
        # every budget whose curve rose did so at a higher loss than the few-shot curve's elbow;
        # None: undetermined (the few-shot curve or no finetuned curve rose)
        "finetuned_higher": all(verdicts) if verdicts else None,
    }


def analyse_task(
    frame: pd.DataFrame,
    task: DemoTask,
    settings: DemoFit,
    held: set[str],
    out: Path,
    *,
    source: str,
    echo: Callable[[str], None] = print,
) -> dict:
    """Fit, backtest and forecast one task; writes fit.json, samples.npz and plots into ``out``."""
    from emergence.laws.backtest import run_backtests
    from emergence.laws.law_fit import FIT_JSON, SAMPLES, fit_law, write_fit_dir
    from emergence.laws.predict import success
    from emergence.laws.scaling import emergence_compute
    from emergence.report.law_plots import plot_e0_cdf, plot_elbows, plot_fit, plot_forecast

    data, truth = task_truth(frame, task, settings, source)
    truth_value = truth.elbow if truth.emerged else None
    keep = ~np.isin(data.checkpoint, sorted(held))
    if not keep.any():
        raise UserError(f"{source}: task '{task.name}': every checkpoint is held out; nothing left to fit")
    fitted = data.subset(
        keep, note=f"demo: {len(set(data.checkpoint[~keep]))} held-out checkpoint(s) removed"
    )
    echo(
        f"  {task.name}/{data.metric}: fitting {int(keep.sum())} rows from "
        f"{len(set(fitted.checkpoint))} checkpoints ({int((~keep).sum())} held-out rows)"
    )
    fit = fit_law(fitted, settings)
    plots = {"fit_plot": "law.png", "e0_cdf_plot": "e0_cdf.png"}
    summary, law = write_fit_dir(out, fit, truth=truth_value, files=plots)

    e0 = fit.emergence()
    point = e0["mle"]  # the paper's rule scores the MLE; the posterior's median and interval go beside it
    table = checkpoint_table(data, held, truth_value)
    lookahead = compute_lookahead(table)
    error = abs(point - truth_value) if truth_value is not None else None
    within = truth_value is not None and success(point, truth_value)
    ratio_ok = lookahead["ratio"] is not None and lookahead["ratio"] >= MIN_COMPUTE_RATIO
    forecast = None
    if law is not None and fit.e0_draws() is not None:
        forecast = emergence_compute(fit.e0_draws(), law)
        forecast["observed_first_post_emergence_flops"] = (lookahead["first_post_emergence"] or {}).get(
            "flops"
        )
    elbows = finetuned_vs_fewshot(data, truth_value, fit)
    shape = fitted_budget_shape(fitted)
    diag = summary["diagnostics"]
    interval_ok = math.isfinite(e0["q05"]) and e0["q95"] - e0["q05"] <= MAX_INTERVAL_NATS and e0["q05"] >= 0.0
    protocols = None
    if settings.protocols and truth.emerged:
        protocols = run_backtests(data, replace(settings, sample=False)).as_dict()
    elif settings.protocols:
        protocols = {"not_run": "the few-shot curve never rises clearly above chance: no ground truth"}

    plot_fit(fit, out / "law.png", data=data, held=held, truth=truth_value)
    plot_e0_cdf(fit, out / "e0_cdf.png", truth=truth_value)
    plot_elbows(fit, elbows, truth_value, out / "elbows.png")
    files = {"fit": FIT_JSON, "samples": SAMPLES, "law_plot": "law.png", "e0_cdf_plot": "e0_cdf.png"}
    files["elbows_plot"] = "elbows.png"
    if law is not None:
        plot_forecast(law, table, e0, truth_value, forecast, data.task, out / "forecast.png")
        files["forecast_plot"] = "forecast.png"
    return {
        "task": data.task,
        "metric": data.metric,
        "chance": data.chance,
        "d0": data.d0,
        "n_rows": int(data.loss.size),
        "n_rows_fitted": int(keep.sum()),
        "prediction": e0,
        "truth": {
            "elbow": _finite(truth.elbow),
            "emerged": truth.emerged,
            "p_value": truth.p_value,
            "slope": truth.slope,
            "base": truth.base,
            "n_past_rows": truth.n_past,
        },
        "error_nats": error,
        "baselines": {
            name: {"prediction": value, "error": None if truth_value is None else abs(value - truth_value)}
            for name, value in fit.baselines().items()
        },
        "compute": lookahead,
        "acceptance": {
            "within_0_1_nats": bool(within),
            "compute_ratio_at_least_2": bool(ratio_ok),
            "success": bool(within and ratio_ok),
            "budgets_rising_before_holdout": shape["budgets_rising"],
            "at_least_4_budgets_rise": shape["budgets_rising"] >= MIN_RISING_BUDGETS,
            "elbows_spearman": shape["spearman"],
            "elbows_increase_with_d": shape["spearman"] is not None and shape["spearman"] >= MIN_SPEARMAN,
            "interval_width": None if not math.isfinite(e0["q05"]) else e0["q95"] - e0["q05"],
            "interval_narrow_and_physical": bool(interval_ok),
            "converged": bool(
                diag["r_hat_max"] is not None and diag["r_hat_max"] <= 1.01 and diag["divergences"] == 0
            ),
        },
        "fitted_budgets": shape,
        "finetuned_vs_fewshot": elbows,
        "forecast": forecast,
        "fit": {
            k: summary[k] for k in ("diagnostics", "warnings", "notes", "params", "seconds", "compute_law")
        },
        "protocols": protocols,
        "checkpoints": table,
        "files": files,
    }
