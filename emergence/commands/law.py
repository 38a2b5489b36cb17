"""`emergence fit | backtest | forecast | simulate`: the emergence law from the command line.

The fit's settings are :class:`~emergence.laws.fit_config.FitSettings`, from ``--config`` and/or
``fit.*`` overrides. JAX, NumPyro and matplotlib are imported inside the commands so that
`emergence --help` stays fast and the CPU device count for parallel chains is set before JAX starts.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import fields
from pathlib import Path

import typer

from emergence.commands.shared import setup_devices
from emergence.errors import UserError
from emergence.fileio import check_output_dir, check_output_file, write_json
from emergence.laws.fit_config import FitFile, FitSettings


def _inputs(config: Path | None, overrides: list[str], results: Path, task: str, metric, chance):
    """The fit's settings (then one CPU device per chain, before JAX starts) and the task's rows."""
    from emergence.config import load_config

    settings = load_config(FitFile, config, overrides).fit
    setup_devices(settings.chains)
    from emergence.laws.table import select
    from emergence.results_table import read_results

    frame = read_results(results)
    data = select(frame, task, metric=metric, d0=settings.d0, chance=chance, source=str(results),
                  loss_unit=settings.loss_unit)  # fmt: skip
    return settings, data


def _known_truth(results: Path, data) -> float | None:
    """Truth for plots: a simulated table's sidecar, else the full few-shot curve's elbow if it rose."""
    from emergence.laws.predict import fewshot_truth
    from emergence.laws.simulate import read_truth

    record = read_truth(results)
    if record is not None:
        return float(record["e0"])
    truth = fewshot_truth(data)
    return truth.elbow if truth.emerged else None


#: The options both commands share: the table, which slice of it, and where the settings come from.
TABLE = typer.Argument(..., help="results table (CSV or Parquet, docs/design.md 'Results row')")
OVERRIDES = typer.Argument([], help="fit settings (see --config), e.g. fit.samples=300", show_default=False)
TASK = typer.Option(..., "--task", help="task name in the table's `task` column")
METRIC = typer.Option(None, "--metric", help="metric column (default: the first one with values)")
CHANCE = typer.Option(None, "--chance", help="chance level B (default: the task's; else estimated, B sampled)")
#: The settings and their defaults, listed from FitSettings itself, so --help shows a new one at once.
SETTINGS = ", ".join(f"{f.name}={json.dumps(f.default).strip(chr(34))}" for f in fields(FitSettings))
CONFIG = typer.Option(None, "--config", help=f"YAML with a fit: section, keys: {SETTINGS}")


def fit_cmd(
    results: Path = TABLE,
    overrides: list[str] = OVERRIDES,
    task: str = TASK,
    out: Path = typer.Option(..., "--out", help="output folder (fit.json, samples.npz, plots)"),
    config: Path = CONFIG,
    metric: str = METRIC,
    chance: float = CHANCE,
    backtest: bool = typer.Option(False, "--backtest", help="also run the backtests and plot their bars"),
) -> None:
    """Fit the emergence law (MLE + NUTS) and predict the few-shot emergence point E(D0)."""
    check_output_dir(out)
    settings, data = _inputs(config, overrides, results, task, metric, chance)
    from emergence.laws.law_fit import fit_law, write_fit_dir
    from emergence.report.law_plots import plot_e0_cdf, plot_fit

    fit = fit_law(data, settings)  # before the folder exists: a fit that cannot start leaves nothing
    out.mkdir(parents=True, exist_ok=True)
    truth = _known_truth(results, data)
    plot_fit(fit, out / "fit.png")
    plot_e0_cdf(fit, out / "e0_cdf.png", truth=truth)
    files, extra = {"fit_plot": "fit.png", "e0_cdf_plot": "e0_cdf.png"}, {}
    if backtest:
        extra["backtest"] = _backtest(data, settings, out)
        files["backtest_plot"] = "backtest.png"
    summary, _ = write_fit_dir(out, fit, truth=truth, files=files, extra=extra)
    e0 = summary["few_shot_emergence"]
    for note in summary["notes"]:
        print(f"note: {note}", file=sys.stderr)
    for warning in summary["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    diag = summary["diagnostics"]
    posterior = "not sampled)" if fit.posterior is None else (
        f"posterior median {e0['median']:.3f}, 90% {e0['q05']:.3f}–{e0['q95']:.3f}); r_hat {diag['r_hat_max']:.3f}, "
        f"ESS {diag['ess_min']:.0f}, divergences {diag['divergences']}"
    )  # fmt: skip
    unit = "nats" if data.loss_unit == "nats-per-token" else "bits/byte"
    print(f"{data.task}/{data.metric}: few-shot emergence E(D0={data.d0:g}) = {e0['mle']:.3f} {unit} (MLE; "
          f"{posterior}; {summary['seconds']:.1f} s → {out}")  # fmt: skip
    print(_baseline_line(summary["baselines"], e0["mle"], truth))


def _baseline_line(baselines: dict[str, float], mle: float, truth: float | None) -> str:
    """The naive forecasts beside the law's (with |error| when the truth is known)."""
    items = {"law (MLE)": mle, **baselines}
    if truth is None:
        return "baselines: " + ", ".join(f"{k} {v:.3f}" for k, v in baselines.items())
    return f"|error| against the truth {truth:.3f}: " + ", ".join(
        f"{k} {abs(v - truth):.3f}" for k, v in items.items()
    )


