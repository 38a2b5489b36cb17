"""LoRA for the NNX LLaMA: wrap chosen ``nnx.Linear`` modules, train only ``nnx.LoRAParam``, merge back.

:class:`LoraLinear` keeps the original linear as ``base`` and adds an ``nnx.LoRA`` (parameters of type
``nnx.LoRAParam``), so the trainer selects adapter parameters with that type as a filter and the
optimizer state exists for them alone. The update is ``base(x) + (alpha / rank) · (dropout(x) A) B``
with B initialized to zero, so a fresh adapter leaves the model's outputs unchanged.

Dropout draws from a per-layer key variable that the trainer replaces by ``fold_in(key(seed, step),
layer)`` for every step, so masks are a pure function of (seed, step): a resumed run draws exactly
the masks an uninterrupted one would. Outside training (``deterministic``) no dropout is applied.

A sweep finetunes the same base model many times, so wrapping is done once per (base, config, seed)
and kept split: :func:`lora_parts` hands a trainer the graph, fresh adapter copies and the base arrays
(placed on the mesh once), with no module built or walked; :func:`lora_copy` builds a module from
them for callers that want one. Folding adapters back in is one compiled call (:func:`merge_lora` on
a wrapped module; :func:`fold_into_base` straight from the adapter arrays onto the base), not ~200
eager updates.
"""

from __future__ import annotations

import functools
import re
import weakref
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from emergence.errors import UserError
from emergence.memo import remember
from emergence.models.static_graph import SplitModel, static_graph
from emergence.train.config import LoraConfig
from emergence.train.mesh import copied, shard_state


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
        x = x.reshape(-1, shape[-1])  # 2-D GEMMs only: see emergence.models.llama.Linear
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

    Why: the two-GEMM form writes a ``[tokens, out]`` product of a rank-8 GEMM and adds it to the
    base output, forward, and does the same for the input gradient, backward: four memory-bound
    passes over activations per projection, ~1 s of a 9.6 s SmolLM2 LoRA step (batch 8 × 256).
    Folding costs one weight-sized pass. The backward computes ``dx = g (W + s A B)ᵀ``,
    ``dA = s xᵀ (g Bᵀ)``, ``dB = s (x A)ᵀ g`` (small GEMMs); ``dW = xᵀ g`` is returned too, so the
    function is differentiable in every array, and XLA drops it when the base is frozen.
    fp32 only: in bf16 the folded weights would round the adapter's small update away."""
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
        if isinstance(module, nnx.Linear) and not _inside_lora(model, path)
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


def _inside_lora(model: nnx.Module, path: tuple) -> bool:
    return len(path) > 1 and isinstance(_parent(model, path), LoraLinear)


def apply_lora(model: nnx.Module, cfg: LoraConfig, seed: int = 0) -> nnx.Module:
    """Wrap every matching linear in place (and return the model); A is drawn from ``seed``."""
    rngs = nnx.Rngs(params=jax.random.key(seed))
    for path, linear in matching_linears(model, cfg.targets).items():
        setattr(_parent(model, path), path[-1], LoraLinear(linear, cfg, rngs=rngs))
    return model


def lora_layers(model: nnx.Module) -> Iterator[tuple[tuple, LoraLinear]]:
    for path, module in nnx.iter_modules(model):
        if isinstance(module, LoraLinear):
            yield path, module


def set_training(model: nnx.Module, training: bool) -> None:
    """Switch LoRA dropout on (training) or off; a static attribute, so each mode compiles once."""
    for _, layer in lora_layers(model):
        layer.deterministic = not training


def with_dropout_keys(state: nnx.State, key: jax.Array) -> nnx.State:
    """A copy of ``state`` whose i-th LoRA dropout key is ``fold_in(key, i)``.

    Functional (no mutation) so it can run inside ``grad``/``scan`` traces of the jitted step."""
    flat = list(nnx.to_flat_state(state))
    out, i = [], 0
    for path, var in flat:
        if isinstance(var, DropoutKey):
            var = var.replace(jax.random.fold_in(key, i))
            i += 1
        out.append((path, var))
    return nnx.from_flat_state(out) if i else state


def merge_lora(model: nnx.Module) -> nnx.Module:
    """Fold every adapter into its base kernel (``W + scale · A B``) and unwrap it, in place.

    The result has the original module tree, so it exports with ``save_model`` and gives the logits
    of base + adapter up to floating-point rounding. All kernels are folded by one jitted call.
    """
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


