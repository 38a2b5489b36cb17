"""`emergence study CONFIG`: the demo over several seeds and every admissible compute cutoff; resumable."""

from __future__ import annotations

import typer

from emergence.commands.shared import dotted_overrides, setup_devices


def study_command(
    config: str = typer.Argument(..., help="study config (YAML), e.g. configs/study.yaml"),
    overrides: list[str] = dotted_overrides("'seeds=[0,1]'"),
) -> None:
    """Repeat the demo over world/training seeds; score the law at every compute cutoff with its baselines."""
    from emergence.config import load_config
    from emergence.report.demo_config import load_demo_config
    from emergence.report.study import StudyConfig

    study = load_config(StudyConfig, config, overrides)
    demo, _ = load_demo_config(study.demo)  # checked before any minute of pretraining
    setup_devices(demo.fit.chains)  # as the demo does, so a study's sweeps are the demo's
    from emergence.report.study import run_study

    print(run_study(study, echo=lambda line: print(line, flush=True)), flush=True)


def register(app: typer.Typer) -> None:
    app.command("study")(study_command)
