"""Per-device memory of a finetuning run, planned before it is submitted (``emergence memory``).

The model is built with ``nnx.eval_shape`` (no weights, no memory) and the trainer's own compiled
step (:func:`emergence.train.trainer.programs`) is lowered on abstract inputs with the run's
shardings, so the plan is of the program the trainer runs, not of a model of it:

* parameters, optimizer state and the batch: exact, from their shapes, dtypes and shardings;
* activations (everything the step allocates beyond its inputs: what the backward pass keeps,
  gradients, workspace): the AOT compile's ``memory_analysis()`` of the step at one decoder layer,
  plus, per further layer, with a remat policy what JAX keeps of it for the backward pass (the
  residuals of the layer's VJP, which the policy decides) and its trained parameters' gradients,
  and without one the difference between compiles at one and two layers.
  Why not compile every layer: XLA:CPU expands the optimization barriers that keep rematerialized
  values from being merged with the forward's, so a full-depth CPU compile reports the memory of a
  program without remat; and a 32-layer program takes minutes to compile on a laptop;
* evaluation: the scoring forward (``trainer._eval_sums``) compiled at one layer, on top of the
  training state, plus the folded kernels of LoRA on a float32 base (a bf16 base is scored unfused).

The compile runs on the machine at hand: on a laptop that is XLA:CPU, which computes bf16 matmuls
in fp32 and attends in CPU-sized blocks, so the activation figure errs on the high side of what a
GPU needs. A mesh larger than the machine compiles on that many CPU devices
(``jax_num_cpu_devices``, set by the command before JAX starts).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from emergence.errors import UserError
from emergence.models.config import LlamaConfig
from emergence.models.llama import Llama
from emergence.train.config import FinetuneSettings
from emergence.train.lora import folds_at_evaluation, for_training
from emergence.train.mesh import batch_sharding, build_mesh, state_shardings
from emergence.train.trainer import _eval_sums, _loss_sums, programs

GIB = 2**30
_UNITS = {"": 1, "B": 1} | {
    prefix + unit: base**i for i, prefix in enumerate("KMGT", 1) for unit, base in (("B", 1e3), ("IB", 2**10))
}
#: the most micro-batch sizes :func:`largest_micro_batch` compiles
SEARCH_STEPS = 8


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes per device of one training step and of evaluation beside it."""

    micro_batch: int
    seq_len: int
    loss_tokens: int
    params: int  # trained and frozen parameters
    optimizer: int
    batch: int
    activations: int  # the step's temporaries: kept activations, gradients, workspace
    evaluation: int  # what scoring adds to the training state
    layers: int
    layers_compiled: int

    @property
    def train_step(self) -> int:
        return self.params + self.optimizer + self.batch + self.activations

    @property
    def peak(self) -> int:
        return max(self.train_step, self.params + self.optimizer + self.evaluation)

    def fits(self, device_memory: int) -> bool:
        return self.peak <= device_memory

    def as_dict(self) -> dict:
        return dataclasses.asdict(self) | {"train_step": self.train_step, "peak": self.peak}


def parse_bytes(text: str) -> int:
    """``80GB`` (10⁹), ``80GiB`` (2³⁰), ``512MiB``, … → bytes."""
    found = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", text)
    try:
        number, unit = float(found.group(1)), found.group(2).upper()
    except (AttributeError, ValueError):  # no match, or a number such as 1.2.3
        number, unit = math.nan, ""
    if not (math.isfinite(number) and number > 0) or unit not in _UNITS:
        raise UserError(f"--device-memory {text!r}: expected a size such as 80GB or 79.6GiB")
    return int(number * _UNITS[unit])


def plan_mesh(settings: FinetuneSettings) -> Mesh:
    """The run's mesh on this machine's accelerators, or on CPU devices where they are too few."""
    need = settings.mesh.min_devices
    devices = jax.devices()
    if len(devices) < need:
        devices = jax.devices("cpu")
    if len(devices) < need:
        raise UserError(
            f"the mesh needs {need} devices and this process has {len(devices)}; `emergence memory` makes "
            f"them on CPU, or set XLA_FLAGS=--xla_force_host_platform_device_count={need} before JAX starts"
        )
    return build_mesh(dataclasses.replace(settings.mesh, distributed=False), devices)


def _shard_bytes(x) -> int:
    shape = x.sharding.shard_shape(x.shape) if getattr(x, "sharding", None) is not None else x.shape
    return math.prod(shape) * x.dtype.itemsize  # numpy dtypes and PRNG-key dtypes (LoRA dropout) alike