def _backtest(data, settings, out: Path | None) -> dict:
    from emergence.laws.backtest import format_table, run_backtests

    result = run_backtests(data, settings, progress=lambda line: print(line, file=sys.stderr))
    print(format_table(result))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)  # only once there is something to write
        if result.rows:
            from emergence.report.law_plots import plot_backtest

            plot_backtest(result, out / "backtest.png")
    return result.as_dict()


def backtest_cmd(
    results: Path = TABLE,
    overrides: list[str] = OVERRIDES,
    task: str = TASK,
    config: Path = CONFIG,
    metric: str = METRIC,
    chance: float = CHANCE,
    out: Path = typer.Option(None, "--out", help="folder for backtest.json and backtest.png"),
) -> None:
    """Run the paper's backtest protocols and print |error| against the few-shot ground truth
    (fit.sample=false: the MLE only, fast, no intervals)."""
    settings, data = _inputs(config, overrides, results, task, metric, chance)
    result = _backtest(data, settings, out)
    if out is not None:
        write_json(out / "backtest.json", result, strict=True)


def forecast_cmd(
    fit_dir: Path = typer.Argument(..., help="a folder written by `emergence fit` (or its fit.json)"),
    flops: float = typer.Option(None, "--flops", help="training FLOPs of the model"),
    params: float = typer.Option(None, "--params", help="parameter count (with --tokens)"),
    tokens: float = typer.Option(None, "--tokens", help="pretraining tokens (with --params)"),
    loss: float = typer.Option(None, "--loss", help="pretraining loss of the model (nats/token)"),
) -> None:
    """P(the capability has emerged few-shot) for a model, and the compute at which it emerges."""
    from emergence.laws.law_fit import read_fit_dir
    from emergence.laws.scaling import forecast

    fitted = read_fit_dir(fit_dir)
    result = forecast(fitted.e0_draws, fitted.compute_law, flops=flops, params=params, tokens=tokens, loss=loss)
    where = f"loss {result['loss']:.3f}"
    if "flops" in result:
        where = f"C = {result['flops']:.3g} FLOPs → {where}"
    print(f"{fitted.summary['task']}: {where}: P(emerged few-shot) = {result['p_emerged']:.3f}")
    if "emergence" in result:
        c, n = result["emergence"]["flops"], result["emergence"]["params_compute_optimal"]
        print(
            f"emergence at {_fmt(c['median'])} FLOPs (90% {_fmt(c['q05'])}–{_fmt(c['q95'])}); "
            f"compute-optimal params {_fmt(n['median'])} ({_fmt(n['q05'])}–{_fmt(n['q95'])}); "
            f"P(unreachable under the loss law) = {result['emergence']['p_unreachable']:.3f}"
        )


