"""`emergence study CONFIG`: the demo over several seeds and every admissible compute cutoff.

Thin: read the study config, ask for one CPU device per NUTS chain before JAX starts (as the demo
does, so a study's sweeps are the demo's), run :func:`emergence.report.study.run_study`.
Rerunning the same command after an interruption continues where it stopped.
"""

from __future__ import annotations

import typer


def study_command(
    config: str = typer.Argument(..., help="study config (YAML), e.g. configs/study.yaml"),
    overrides: list[str] = typer.Argument(
        None, help="dotted overrides, e.g. 'seeds=[0,1]'", show_default=False
    ),
) -> None:
    """Repeat the demo over world/training seeds; score the law at every compute cutoff with its baselines."""
    from emergence.report.demo_config import load_demo_config
    from emergence.report.study import load_study_config

    study = load_study_config(config, list(overrides or []))
    demo, _ = load_demo_config(study.demo)  # checked before any minute of pretraining
    import numpyro

    numpyro.set_host_device_count(max(1, demo.fit.chains))
    from emergence.laws.nuts import enable_compile_cache

    enable_compile_cache()
    from emergence.report.study import run_study

    print(run_study(study, echo=lambda line: print(line, flush=True)), flush=True)


def register(app: typer.Typer) -> None:
    app.command("study")(study_command)
