"""One training loop for pretraining and finetuning: masked next-token loss, AdamW, accumulation.

The loss is the mean negative log-likelihood over the positions a batch marks (every token when
pretraining, the answer tokens when finetuning), with logits computed only at those positions.
Accumulation is a ``lax.scan`` inside one jitted step, divided by the step's total number of loss
tokens, so the update does not depend on how a step is split into micro-batches or devices.

The step is built once per (graph definition, optimizer shape (clipping, AdamW), parameter
placement), with explicit shardings: optimizer moments live where their parameters do from step 0.
Learning rate, schedule, step and seed are traced, so every run of a sweep on one architecture and
method reuses the compiled step.

A step whose loss or gradient norm is not finite is not applied (decided before the update, so the
donated buffers are updated in place) and is counted; the loop then stops with
:class:`TrainingDiverged` before the next save, so the last checkpoint written is a good one.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from emergence.errors import UserError
from emergence.train import checkpoints, throughput
from emergence.train.config import OptimConfig
from emergence.train.divergence import DivergenceWatch
from emergence.train.examples import Batch
from emergence.train.lora import with_dropout_keys
from emergence.train.mesh import shard_batch, shard_state


class TrainingDiverged(UserError):
    """The loss (or the gradients / parameters) became NaN or infinite."""


def _transform(hyper: OptimConfig) -> optax.GradientTransformation:
    """Direction of the AdamW update (the learning rate is applied outside, as a traced value)."""
    parts = [optax.clip_by_global_norm(hyper.clip_norm)] if hyper.clip_norm else []
    parts += [optax.scale_by_adam(b1=hyper.b1, b2=hyper.b2, eps=hyper.eps)]
    if hyper.weight_decay:
        parts.append(optax.add_decayed_weights(hyper.weight_decay))
    return optax.chain(*parts)


def learning_rate(step, peak, warmup, total, end_ratio, schedule: str):
    """Linear warmup over ``warmup`` steps (first step at peak/warmup), then cosine to
    ``end_ratio · peak`` at ``total`` or constant. Works on Python numbers and traced arrays."""
    step = jnp.asarray(step, jnp.float32)
    warm = (step + 1.0) / jnp.maximum(warmup, 1.0)
    if schedule == "constant":
        after = jnp.asarray(1.0)
    else:
        progress = jnp.clip((step - warmup) / jnp.maximum(total - warmup, 1.0), 0.0, 1.0)
        after = end_ratio + (1.0 - end_ratio) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
    return peak * jnp.where(step < warmup, warm, after)


def _loss_sums(model, batch: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
    """(sum of masked NLL, number of masked tokens) for one micro-batch."""
    hidden, _ = model.hidden_states(batch["tokens"], valid=batch["valid"])
    picked = jnp.take_along_axis(hidden, batch["target_pos"][..., None], axis=1)
    mask = batch["target_mask"]
    return jnp.sum(model.token_nll(picked, batch["targets"]) * mask), jnp.sum(mask)


def _train_step(
    graphdef: nnx.GraphDef, hyper: OptimConfig, params, rest, opt_state, batch, step, sched, seed_key, bad
):
    """One optimizer step over ``batch`` ([accum, B, ...] arrays); returns new state and metrics.

    The step's key and the count of non-finite steps ``bad`` are computed here: an eager op around
    the call would be a dispatch of its own."""
    key = jax.random.fold_in(seed_key, step)

    def micro(p, mb, k):
        model = nnx.merge(graphdef, p, with_dropout_keys(rest, k))
        return _loss_sums(model, mb)

    grad_fn = jax.value_and_grad(micro, has_aux=True)

    accum = batch["tokens"].shape[0]
    if accum == 1:  # no zero-filled accumulator: two fewer passes over the gradients
        (loss_sum, count), grads = grad_fn(
            params, jax.tree.map(lambda x: x[0], batch), jax.random.fold_in(key, 0)
        )
    else:

        def body(carry, xs):
            g_acc, l_acc, n_acc = carry
            mb, i = xs
            (loss_sum, count), grads = grad_fn(params, mb, jax.random.fold_in(key, i))
            return (jax.tree.map(jnp.add, g_acc, grads), l_acc + loss_sum, n_acc + count), None

        zeros = jax.tree.map(jnp.zeros_like, params)
        (grads, loss_sum, count), _ = jax.lax.scan(body, (zeros, 0.0, 0.0), (batch, jnp.arange(accum)))
    denom = jnp.maximum(count, 1.0)
    grads = jax.tree.map(lambda g: g / denom, grads)
    loss = loss_sum / denom
    grad_norm = optax.tree.norm(grads)
    ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)  # decided before the update: see "Numerics" above
    lr = learning_rate(step, sched["lr"], sched["warmup"], sched["total"], sched["end_ratio"], hyper.schedule)

    def apply(params, opt_state):
        direction, new_opt = _transform(hyper).update(grads, opt_state, params)
        new_opt = jax.tree.map(lambda n, o: n.astype(o.dtype), new_opt, opt_state)  # bf16 moments stay bf16
        return jax.tree.map(lambda p, d: (p - lr * d).astype(p.dtype), params, direction), new_opt

    new_params, new_opt = jax.lax.cond(ok, apply, lambda p, o: (p, o), params, opt_state)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(new_params)]))
    metrics = {"loss": loss, "grad_norm": grad_norm, "lr": lr, "loss_tokens": count, "ok": ok & finite}
    return new_params, new_opt, metrics, bad + (~metrics["ok"]).astype(jnp.int32)


def programs(graphdef: nnx.GraphDef, optim: OptimConfig, mesh: Mesh, params) -> tuple[Callable, Callable]:
    """(optimizer init, train step) for ``params`` (arrays, or ``jax.ShapeDtypeStruct`` with
    shardings: what ``emergence memory`` lowers). The traced settings (the step's ``sched``) are set
    to one value, so that runs differing only in them share the compiled step."""
    hyper = dataclasses.replace(optim, lr=1.0, warmup_ratio=0.0, end_lr_ratio=0.0)
    leaves, treedef = jax.tree.flatten(params)
    abstract = tuple(jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding) for x in leaves)
    return _programs(graphdef, hyper, mesh, treedef, abstract)


@functools.lru_cache(maxsize=16)
def _programs(graphdef: nnx.GraphDef, hyper: OptimConfig, mesh: Mesh, treedef, leaves: tuple):
    """Adam's moments are placed like their parameters from step 0 (left to XLA they come out
    replicated: the full moments on every device), and the step returns each array with the exact
    sharding it takes, so it compiles once per run, and once per architecture and method in a
    sweep (this cache)."""
    param_shardings = jax.tree.map(lambda x: x.sharding, jax.tree.unflatten(treedef, leaves))
    replicated = NamedSharding(mesh, PartitionSpec())
    tx = _transform(hyper)
    opt_shardings = optax.tree_map_params(
        tx,
        lambda _, sharding: sharding,
        jax.eval_shape(tx.init, jax.tree.unflatten(treedef, leaves)),
        param_shardings,
        transform_non_params=lambda part: jax.tree.map(lambda _: replicated, part),
    )
    init = jax.jit(tx.init, in_shardings=(param_shardings,), out_shardings=opt_shardings)
    step = jax.jit(
        functools.partial(_train_step, graphdef, hyper),
        donate_argnums=(0, 2),  # params, opt_state
        # rest, batch, step, schedule and key are placed by the caller (None: as given)
        in_shardings=(param_shardings, None, opt_shardings, None, None, None, None, replicated),
        out_shardings=(param_shardings, opt_shardings, replicated, replicated),
    )
    return init, step


class Trainer:
    """A model split by the NNX filter ``trainable`` (``nnx.LoRAParam`` for LoRA, ``nnx.Param``
    otherwise) into params, which get gradients and optimizer state, and everything else."""

    def __init__(
        self, model: nnx.Module, trainable, optim: OptimConfig, total_steps: int, *, mesh, seed: int = 0
    ):
        self.graphdef, self.params, self.rest = nnx.split(model, trainable, ...)
        self.mesh = mesh
        shard_state(self.rest, mesh)
        shard_state(self.params, mesh)
        init, self._step = programs(self.graphdef, optim, mesh, self.params)
        self.opt_state = init(self.params)
        warmup = int(round(optim.warmup_ratio * total_steps))
        sched = {"lr": optim.lr, "warmup": warmup, "total": total_steps, "end_ratio": optim.end_lr_ratio}
        self.sched = jax.device_put({k: np.float32(v) for k, v in sched.items()})
        self.total_steps = total_steps
        self.key = jax.random.key(seed)
        # placed as the step returns it, or the second step would compile again
        self._bad = jax.device_put(jnp.zeros((), jnp.int32), NamedSharding(mesh, PartitionSpec()))

    def model(self, *, copy: bool = False) -> nnx.Module:
        """The module over the trainer's current arrays; ``copy`` gives it Variables of its own, so
        changing the module in place (folding LoRA into a kernel) cannot reach the training state."""
        return nnx.merge(self.graphdef, self.params, self.rest, copy=copy)

    def flat_params(self) -> dict[str, jax.Array]:
        return {".".join(map(str, p)): v.get_value() for p, v in nnx.to_flat_state(self.params)}

    def opt_leaves(self) -> list[jax.Array]:
        return jax.tree.leaves(self.opt_state)

    def abstract_state(self) -> tuple[dict, list]:
        """Shapes, dtypes and shardings of (params, optimizer leaves) on this trainer's mesh."""
        state = (self.flat_params(), self.opt_leaves())
        return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)

    def load_state(self, params: dict[str, jax.Array], opt_leaves: list[jax.Array]) -> None:
        for path, var in nnx.to_flat_state(self.params):
            var.set_value(params[".".join(map(str, path))])
        self.opt_state = jax.tree.unflatten(jax.tree.structure(self.opt_state), opt_leaves)

    def restore_latest(self, directory: Path) -> int:
        """Load the newest checkpoint in ``directory``, if any; returns its step (0 when none)."""
        if not (found := checkpoints.step_dirs(directory)):
            return 0
        params, opt_leaves, step = checkpoints.restore_checkpoint(found[-1][1], *self.abstract_state())
        self.load_state(params, opt_leaves)
        return step

    def save(self, directory: Path, step: int, *, keep: int = 2) -> None:
        checkpoints.save_checkpoint(directory, step, self.flat_params(), self.opt_leaves(), keep=keep)

    def step(self, batch: Batch, step: int) -> dict[str, jax.Array]:
        """Apply one optimizer step (asynchronously: metrics are device arrays)."""
        arrays = shard_batch(vars(batch), self.mesh)
        self.params, self.opt_state, metrics, self._bad = self._step(
            self.params, self.rest, self.opt_state, arrays, np.int32(step), self.sched, self.key, self._bad
        )
        return metrics

    def fit(
        self,
        batch_fn: Callable[[int], Batch],
        *,
        start_step: int = 0,
        log_every: int = 1,
        save_every: int | None = None,
        save_final: bool = True,
        on_log: Callable[[dict], None] | None = None,
        on_save: Callable[[int], None] | None = None,
        eval_every: int | None = None,
        on_eval: Callable[[int], None] | None = None,
        tokens_before: int = 0,
        watch: DivergenceWatch | None = None,
        flops: tuple[float, str] | None = None,
        peak_tflops: float | None = None,
    ) -> list[dict]:
        """Steps ``start_step .. total_steps - 1``; ``on_log`` gets host metrics, ``on_save`` the step count.

        ``on_eval`` runs every ``eval_every`` steps and after the last one, before that step's save,
        so a resumed run redoes exactly the evaluations after its checkpoint. ``save_final=False``
        skips the last save, for callers that write the finished result themselves.

        Metrics are read back only at logging and saving steps; a non-finite step, or a finite
        failure that ``watch`` sees, raises :class:`TrainingDiverged` there, before anything is
        saved. ``tokens_before`` counts the tokens of the steps before ``start_step``.

        ``flops`` (FLOPs per token, the rule that gave them) adds TFLOP/s per device to each log
        line, and MFU against ``peak_tflops`` (default: the device kind's known peak).
        """
        history = []
        watch = watch if watch is not None else DivergenceWatch()
        devices = list(self.mesh.devices.flat)
        peak = peak_tflops if peak_tflops is not None else throughput.peak_tflops(devices[0].device_kind)
        tokens, started = 0, time.perf_counter()
        last_tokens, last_elapsed = 0, 0.0
        for step in range(start_step, self.total_steps):
            batch = batch_fn(step)
            metrics = self.step(batch, step)
            tokens += batch.n_tokens
            done = step + 1
            final = save_final and done == self.total_steps
            saving = save_every is not None and (done % save_every == 0 or final)
            if done % log_every == 0 or saving or done == self.total_steps:
                host = {k: float(v) for k, v in jax.device_get(metrics).items() if k != "ok"}
                if int(self._bad):
                    raise TrainingDiverged(
                        f"training diverged: loss {host['loss']:.4g}, grad norm {host['grad_norm']:.4g} "
                        f"by step {done} (non-finite values); lower --lr. The last checkpoint is kept"
                    )
                if (reason := watch.check(done, host["loss"], host["grad_norm"])) is not None:
                    raise TrainingDiverged(f"{reason}. The last checkpoint is kept")
                elapsed = time.perf_counter() - started
                host.update(
                    step=done,
                    tokens=tokens_before + tokens,
                    seconds=elapsed,
                    tokens_per_s=tokens / max(elapsed, 1e-9),
                )
                interval = (tokens - last_tokens, elapsed - last_elapsed)
                host.update(throughput.rates(*interval, len(devices), flops, peak))
                host.update(throughput.memory_in_use(self.mesh.local_devices))  # readable here
                last_tokens, last_elapsed = tokens, elapsed
                history.append(host)
                if on_log:
                    on_log(host)
            if on_eval and eval_every and (done % eval_every == 0 or done == self.total_steps):
                on_eval(done)
            if saving and on_save:
                on_save(done)
        return history


def mean_loss(model: nnx.Module, batches: list[Batch]) -> float:
    """Mean masked NLL of a model over batches (no gradients): held-out loss for tests and logs."""
    graphdef, state = nnx.split(model)
    total = count = 0.0
    for b in batches:
        for a in range(b.tokens.shape[0]):
            s, n = _eval_sums(graphdef, state, {k: jnp.asarray(v[a]) for k, v in vars(b).items()})
            total, count = total + float(s), count + float(n)
    return total / count if count else math.nan


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _eval_sums(graphdef: nnx.GraphDef, state, batch):
    return _loss_sums(nnx.merge(graphdef, state), batch)
