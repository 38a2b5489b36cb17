"""`emergence toy generate`: write the toy world (task splits, tokenizer, corpus) to a folder."""

from __future__ import annotations

import typer

from emergence.fileio import check_output_dir

toy_app = typer.Typer(help="The toy emergence world (generated corpus and tasks).", no_args_is_help=True)


@toy_app.command("generate")
def generate_command(
    out: str = typer.Option(..., "--out", "-o", help="folder to write (a toy data dir for --data-dir)"),
    seed: int = typer.Option(0, "--seed", help="world seed"),
    entities: int = typer.Option(200, "--entities", help="number of people in the world"),
    corpus: bool = typer.Option(
        True, "--corpus/--tasks-only", help="also train the BPE and tokenize the corpus"
    ),
) -> None:
    """Generate the toy world deterministically (same seed, same files)."""
    from emergence.data.toy import store
    from emergence.data.toy.world import WorldConfig

    check_output_dir(out)
    config = WorldConfig(seed=seed, n_entities=entities)
    path = store.ensure_corpus(config, out) if corpus else store.ensure_tasks(config, out)
    print(path)


def register(app: typer.Typer) -> None:
    app.add_typer(toy_app, name="toy")
