"""`emergence memory`: bytes per device of a finetuning run, and whether it fits, before submitting it.

The run is described as ``emergence finetune`` describes it (``--config`` and ``finetune.*``
overrides), on a preset, an HF directory or a GGUF file/alias; no weights are read::

    emergence memory llama-7b finetune.lora.rank=16 finetune.remat=block finetune.batch_size=16 \\
        finetune.max_seq_len=1024 --device-memory 80GB
"""

from __future__ import annotations

import json

import typer

from emergence.commands.shared import cpu_devices, dotted_overrides
from emergence.train.config import FinetuneFile


def memory(
    model: str = typer.Argument(
        ..., help="preset (llama-1b, llama-7b, llama-13b, openllama-3b), HF directory, .gguf file or alias"
    ),
    overrides: list[str] = dotted_overrides("finetune.method=full finetune.mesh.fsdp=8"),
    config: str = typer.Option(None, "--config", help="YAML with a sweep config's finetune section"),
    dtype: str = typer.Option(None, "--dtype", help="compute dtype [bfloat16]"),
    param_dtype: str = typer.Option(
        None, "--param-dtype", help="stored dtype [bfloat16 for LoRA, float32 for full]"
    ),
    device_memory: str = typer.Option(None, "--device-memory", help="e.g. 80GB [the accelerator's own]"),
    loss_tokens: int = typer.Option(None, "--loss-tokens", help="tokens per row carrying loss [all]"),
    eval_tokens: int = typer.Option(2048, "--eval-tokens", help="tokens per scoring batch"),
    search: bool = typer.Option(True, "--search/--no-search", help="find the largest micro-batch that fits"),
    as_json: bool = typer.Option(False, "--json", help="print the plan as JSON"),
) -> None:
    """Per-device bytes of MODEL's finetuning step (parameters, optimizer, activations) and of
    evaluation, planned on an accelerator's dtypes (bf16 compute) from an AOT compile."""
    from emergence.config import load_config

    settings = load_config(FinetuneFile, config, overrides).finetune
    cpu_devices(settings.mesh.min_devices)

    from emergence.models.presets import model_config
    from emergence.train import memory_plan as mp
    from emergence.train.config import precision

    limit = mp.parse_bytes(device_memory) if device_memory else _accelerator_memory()
    dtype, param_dtype = precision(settings.method, dtype, param_dtype, accelerated=True)
    cfg = model_config(model).replace(dtype=dtype, param_dtype=param_dtype, remat=settings.remat)
    mesh = mp.plan_mesh(settings)
    options = {"seq_len": settings.max_seq_len, "loss_tokens": loss_tokens, "eval_tokens": eval_tokens}
    plan = mp.plan_memory(cfg, settings, micro_batch=settings.batch_size, mesh=mesh, **options)
    best, tried = (None, {})
    if limit and search:
        best, tried = mp.largest_micro_batch(
            cfg, settings, limit, start=settings.batch_size, mesh=mesh, **options
        )
    where = mesh.devices.flat[0].platform
    if as_json:
        out = {"model": model, "method": settings.method, "dtype": dtype, "param_dtype": param_dtype,
               "remat": settings.remat, "mesh": dict(mesh.shape), "compiled_on": where, "plan": plan.as_dict(),
               "device_memory": limit, "fits": plan.fits(limit) if limit else None, "largest_micro_batch": best,
               "tried": {b: p.peak for b, p in tried.items()}}  # fmt: skip
        print(json.dumps(out, indent=1))
        return
    gib = mp.GIB
    lora = f" r={settings.lora.rank}" if settings.method == "lora" else ""
    print(f"{model}: {settings.method}{lora}, {dtype} compute, {param_dtype} parameters, remat {settings.remat}, "
          f"mesh data={mesh.shape['data']} fsdp={mesh.shape['fsdp']} tensor={mesh.shape['tensor']}")  # fmt: skip
    print(f"micro-batch {plan.micro_batch} × {plan.seq_len} tokens ({plan.loss_tokens} with loss), "
          f"accumulation {settings.grad_accum}; per device:")  # fmt: skip
    rows = [("parameters", plan.params), ("optimizer state", plan.optimizer), ("batch", plan.batch),
            ("activations + gradients", plan.activations), ("training step", plan.train_step),
            ("evaluation (beside the training state)", plan.evaluation), ("peak", plan.peak)]  # fmt: skip
    for name, value in rows:
        print(f"  {name:<40} {value / gib:8.2f} GiB")
    print(f"activations: AOT compile on {where} of the trainer's step at {plan.layers_compiled} of {plan.layers} "
          f"layers, the rest scaled per layer (docs/design.md, 'Memory planning')")  # fmt: skip
    if not limit:
        print("fits: give --device-memory (e.g. 80GB) to check")
        return
    verdict = "fits" if plan.fits(limit) else "does NOT fit"
    print(f"{verdict} in {limit / gib:.1f} GiB ({limit / 1e9:.1f} GB)")
    if search:
        shown = ", ".join(f"{b}: {p.peak / gib:.1f}" for b, p in sorted(tried.items()))
        print(f"largest micro-batch that fits: {best if best else 'none'} (peak GiB by micro-batch: {shown})")


def _accelerator_memory() -> int | None:
    """The memory JAX may use on the first accelerator (None on CPU)."""
    import jax

    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    return int(stats["bytes_limit"]) if stats and "bytes_limit" in stats else None


def register(app: typer.Typer) -> None:
    app.command("memory")(memory)
