"""Where a sweep's cells run, for ``sweep plan``: each checkpoint's mesh, and whether it fits there.

Whether a checkpoint fits is `emergence memory`'s estimate (:mod:`emergence.train.memory_plan`) of
its cells' finetuning step and evaluation, per device, on the accelerator precision the sweep
resolves to, without weights: the architecture comes from the checkpoint's ``architecture`` (a
preset or a model directory) or, for a local checkpoint, from its own config. Checkpoints of one
architecture, mesh and settings share one estimate (a few AOT compiles each). A mesh larger than
the machine compiles on CPU devices, which the command sets before JAX starts (:func:`devices_needed`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from emergence.errors import UserError
from emergence.sweep.config import CheckpointSpec, SweepConfig, checkpoint_id, is_hub_id
from emergence.train.config import MeshConfig


def mesh_label(mesh: MeshConfig) -> str:
    """``data×fsdp×tensor`` (``*``: the devices left)."""
    return "×".join("*" if n == -1 else str(n) for n in (mesh.data, mesh.fsdp, mesh.tensor))


def devices_needed(cfg: SweepConfig) -> int:
    """The most devices one checkpoint's mesh needs."""
    return max(cfg.checkpoint_mesh(c).min_devices for c in cfg.checkpoints)


def _architecture(ckpt: CheckpointSpec) -> str | None:
    if ckpt.architecture is not None:
        return ckpt.architecture
    local = not is_hub_id(ckpt.model) and (Path(ckpt.model).exists() or ckpt.model.endswith(".gguf"))
    return ckpt.model if local else None


def memory_lines(cfg: SweepConfig, device_memory: int) -> list[str]:
    """One line per group of checkpoints sharing an estimate: per-device bytes against ``device_memory``,
    and what to change where they do not fit."""
    from emergence.models.presets import model_config
    from emergence.train import memory_plan as mp
    from emergence.train.config import precision

    finetunes = any(max(cfg.task_budgets(t)) > 0 for t in cfg.tasks)
    dtype, param_dtype = precision(cfg.finetune.method, cfg.dtype, cfg.param_dtype, accelerated=True)
    groups: dict[tuple, list[str]] = {}
    for ckpt in cfg.checkpoints:
        key = (_architecture(ckpt), cfg.checkpoint_mesh(ckpt))
        groups.setdefault(key, []).append(checkpoint_id(ckpt))
    lines = [f"memory per device (`emergence memory`'s estimate, {dtype} compute) of {device_memory / mp.GIB:.1f} GiB:"]
    for (architecture, mesh), ids in groups.items():
        who = ids[0] if len(ids) == 1 else f"{ids[0]} and {len(ids) - 1} more"
        where = f"{who} on {mesh_label(mesh)}"
        if architecture is None:
            lines.append(f"  {where}: unknown (a hub checkpoint: give its 'architecture', e.g. llama-7b)")
            continue
        config = model_config(architecture).replace(dtype=dtype, param_dtype=param_dtype)
        on_mesh = dataclasses.replace(mesh, distributed=False)
        # a task may finetune with its own batch size or sequence length
        runs = {dataclasses.replace(cfg.task_finetune(t.name), mesh=on_mesh) for t in cfg.tasks}
        peaks = []
        try:
            for settings in runs:
                plan = mp.plan_memory(
                    config.replace(remat=settings.remat), settings, seq_len=settings.max_seq_len,
                    micro_batch=settings.batch_size, mesh=mp.plan_mesh(settings),
                )  # fmt: skip
                peaks.append(plan.peak if finetunes else plan.params + plan.evaluation)
        except UserError as err:
            lines.append(f"  {where}: cannot run: {err}")
            continue
        peak = max(peaks)
        verdict = (
            "fits"
            if peak <= device_memory
            else "DOES NOT FIT: give it a larger mesh (its 'mesh'), remat or a smaller batch"
        )
        lines.append(f"  {where} ({architecture}): {peak / mp.GIB:.1f} GiB, {verdict}")
    return lines
