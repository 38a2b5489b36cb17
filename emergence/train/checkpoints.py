"""Training checkpoints with orbax: trainable parameters, optimizer state and step, for exact resume.

Only the trainer's trainable part is saved (the frozen base is reloaded from the model reference).
Orbax writes ``<dir>/step_<N>`` into a temporary directory and renames it when complete, so a kill
mid-save leaves the previous checkpoint intact. Restoring reads onto the current trainer's
shardings, so a checkpoint written on 4 devices restores on 1 and vice versa.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import jax
import numpy as np

from emergence.errors import UserError

_STEP_DIR = re.compile(r"step_(\d{8})$")


def _tree(params: dict, opt_leaves: list, step) -> dict:
    """The saved tree; ``~`` for ``.`` keeps orbax from reading dotted names as nesting."""
    return {
        "params": {k.replace(".", "~"): v for k, v in params.items()},
        "opt": {f"{i:05d}": v for i, v in enumerate(opt_leaves)},
        "step": step,
    }


def step_dirs(directory: str | Path) -> list[tuple[int, Path]]:
    """Finished checkpoints as (step, path), oldest first (orbax temp dirs are not matched)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [
        (int(m.group(1)), p) for p in directory.iterdir() if p.is_dir() and (m := _STEP_DIR.match(p.name))
    ]
    return sorted(found)


def save_checkpoint(
    directory: str | Path, step: int, params: dict, opt_leaves: list, *, keep: int = 2
) -> Path:
    """Save (params, optimizer leaves, step) as ``step_<N>``; prune all but the newest ``keep``."""
    import orbax.checkpoint as ocp

    directory = Path(directory).absolute()  # orbax refuses relative paths
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"step_{step:08d}"
    ckpt = ocp.StandardCheckpointer()
    ckpt.save(target, _tree(params, opt_leaves, np.asarray(step, np.int64)), force=True)
    ckpt.wait_until_finished()
    ckpt.close()
    if jax.process_index() == 0:  # every process of a multi-host run saves its shards; one prunes
        for _, old in step_dirs(directory)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return target


def restore_checkpoint(path: str | Path, abstract_params: dict, abstract_opt: list) -> tuple[dict, list, int]:
    """(params, optimizer leaves, step) restored onto the shardings in the abstract arrays."""
    import orbax.checkpoint as ocp

    path = Path(path).absolute()
    target = _tree(abstract_params, abstract_opt, jax.ShapeDtypeStruct((), np.int64))
    ckpt = ocp.StandardCheckpointer()
    try:
        tree = ckpt.restore(path, target)
    except (ValueError, KeyError, FileNotFoundError) as err:
        raise UserError(
            f"{path}: checkpoint does not fit this run ({type(err).__name__}: {str(err)[:160]})"
        ) from None
    finally:
        ckpt.close()
    params = {k: tree["params"][key] for k, key in zip(abstract_params, target["params"], strict=True)}
    opt = [tree["opt"][key] for key in target["opt"]]
    return params, opt, int(tree["step"])
