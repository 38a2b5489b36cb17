"""`emergence demo CONFIG`: the whole method end to end on a CPU (what `make demo` runs); resumable."""

from __future__ import annotations

import typer

from emergence.commands.shared import dotted_overrides, setup_devices


def demo_command(
    config: str = typer.Argument(..., help="demo config (YAML), e.g. configs/demo.yaml"),
    overrides: list[str] = dotted_overrides("fit.samples=500 holdout.flops_above=1e12"),
    out: str = typer.Option(
        None, "--out", "-o", help="folder for the report, tables and plots (default: the config's out)"
    ),
    work: str = typer.Option(
        None, "--work", help="folder for checkpoints and sweep cells (default: the config's work)"
    ),
) -> None:
    """Pretrain the toy ladder, sweep few-shot + finetuning, fit, backtest, forecast, write report.md."""
    from emergence.report.demo_config import load_demo_config

    cfg, ladder = load_demo_config(config, overrides, out=out, work=work)  # before pretraining
    setup_devices(cfg.fit.chains)
    from emergence.report.demo import run_demo

    print(run_demo(cfg, ladder, source=config), flush=True)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
