"""`emergence obs …`: observational scaling laws (:mod:`emergence.laws.observational`) from public
models' benchmark tables."""

from __future__ import annotations

from pathlib import Path

import typer

from emergence.fileio import check_output_dir, write_json

obs_app = typer.Typer(
    help="Observational scaling laws: forecast a capability from public models' benchmark scores.",
    no_args_is_help=True,
)

_DATA = (
    "default: the shipped base_llm_benchmark_eval.csv; a bare file name picks another table of the "
    "ObsScaling release shipped in emergence/data/obsscaling/"
)
JOIN = typer.Option(None, "--join", help="Second CSV, inner-joined on 'Model'.")
FAMILIES = typer.Option(None, "--families", help="Keep only these families.")
EXCLUDE_MODELS = typer.Option(None, "--exclude-models", help="Drop these models.")


def _names(values: list[str] | None) -> tuple[str, ...]:
    """Options may be repeated or comma-separated (`--families Llama-2,OPT`)."""
    return tuple(part.strip() for value in values or [] for part in value.split(",") if part.strip())


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.5f}"


@obs_app.command("fit")
def fit_cmd(
    data: str | None = typer.Argument(None, help=f"CSV with a 'Model' column; {_DATA}."),
    target: str = typer.Option(..., "--target", help="Column to forecast."),
    out: Path = typer.Option(..., "--out", help="Directory for metrics.json and plots."),
    join: str | None = JOIN,
    scale: float | None = typer.Option(None, "--scale", help="Divide the target by X (e.g. 10 for 0–10)."),
    chance: float | None = typer.Option(None, "--chance", help="Chance level C: y → (y − C)/(1 − C)."),
    pcs: int = typer.Option(3, "--pcs", help="Number of principal capabilities K."),
    cutoff: float | None = typer.Option(
        None, "--cutoff", help="Train on models with FLOPs ≤ F (default 84e21 = Llama-2-7B)."
    ),
    holdout_top: float | None = typer.Option(
        None, "--holdout-top", help="Instead of a cutoff, hold out the top FRAC of models by target."
    ),
    benchmarks: list[str] | None = typer.Option(None, "--benchmarks", help="Predictor columns."),
    families: list[str] | None = FAMILIES,
    exclude_models: list[str] | None = EXCLUDE_MODELS,
    reference_family: str = typer.Option("Llama-2", "--reference-family", help="Ruler for equivalent FLOPs."),
    free_ceiling: bool = typer.Option(False, "--free-ceiling", help="Fit the sigmoid's ceiling too."),
    bayes: bool = typer.Option(False, "--bayes", help="Also sample the law with NUTS (intervals, coverage)."),
    chains: int = typer.Option(4, "--chains", help="NUTS chains (with --bayes)."),
    samples: int = typer.Option(1000, "--samples", help="NUTS samples per chain (with --bayes)."),
    warmup: int = typer.Option(500, "--warmup", help="NUTS warmup steps per chain (with --bayes)."),
    level: float = typer.Option(0.9, "--level", help="Predictive interval level (with --bayes)."),
    seed: int = typer.Option(0, "--seed", help="Random seed for NUTS."),
) -> None:
    """Fit the law, write OUT/metrics.json and plots, print test MSEs against the baselines."""
    check_output_dir(out)  # a file, or under one: one line before the fit
    if bayes:  # the option domains (chains, samples, level) are checked by commands/domains.py
        import numpyro

        numpyro.set_host_device_count(chains)  # before JAX starts: parallel chains on CPU
    from emergence.laws.observational import ObsConfig, run_fit
    from emergence.laws.observational.law import BayesConfig, SigmoidConfig
    from emergence.report.obs_plots import plot_fit

    config = ObsConfig(
        data=data, target=target, join=join, scale=scale, chance=chance, pcs=pcs, cutoff=cutoff,
        holdout_top=holdout_top, benchmarks=_names(benchmarks), families=_names(families),
        exclude_models=_names(exclude_models), reference_family=reference_family,
        sigmoid=SigmoidConfig(free_ceiling=free_ceiling),
        bayes=BayesConfig(warmup, samples, chains, seed, level) if bayes else None,
    )
    result = run_fit(config)
    m = result.metrics
    out.mkdir(parents=True, exist_ok=True)
    written = [write_json(out / "metrics.json", m), *plot_fit(result, target, out)]
    for note in m["notes"]:
        typer.echo(f"note: {note}")
    typer.echo(
        f"{target}: {m['n_models']} models in {m['n_families']} families; "
        f"predictors {', '.join(m['benchmarks'])}; K={pcs}"
    )
    typer.echo(
        f"PC fit:   n_train={m['n_train']} n_test={m['n_test']} "
        f"mse_train={_fmt(m['mse_train'])} mse_test={_fmt(m['mse_test'])} r2_test={_fmt(m['r2_test'])}"
    )
    for name, base in m["baselines"].items():
        typer.echo(
            f"{name:9s} n_train={base['n_train']} n_test={base['n_test']} mse_test={_fmt(base['mse_test'])}"
        )
    if b := m["bayes"]:
        typer.echo(
            f"bayes:    {b['level']:.0%} interval coverage on test={_fmt(b['coverage_test'])} "
            f"(mean width {b['mean_interval_width_test']:.4f}); "
            f"max r_hat={b['diagnostics']['max_r_hat']:.3f} divergences={b['diagnostics']['divergences']}"
        )
    typer.echo("wrote " + ", ".join(map(str, written)))


@obs_app.command("families")
def families_cmd(
    data: str | None = typer.Argument(None, help=f"CSV with families, FLOPs, benchmarks; {_DATA}."),
    join: str | None = JOIN,
    benchmarks: list[str] | None = typer.Option(None, "--benchmarks", help="Columns for PC1."),
    families: list[str] | None = FAMILIES,
    exclude_models: list[str] | None = EXCLUDE_MODELS,
) -> None:
    """Print each family's compute efficiency: PC1 = slope·log10(FLOPs) + intercept, with R²."""
    from emergence.laws.observational import ObsConfig, run_families

    config = ObsConfig(data, join=join, benchmarks=_names(benchmarks), families=_names(families),
                       exclude_models=_names(exclude_models))  # fmt: skip
    fits, notes = run_families(config)
    for note in notes:
        typer.echo(f"note: {note}")
    # PC1 at a common compute (1e23 FLOPs) compares families on one footing: higher = more efficient.
    at = {f: fit.slope * 23.0 + fit.intercept for f, fit in fits.items() if fit}
    typer.echo(f"{'family':24s} {'n':>3s} {'slope':>8s} {'intercept':>10s} {'R2':>6s} {'PC1@1e23':>9s}")
    for family, fit in sorted(fits.items(), key=lambda kv: -at.get(kv[0], -1e9)):
        if fit is None:
            typer.echo(f"{family:24s}   - (fewer than two models with FLOPs)")
            continue
        r2 = "n/a" if fit.r2 is None else f"{fit.r2:.3f}"
        line = f"{fit.n:3d} {fit.slope:8.3f} {fit.intercept:10.3f} {r2:>6s} {at[family]:9.3f}"
        typer.echo(f"{family:24s} {line}")


def register(app: typer.Typer) -> None:
    app.add_typer(obs_app, name="obs")
