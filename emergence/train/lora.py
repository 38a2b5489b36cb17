"""LoRA for the NNX LLaMA: wrap chosen ``nnx.Linear`` modules, train only ``nnx.LoRAParam``, merge back.

:class:`LoraLinear` keeps the original linear as ``base`` and adds an ``nnx.LoRA`` whose parameters
the trainer selects by type. The update is ``base(x) + (alpha / rank) · (dropout(x) A) B`` with B
initialized to zero, so a fresh adapter leaves the model's outputs unchanged. Dropout draws from a
per-layer key that the trainer sets from (seed, step) each step, so a resumed run draws exactly the
masks an uninterrupted one would.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from emergence.errors import UserError
from emergence.models.families import family_of
from emergence.train.config import DEFAULT_LORA_TARGETS, LoraConfig


class DropoutKey(nnx.Variable):
    """The PRNG key a LoRA layer's dropout uses for the current step (not a parameter)."""


class LoraLinear(nnx.Module):
    """``base(x) + scale · LoRA(dropout(x))``; call-compatible with the ``nnx.Linear`` it wraps."""

    def __init__(self, base: nnx.Linear, cfg: LoraConfig, *, rngs: nnx.Rngs):
        self.base = base
        self.lora = nnx.LoRA(
            base.in_features,
            cfg.rank,
            base.out_features,
            dtype=base.dtype,
            param_dtype=jnp.float32,  # adapters train in fp32 whatever the base's dtype
            rngs=rngs,
        )
        self.scale = cfg.scale
        self.rate = cfg.dropout
        self.deterministic = True
        self.dropout_key = DropoutKey(jax.random.key(0)) if cfg.dropout > 0 else None

    def __call__(self, x: jax.Array) -> jax.Array:
        shape = x.shape
        x = x.reshape(-1, shape[-1])  # 2-D GEMMs only: see emergence.models.layers.Linear
        kernel = self.base.kernel[...]
        dropping = self.rate > 0 and not self.deterministic
        if not dropping and x.dtype == kernel.dtype == jnp.float32:
            out = folded_matmul(x, kernel, self.lora.lora_a[...], self.lora.lora_b[...], self.scale)
            if self.base.bias is not None:
                out = out + self.base.bias[...]
            return out.reshape(*shape[:-1], out.shape[-1])
        h = x
        if dropping:
            keep = jax.random.bernoulli(self.dropout_key[...], 1.0 - self.rate, x.shape)
            h = jnp.where(keep, x / (1.0 - self.rate), 0).astype(x.dtype)
        # the scale goes on the rank-r activations, not on the [tokens, out] product: one less
        # full-size elementwise pass forward and backward
        down = (h @ self.lora.lora_a[...].astype(h.dtype)) * self.scale
        out = self.base(x) + (down @ self.lora.lora_b[...].astype(h.dtype)).astype(x.dtype)
        return out.reshape(*shape[:-1], out.shape[-1])


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def folded_matmul(x: jax.Array, kernel: jax.Array, a: jax.Array, b: jax.Array, scale: float) -> jax.Array:
    """``x W + scale · (x A) B`` as one GEMM, ``x (W + scale · A B)``, with LoRA's own backward.

    Folding costs one weight-sized pass instead of four activation-sized ones per projection;
    ``dW`` is returned too (XLA drops it when the base is frozen). fp32 only: in bf16 the folded
    weights would round the adapter's small update away."""
    return x @ fold_adapter(kernel, a, b, scale)


def fold_adapter(kernel: jax.Array, a: jax.Array, b: jax.Array, scale: float) -> jax.Array:
    """``W + scale · A B`` in fp32, in the kernel's dtype: the weight a merged adapter leaves."""
    return (kernel.astype(jnp.float32) + (a @ b) * scale).astype(kernel.dtype)


def _folded_fwd(x, kernel, a, b, scale):
    return folded_matmul(x, kernel, a, b, scale), (x, kernel, a, b)