_TEMPLATES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _Template:
    """``nnx.split(apply_lora(nnx.clone(base), cfg, seed), nnx.LoRAParam, ...)``, kept for copies;
    with ``training``, its dropout is on (:func:`set_training`)."""

    def __init__(self, graphdef: nnx.GraphDef, adapters: nnx.State, rest: nnx.State):
        self.graphdef, self.adapters, self.rest = graphdef, adapters, rest
        self.mesh = None  # the mesh ``adapters`` and ``rest`` are placed on, once one was asked for

    def placed(self, mesh) -> _Template:
        if mesh is not None and self.mesh is not mesh:
            shard_state(self.adapters, mesh)
            shard_state(self.rest, mesh)
            self.mesh = mesh
        return self


class _Skeleton:
    """What a template holds apart from its base's arrays: the wrapped graph, the fresh adapters
    and, for each leaf of ``rest``, the slot of the base leaf it takes (the same slot in every base
    of one architecture) or its own variable (dropout keys).

    Why: every checkpoint of a ladder (or of one model's training run) has the same architecture,
    and wrapping is most of a LoRA cell's setup on a new checkpoint (SmolLM2: ~1.5 s, mostly
    drawing ~200 adapters one by one). With the skeleton, the template of another checkpoint is
    its arrays put into the same graph. It holds no base array, so no base outlives its use."""

    def __init__(self, base: nnx.Module, wrapped_model: nnx.Module, template: _Template):
        split = base_split(base)
        wrapped = {path for path, _ in lora_layers(wrapped_model)}
        self.graphdef, self.adapters = template.graphdef, _fresh(nnx.to_flat_state(template.adapters))
        self.leaves: list[tuple[tuple, int | nnx.Variable]] = []
        for path, var in nnx.to_flat_state(template.rest):
            slot = split.index.get(".".join(map(str, _unwrapped(path, wrapped))))
            self.leaves.append((path, var.replace(var.get_value()) if slot is None else slot))
        slots = sorted(leaf for _, leaf in self.leaves if isinstance(leaf, int))
        self.complete = slots == list(range(len(split.flat)))  # every base leaf taken exactly once

    def template(self, base: nnx.Module) -> _Template:
        flat = base_split(base).flat
        rest = [(path, flat[leaf][1] if isinstance(leaf, int) else leaf) for path, leaf in self.leaves]
        # every template gets its own Variables: placing one on a mesh (in place) must not move
        # another's arrays
        return _Template(self.graphdef, _fresh(nnx.to_flat_state(self.adapters)), _fresh(rest))


def _fresh(leaves) -> nnx.State:
    """A state of new Variable objects over the same arrays as ``leaves`` ((path, Variable) pairs)."""
    return nnx.from_flat_state([(p, v.replace(v.get_value())) for p, v in leaves])


def _unwrapped(path: tuple, wrapped: set[tuple]) -> tuple:
    """A wrapped model's leaf path as the base names it: ``q_proj.base.kernel`` → ``q_proj.kernel``."""
    n = path.index("base") if "base" in path else -1
    return path[:n] + path[n + 1 :] if n >= 0 and path[:n] in wrapped else path


_SKELETONS: dict = {}


def _architecture(base: nnx.Module) -> tuple:
    split = base_split(base)
    arrays = (v.get_value() for _, v in split.flat)
    return static_graph(split.graphdef), tuple((x.shape, x.dtype) for x in arrays)


def _build_template(base: nnx.Module, cfg: LoraConfig, seed: int, training: bool) -> _Template:
    key = (_architecture(base), cfg, seed, training)
    if (skeleton := _SKELETONS.get(key)) is not None:
        return skeleton.template(base)
    model = apply_lora(nnx.clone(base), cfg, seed)
    if training:
        set_training(model, True)
    template = _Template(*nnx.split(model, nnx.LoRAParam, ...))
    skeleton = _Skeleton(base, model, template)
    if skeleton.complete:
        remember(_SKELETONS, key, lambda: skeleton, 8)
    return template


def _template(base: nnx.Module, cfg: LoraConfig, seed: int, training: bool = False) -> _Template:
    # a sweep uses one (config, seed) per base; keep a few, not one per call
    make = lambda: _build_template(base, cfg, seed, training)  # noqa: E731
    return remember(_TEMPLATES.setdefault(base, {}), (cfg, seed, training), make, 4)


def lora_copy(base: nnx.Module, cfg: LoraConfig, seed: int = 0) -> nnx.Module:
    """``apply_lora(nnx.clone(base), cfg, seed)``, built once per (base, cfg, seed) and copied after.

    The wrapped graph and its fresh adapters are kept, weakly keyed on ``base`` (they go when the
    base does). Each call returns new modules and Variables over the base's arrays, with *copies* of
    the adapter arrays, because the trainer donates what it updates. ``base`` must not be changed in
    place afterwards (a sweep never does: full finetuning trains a copy).
    """
    t = _template(base, cfg, seed)
    return nnx.merge(t.graphdef, copied(t.adapters), t.rest, copy=True)