def _fmt(value: float) -> str:
    return "inf" if not math.isfinite(value) else f"{value:.3g}"


def simulate_cmd(
    out: Path = typer.Option(
        ..., "--out", help="table to write (.csv or .parquet); truth goes to <name>.truth.json"
    ),
    seed: int = typer.Option(0, "--seed"),
    form: str = typer.Option("log-power", "--form", help="log-power | power"),
    sizes: str = typer.Option(
        "20e6,60e6,150e6,400e6", "--sizes", help="model sizes (params), comma separated"
    ),
    steps: int = typer.Option(3, "--steps", help="checkpoints per size"),
    budgets: str = typer.Option(
        "64,256,1024,4096,16384", "--budgets", help="finetuning budgets (4–6 is typical)"
    ),
    seeds: int = typer.Option(2, "--seeds", help="subset seeds per budget"),
    shots: int = typer.Option(5, "--shots"),
    n_eval: int = typer.Option(1000, "--n-eval"),
    n_emerged: int = typer.Option(2, "--n-emerged", help="at most this many checkpoints past the few-shot elbow"),
    lead: str = typer.Option(
        "0.05,0.5", "--lead", help="E(D0) drawn this many nats (low,high) ahead of the checkpoint with n-emerged stronger ones"
    ),
    prior: bool = typer.Option(False, "--prior", help="draw the truth from the fit's priors (simulation-based calibration)"),
    task: str = typer.Option("synthetic", "--task"),
) -> None:
    """Draw a results table from the emergence law with known parameters."""
    import numpy as np

    from emergence.laws import simulate as sim

    check_output_file(out)  # a folder or a path under a file: one line before anything is drawn
    lead_range = _floats(lead, "--lead", allow_zero=True)
    if len(lead_range) != 2:
        raise UserError(f"--lead: expected two numbers 'low,high', got '{lead}'")
    if form not in ("log-power", "power"):
        raise UserError(f"unknown --form '{form}' (choose log-power or power)")
    design = sim.Design(
        sizes=_floats(sizes, "--sizes"),
        steps_per_size=steps,
        budgets=_whole(_floats(budgets, "--budgets"), "--budgets"),
        seeds=tuple(range(seeds)),
        shots=shots,
        n_eval=n_eval,
        n_emerged=n_emerged,
        lead=lead_range,
        task=task,
    )
    draw = sim.draw_prior_truth if prior else sim.draw_truth
    truth = draw(design, np.random.default_rng(seed), form=form)
    frame = sim.simulate(truth, design, seed)
    sim.write_table(frame, out, truth=sim.truth_record(truth, design, seed))
    print(
        f"wrote {len(frame)} rows to {out}; true few-shot emergence E(D0={truth.d0:g}) = {truth.e0:.4f} nats"
    )


def _whole(values: tuple[float, ...], option: str) -> tuple[int, ...]:
    if any(v != int(v) for v in values):
        raise UserError(f"{option}: expected whole numbers of examples, got {', '.join(f'{v:g}' for v in values)}")
    return tuple(int(v) for v in values)


def _floats(text: str, option: str, allow_zero: bool = False) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as err:
        raise UserError(f"{option}: expected comma-separated numbers, got '{text}'") from err
    if not values or any(not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero) for v in values):
        raise UserError(f"{option}: expected positive numbers, got '{text}'")
    return values


def register(app: typer.Typer) -> None:
    app.command("fit")(fit_cmd)
    app.command("backtest")(backtest_cmd)
    app.command("forecast")(forecast_cmd)
    app.command("simulate")(simulate_cmd)