def _folded_bwd(scale, residuals, g):
    x, kernel, a, b = residuals
    dx = g @ fold_adapter(kernel, a, b, scale).T  # recomputed: cheaper than keeping it per projection
    da = (x.T @ (g @ b.T)) * scale
    db = ((x @ a) * scale).T @ g
    return dx, x.T @ g, da, db


folded_matmul.defvjp(_folded_fwd, _folded_bwd)


def _parent(model: nnx.Module, path: tuple) -> nnx.Module:
    node = model
    for part in path[:-1]:
        node = node[part] if isinstance(part, int) else getattr(node, part)
    return node


def matching_linears(model: nnx.Module, targets: tuple[str, ...]) -> dict[tuple, nnx.Linear]:
    """Linear modules whose dotted path matches a target pattern; an unmatched pattern is an error."""
    linears = {
        path: module
        for path, module in nnx.iter_modules(model)
        if isinstance(module, nnx.Linear) and not isinstance(_parent(model, path), LoraLinear)
    }
    chosen: dict[tuple, nnx.Linear] = {}
    for pattern in targets:
        try:
            regex = re.compile(pattern)
        except re.error as err:
            raise UserError(f"LoRA target {pattern!r} is not a valid regular expression ({err})") from None
        hits = {p: m for p, m in linears.items() if regex.search(".".join(map(str, p)))}
        if not hits:
            names = sorted({str(p[-1]) for p in linears})
            raise UserError(f"LoRA target {pattern!r} matches no linear module (names: {', '.join(names)})")
        chosen.update(hits)
    return dict(sorted(chosen.items(), key=lambda kv: tuple(map(str, kv[0]))))


def apply_lora(model: nnx.Module, cfg: LoraConfig, seed: int = 0) -> nnx.Module:
    """Wrap every matching linear in place (and return the model); A is drawn from ``seed``."""
    rngs = nnx.Rngs(params=jax.random.key(seed))
    targets = cfg.targets
    if targets == DEFAULT_LORA_TARGETS and hasattr(model, "config"):  # the default names the family's projections
        targets = family_of(model.config).lora_targets
    for path, linear in matching_linears(model, targets).items():
        setattr(_parent(model, path), path[-1], LoraLinear(linear, cfg, rngs=rngs))
    return model


def lora_layers(model: nnx.Module) -> Iterator[tuple[tuple, LoraLinear]]:
    for path, module in nnx.iter_modules(model):
        if isinstance(module, LoraLinear):
            yield path, module


def for_training(model: nnx.Module, lora: LoraConfig | None, seed: int = 0) -> tuple[nnx.Module, type]:
    """The model a run trains and the Variable type it trains: fresh adapters over ``model`` (in place),
    dropout on when they have any, or, without ``lora``, ``model``'s own parameters. One rule for the
    trainer and for ``emergence memory``'s plan of it."""
    if lora is None:
        return model, nnx.Param
    model = apply_lora(model, lora, seed)
    set_training(model, lora.dropout > 0)
    return model, nnx.LoRAParam


def set_training(model: nnx.Module, training: bool) -> None:
    """Switch LoRA dropout on (training) or off; a static attribute, so each mode compiles once."""
    for _, layer in lora_layers(model):
        layer.deterministic = not training


def with_dropout_keys(state: nnx.State, key: jax.Array) -> nnx.State:
    """A copy of ``state`` whose i-th LoRA dropout key is ``fold_in(key, i)`` (no mutation: it runs
    inside the jitted step's traces)."""
    out, i = [], 0
    for path, var in nnx.to_flat_state(state):
        if isinstance(var, DropoutKey):
            var = var.replace(jax.random.fold_in(key, i))
            i += 1
        out.append((path, var))
    return nnx.from_flat_state(out) if i else state


def merge_lora(model: nnx.Module) -> nnx.Module:
    """Fold every adapter into its base kernel (``W + scale · A B``) and unwrap it, in place, so the
    model has its original module tree again (one jitted call folds every kernel)."""
    layers = list(lora_layers(model))
    if not layers:
        return model
    kernels = _folded_kernels(
        [layer.base.kernel[...] for _, layer in layers],
        [layer.lora.lora_a[...] for _, layer in layers],
        [layer.lora.lora_b[...] for _, layer in layers],
        scales=tuple(float(layer.scale) for _, layer in layers),
    )
    for (path, layer), kernel in zip(layers, kernels, strict=True):
        layer.base.kernel.set_value(kernel)
        setattr(_parent(model, path), path[-1], layer.base)
    return model