def _tree_bytes(tree) -> int:
    return sum(_shard_bytes(x) for x in jax.tree.leaves(tree) if hasattr(x, "dtype"))


def _state_bytes(state: nnx.State, where: Callable[[tuple], bool]) -> int:
    """Per-device bytes of the variables of ``state`` whose path ``where`` accepts."""
    return sum(_shard_bytes(v.get_value()) for path, v in nnx.to_flat_state(state) if where(path))


def _placed(state: nnx.State, mesh: Mesh) -> nnx.State:
    """Abstract ``state``, given in place the shardings :func:`~emergence.train.mesh.shard_state` gives."""
    for var, sharding in state_shardings(state, mesh):
        value = var.get_value()
        var.set_value(jax.ShapeDtypeStruct(value.shape, value.dtype, sharding=sharding))
    return state


def _abstract_run(config: LlamaConfig, settings: FinetuneSettings, mesh: Mesh):
    """(graphdef, params, rest) of the run's model, abstract and placed as the trainer places them."""
    lora = settings.lora if settings.method == "lora" else None

    trainable = nnx.Param

    def build() -> Llama:
        nonlocal trainable  # as run_finetune builds it: LoRA's dropout on, so its masks are planned
        model, trainable = for_training(Llama(config, rngs=nnx.Rngs(0)), lora, settings.seed)
        return model

    graphdef, params, rest = nnx.split(nnx.eval_shape(build), trainable, ...)
    return graphdef, _placed(params, mesh), _placed(rest, mesh)


def _batch(
    rows: tuple[int, ...], seq_len: int, loss_tokens: int, sharding: NamedSharding | None = None
) -> dict[str, jax.ShapeDtypeStruct]:
    """An abstract :class:`~emergence.train.examples.Batch` of ``rows`` (leading axes)."""
    fields = {"tokens": (seq_len, jnp.int32), "valid": (seq_len, jnp.bool_),
              "target_pos": (loss_tokens, jnp.int32), "targets": (loss_tokens, jnp.int32),
              "target_mask": (loss_tokens, jnp.float32)}  # fmt: skip
    return {k: jax.ShapeDtypeStruct((*rows, n), dt, sharding=sharding) for k, (n, dt) in fields.items()}


def _step_inputs(config, settings, mesh, micro_batch, seq_len, loss_tokens):
    """The trainer's compiled step and abstract arguments for it (as ``Trainer.step`` passes them)."""
    graphdef, params, rest = _abstract_run(config, settings, mesh)
    init, step = programs(graphdef, settings.optim, mesh, params)
    replicated = NamedSharding(mesh, PartitionSpec())
    scalar = jax.ShapeDtypeStruct((), jnp.float32, sharding=replicated)
    args = (
        params,
        rest,
        jax.eval_shape(init, params),
        _batch((settings.grad_accum, micro_batch), seq_len, loss_tokens, batch_sharding(mesh, 3)),
        jax.ShapeDtypeStruct((), jnp.int32, sharding=replicated),
        {k: scalar for k in ("lr", "warmup", "total", "end_ratio")},
        jax.eval_shape(lambda: jax.random.key(0)),
        jax.ShapeDtypeStruct((), jnp.int32, sharding=replicated),
    )
    return step, args


def _kept_for_backward(config, settings, mesh, micro_batch, seq_len, loss_tokens) -> int:
    """Bytes (all devices) that the VJP of one micro-batch's loss keeps, weights not counted."""
    from jax._src.ad_checkpoint import saved_residuals  # the public API only prints them

    graphdef, params, rest = _abstract_run(config, settings, mesh)
    batch = _batch((micro_batch,), seq_len, loss_tokens)

    def loss(params, rest, batch):
        return _loss_sums(nnx.merge(graphdef, params, rest, copy=True), batch)[0]  # as the trainer merges

    kept = saved_residuals(loss, params, rest, batch)
    return sum(
        math.prod(a.shape) * a.dtype.itemsize for a, src in kept if not src.startswith("from the argument")
    )


