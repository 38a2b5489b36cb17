"""`emergence demo CONFIG`: the whole method end to end on a CPU (what `make demo` runs).

Thin: check the config (before any minute of pretraining is spent), ask for one CPU device per NUTS
chain before JAX starts, run :func:`emergence.report.demo.run_demo`, print where the report is.
Rerunning the same command after an interruption continues where it stopped.
"""

from __future__ import annotations

import typer


def demo_command(
    config: str = typer.Argument(..., help="demo config (YAML), e.g. configs/demo.yaml"),
    overrides: list[str] = typer.Argument(
        None, help="dotted overrides, e.g. fit.samples=500 holdout.flops_above=1e12", show_default=False
    ),
    out: str = typer.Option(
        None, "--out", "-o", help="folder for the report, tables and plots (default: the config's out)"
    ),
    work: str = typer.Option(
        None, "--work", help="folder for checkpoints and sweep cells (default: the config's work)"
    ),
) -> None:
    """Pretrain the toy ladder, sweep few-shot + finetuning, fit, backtest, forecast, write report.md."""
    from emergence.report.demo_config import load_demo_config

    cfg, ladder = load_demo_config(config, list(overrides or []), out=out, work=work)
    import numpyro

    numpyro.set_host_device_count(max(1, cfg.fit.chains))
    from emergence.laws.nuts import enable_compile_cache

    enable_compile_cache()
    from emergence.report.demo import run_demo

    print(run_demo(cfg, ladder, source=config), flush=True)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
