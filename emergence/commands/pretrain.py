"""`emergence pretrain CONFIG`: pretrain a ladder of tiny LLaMA models on the toy corpus.

Prints one progress line per logged step and, at the end, the manifest path that a sweep's
``checkpoints:`` can point at. Rerunning the same command after an interruption resumes.
"""

from __future__ import annotations

import sys

import typer


def pretrain_command(
    config: str = typer.Argument(..., help="ladder config (YAML), e.g. configs/ladders/toy_words_many.yaml"),
    out: str = typer.Option(None, "--out", "-o", help="output folder (default: runs/ladders/<name>)"),
    model: list[str] = typer.Option(
        None, "--model", help="pretrain only this model of the ladder (repeatable; default: all)"
    ),
) -> None:
    """Pretrain every model of the ladder, export checkpoints, write <out>/ladder.yaml."""
    from emergence.train.ladder_config import LadderConfig

    ladder = LadderConfig.from_file(config)  # bad config: one line, before JAX starts
    from emergence.train.pretrain import pretrain_ladder

    target = out or f"runs/ladders/{ladder.name}"

    def log(m: dict) -> None:
        print(
            f"{m['model']:>12}  step {m['step']:>6}/{m['total_steps']}  loss {m['loss']:.3f}  "
            f"{m['tokens_per_s']:,.0f} tok/s",
            file=sys.stderr,
            flush=True,
        )

    manifest = pretrain_ladder(ladder, target, on_log=log, models=model or None)
    print(manifest)


def register(app: typer.Typer) -> None:
    app.command("pretrain")(pretrain_command)