@functools.partial(jax.jit, static_argnames=("scales",))
def _folded_kernels(kernels, downs, ups, *, scales):
    return [fold_adapter(k, a, b, s) for k, a, b, s in zip(kernels, downs, ups, scales, strict=True)]


def folds_at_evaluation(param_dtype: str) -> bool:
    """Whether evaluation folds adapters into their base kernels (a float32 base: one GEMM per
    projection, and the numbers the CPU parity fixtures pin) rather than applying them unfused on
    the wrapped model (a bfloat16 base: folding would add a copy of every adapted kernel and round
    the adapter's small update away)."""
    return param_dtype == "float32"


def fold_into_base(base: nnx.Module, adapter: dict[str, jax.Array], scale: float) -> nnx.Module:
    """A new model of ``base``'s architecture whose kernels are ``W + scale · A B`` for each adapter:
    ``merge_lora`` of the wrapped base without wrapping it. ``adapter`` maps ``<linear
    path>.lora.lora_a`` / ``.lora_b`` to arrays (the trainer's ``flat_params``); ``base`` is
    unchanged, and the result shares its other arrays."""
    graphdef, state = nnx.split(base)
    flat = list(nnx.to_flat_state(state))
    index = {".".join(map(str, path)): i for i, (path, _) in enumerate(flat)}
    linears = sorted({name.rsplit(".lora.", 1)[0] for name in adapter})
    try:
        slots = [index[f"{name}.kernel"] for name in linears]
    except KeyError as err:
        raise UserError(f"adapter tensor for {err.args[0]!r} has no kernel in the base model") from None
    # placed as the base's kernels (the adapters go in as host arrays): placement is part of a
    # compiled program's key, so the base's compiled scorer then serves the folded model too
    bases = [flat[i][1].get_value() for i in slots]
    kernels = _folded_kernels(
        bases,
        [np.asarray(adapter[f"{name}.lora.lora_a"]) for name in linears],
        [np.asarray(adapter[f"{name}.lora.lora_b"]) for name in linears],
        scales=(float(scale),) * len(linears),
    )
    if any(kernel.committed for kernel in bases):
        kernels = jax.device_put(kernels, [kernel.sharding for kernel in bases])
    for i, kernel in zip(slots, kernels, strict=True):
        path, var = flat[i]
        flat[i] = (path, var.replace(kernel))
    return nnx.merge(graphdef, nnx.from_flat_state(flat), copy=True)


def lora_state(model: nnx.Module) -> dict[str, jax.Array]:
    """Adapter weights as ``{dotted path: array}`` (what an adapter checkpoint holds)."""
    state = nnx.state(model, nnx.LoRAParam)
    return {".".join(map(str, p)): v.get_value() for p, v in nnx.to_flat_state(state)}


def load_lora_state(model: nnx.Module, weights: dict[str, jax.Array], source: str) -> None:
    """Set adapter weights by dotted path; missing or extra names, or wrong shapes, are errors."""
    state = nnx.state(model, nnx.LoRAParam)
    flat = {".".join(map(str, p)): v for p, v in nnx.to_flat_state(state)}
    missing, extra = sorted(set(flat) - set(weights)), sorted(set(weights) - set(flat))
    if missing or extra:
        what = f"missing {missing[0]!r}" if missing else f"unexpected {extra[0]!r}"
        raise UserError(f"{source}: adapter does not fit this model ({what})")
    for name, var in flat.items():
        value = jnp.asarray(weights[name], jnp.float32)
        if value.shape != var.get_value().shape:
            raise UserError(
                f"{source}: adapter tensor {name!r} has shape {value.shape}, model expects {var.get_value().shape}"
            )
        var.set_value(value)