def plan_memory(
    config: LlamaConfig, settings: FinetuneSettings, *, seq_len: int, micro_batch: int, loss_tokens: int | None = None,
    eval_tokens: int = 2048, layers_compiled: int | None = 1, mesh: Mesh | None = None,
) -> MemoryPlan:  # fmt: skip
    """Bytes per device for ``settings`` (method, LoRA, optimizer, mesh, accumulation) on ``config``
    (dtypes and remat as given there) at ``micro_batch`` rows of ``seq_len`` tokens, ``loss_tokens``
    of them carrying loss (default: all), and for scoring ``eval_tokens`` tokens per batch.

    ``layers_compiled`` None compiles every layer (exact for the machine at hand, without remat on
    CPU: see the module docstring)."""
    mesh = mesh or plan_mesh(settings)
    ways = mesh.shape["data"] * mesh.shape["fsdp"]
    if micro_batch % ways:
        raise UserError(f"micro-batch {micro_batch} does not divide by the mesh's data×fsdp = {ways}")
    loss_tokens = loss_tokens or seq_len
    layers = config.num_hidden_layers
    depth = min(layers, layers_compiled or layers)

    def compiled_temp(n: int) -> tuple[int, tuple]:
        step, args = _step_inputs(config.with_layers(n), settings, mesh, micro_batch, seq_len, loss_tokens)
        return step.lower(*args).compile().memory_analysis().temp_size_in_bytes, args

    temp, args = compiled_temp(depth)
    if depth < layers and config.remat == "none":  # no barrier for XLA:CPU to drop: compile a second layer
        per_layer = compiled_temp(depth + 1)[0] - temp
        temp += (layers - depth) * per_layer
    elif depth < layers:
        kept = [_kept_for_backward(config.with_layers(n), settings, mesh, micro_batch, seq_len, loss_tokens)
                for n in (1, 2)]  # fmt: skip
        first_layer = _state_bytes(args[0], lambda path: path[:2] == ("layers", 0))  # its gradients
        per_layer = (kept[1] - kept[0]) // ways + first_layer
        temp += (layers - depth) * per_layer

    _, full_args = _step_inputs(config, settings, mesh, micro_batch, seq_len, loss_tokens)
    params, rest, opt_state, batch = full_args[:4]
    return MemoryPlan(
        micro_batch=micro_batch,
        seq_len=seq_len,
        loss_tokens=loss_tokens,
        params=_tree_bytes(params) + _tree_bytes(rest),
        optimizer=_tree_bytes(opt_state),
        batch=_tree_bytes(batch),
        activations=temp,
        evaluation=_evaluation_bytes(config, settings, mesh, eval_tokens, min(seq_len, eval_tokens)),
        layers=layers,
        layers_compiled=depth,
    )


@functools.lru_cache(maxsize=8)
def _evaluation_bytes(
    config: LlamaConfig, settings: FinetuneSettings, mesh: Mesh, eval_tokens: int, width: int
) -> int:
    """The scoring forward's temporaries (compiled at one layer: a forward's buffers do not grow
    with depth) and, for LoRA on a float32 base, the adapted kernels folded into new arrays (a bfloat16 base is
    scored unfused, :func:`~emergence.train.lora.folds_at_evaluation`)."""
    graphdef, state = nnx.split(
        nnx.eval_shape(lambda: Llama(config.with_layers(1), rngs=nnx.Rngs(0)))
    )
    batch = _batch((max(1, eval_tokens // width),), width, 1, NamedSharding(mesh, PartitionSpec()))
    temp = (
        _eval_sums.lower(graphdef, _placed(state, mesh), batch).compile().memory_analysis().temp_size_in_bytes
    )
    if settings.method != "lora" or not folds_at_evaluation(config.param_dtype):
        return temp  # a bf16 base is scored with its adapters unfused: no kernel copies
    _, _, rest = _abstract_run(config, settings, mesh)  # a wrapped linear's kernel is <linear>.base.kernel
    return temp + _state_bytes(rest, lambda path: path[-2:] == ("base", "kernel"))


def largest_micro_batch(
    config: LlamaConfig, settings: FinetuneSettings, device_memory: int, *, start: int, mesh: Mesh, **kwargs
) -> tuple[int | None, dict[int, MemoryPlan]]:
    """The largest power-of-two multiple of data×fsdp rows whose plan fits ``device_memory``, by
    doubling (or halving) from ``start``; at most :data:`SEARCH_STEPS` compiles. None: not even the
    smallest fits; the plans tried come back too."""
    ways = mesh.shape["data"] * mesh.shape["fsdp"]
    size = ways * 2 ** max(0, round(math.log2(max(start, ways) / ways)))
    tried: dict[int, MemoryPlan] = {}
    for _ in range(SEARCH_STEPS):
        tried[size] = plan_memory(config, settings, micro_batch=size, mesh=mesh, **kwargs)
        fits = tried[size].fits(device_memory)
        bigger, smaller = size * 2, size // 2
        if fits and bigger not in tried:
            size = bigger
        elif not fits and smaller >= ways and smaller not in tried:
            size = smaller
        else:
            break
    fitting = [b for b, plan in tried.items() if plan.fits(device_memory)]
    return (max(fitting) if fitting else None), tried