def lora_parts(base: nnx.Module, cfg: LoraConfig, seed: int = 0, *, mesh=None, training: bool = False):
    """``(graphdef, adapters, rest)`` of :func:`lora_copy`'s model without building the module;
    with ``training``, of that model after ``set_training(model, True)`` (dropout on).

    What a trainer needs, at the cost of one compiled copy of the adapters: a sweep's LoRA cell
    skips a merge and a split of the whole graph (and, with ``mesh``, placing every base array on
    it, done once per template). ``adapters`` are fresh copies (the trainer donates them); ``rest``
    is shared by every copy, so it must never be changed in place (the trainer only reads it, and
    replaces the dropout keys functionally).
    """
    t = _template(base, cfg, seed, training).placed(mesh)
    return t.graphdef, copied(t.adapters), t.rest


class BaseSplit:
    """``nnx.split(base)`` kept while ``base`` lives: its flat state and each dotted path's slot in it.

    A sweep builds many models over one base (fresh copies, folded adapters); each starts from this
    instead of walking the base's graph again. ``base`` must not change in place afterwards."""

    def __init__(self, base: nnx.Module):
        self.graphdef, self.state = nnx.split(base)
        self.flat = list(nnx.to_flat_state(self.state))
        self.index = {".".join(map(str, p)): i for i, (p, _) in enumerate(self.flat)}


_BASE_SPLITS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def base_split(base: nnx.Module) -> BaseSplit:
    if base not in _BASE_SPLITS:
        _BASE_SPLITS[base] = BaseSplit(base)
    return _BASE_SPLITS[base]


def fold_into_base(base: nnx.Module, adapter: dict[str, jax.Array], scale: float) -> nnx.Module:
    """A new model of ``base``'s architecture whose kernels are ``W + scale · A B`` for each adapter.

    The functional twin of ``merge_lora(<base wrapped, adapter loaded>)``: one compiled fold of the
    adapted kernels and one merge over the base's (cached) flat state, instead of wrapping, loading,
    folding and unwrapping module by module. ``adapter`` maps ``<linear path>.lora.lora_a`` /
    ``.lora_b`` to arrays (:func:`lora_state`, the trainer's ``flat_params``). ``base`` is unchanged;
    the result shares its other arrays.
    """
    return folded_split(base, adapter, scale).module()


def base_as_split(base: nnx.Module) -> SplitModel:
    """``base`` as a :class:`SplitModel` over its kept split (:func:`base_split`): evaluating it
    walks no module tree. ``base`` must not change in place afterwards."""
    split = base_split(base)
    return SplitModel(static_graph(split.graphdef), split.state, base.config)


def folded_split(base: nnx.Module, adapter: dict[str, jax.Array], scale: float) -> SplitModel:
    """:func:`fold_into_base`'s model as a :class:`SplitModel`, never built as a module: what a
    sweep evaluates (the state holds the folded kernels and the base's other Variables)."""
    split = base_split(base)
    flat, index = split.flat, split.index
    linears = sorted({name.rsplit(".lora.", 1)[0] for name in adapter})
    try:
        slots = [index[f"{name}.kernel"] for name in linears]
    except KeyError as err:
        raise UserError(f"adapter tensor for {err.args[0]!r} has no kernel in the base model") from None
    # The folded kernels are placed as the base's are, not where the adapters were trained:
    # placement is part of a compiled program's key, and a scorer compiled for the base then serves
    # the folded model too instead of compiling again for every shape. The adapters go in as host
    # arrays, so an unplaced base gives unplaced kernels; a placed base's kernels are put back on
    # its placement.
    bases = [flat[i][1].get_value() for i in slots]
    kernels = _folded_kernels(
        bases,
        [np.asarray(adapter[f"{name}.lora.lora_a"]) for name in linears],
        [np.asarray(adapter[f"{name}.lora.lora_b"]) for name in linears],
        scales=(float(scale),) * len(linears),
    )
    if any(kernel.committed for kernel in bases):
        kernels = jax.device_put(kernels, [kernel.sharding for kernel in bases])
    folded = list(flat)
    for i, kernel in zip(slots, kernels, strict=True):
        path, var = folded[i]
        folded[i] = (path, var.replace(kernel))
    return SplitModel(static_graph(split.graphdef), nnx.from_flat_state(folded), base.config)


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
