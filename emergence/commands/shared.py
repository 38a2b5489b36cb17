"""What several commands share: option declarations, device setup before JAX starts, a progress bar."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.progress import Progress

MODEL = typer.Argument(..., help="HF directory, .gguf file, alias (smollm2-135m) or hub id")
DATA_DIR = typer.Option(None, "--data-dir", help="local benchmark files (default: $EMERGENCE_DATA)")
#: compute dtype: of a model as loaded (load_model's default), of a run (by backend: train.config.precision)
DTYPE = typer.Option(None, "--dtype", help="compute dtype: float32 (default) or bfloat16")
RUN_DTYPE = typer.Option(None, "--dtype", help="compute dtype [float32 on CPU, else bfloat16]")
BUILTIN_TASKS = "mmlu | commonsense_qa | cola | gsm8k"


def dotted_overrides(example: str) -> typer.models.ArgumentInfo:
    """The trailing ``a.b=c`` arguments of a command that reads a config."""
    return typer.Argument([], help=f"dotted overrides, e.g. {example}", show_default=False)


def setup_devices(chains: int) -> None:
    """One CPU device per chain so chains run in parallel (must precede JAX's first use), and the
    persistent compilation cache, so a later process skips compiling what it has compiled before."""
    import numpyro

    numpyro.set_host_device_count(max(1, chains))
    from emergence.laws.nuts import enable_compile_cache

    enable_compile_cache()


def cpu_devices(count: int) -> None:
    """As many CPU devices as the mesh has, set before JAX starts (unless XLA_FLAGS already says)."""
    import jax

    if count > 1 and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        # JAX already started (a caller in the same process): plan_mesh then names what to do
        with contextlib.suppress(RuntimeError):
            jax.config.update("jax_num_cpu_devices", count)


def progress(title: str, *fields: str, **options) -> Progress:
    """A rich progress bar on stderr: TITLE, the bar, done/total, FIELDS (column templates), time left."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn(title), BarColumn(), MofNCompleteColumn(), *map(TextColumn, fields)]
    return Progress(*columns, TimeRemainingColumn(), console=Console(stderr=True), **options)
