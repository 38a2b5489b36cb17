"""Checkpoint tensors ↔ NNX parameters, through each family's declarative key table.

Every supported checkpoint format (safetensors, PyTorch .bin, GGUF) is first turned into *HF-named*
numpy arrays in HF's layout (``[out, in]`` for linear weights); the family's table
(:mod:`emergence.models.families`) is the only place that knows how those names and layouts map
onto :class:`~emergence.models.llama.Llama`'s parameter paths. Saving walks the same table
backwards, so load → save → load is the identity by construction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from emergence.errors import UserError
from emergence.models.config import LlamaConfig, rope_inverse_frequencies
from emergence.models.families import KeyRule, family_of
from emergence.models.llama import Llama

#: Checkpoint keys that carry no parameters of ours (buffers some exporters write).
IGNORED_HF_KEYS = re.compile(r".*(rotary_emb\.inv_freq|attention\.bias|attention\.masked_bias)$")


def translate_name(name: str, source: str, target: str) -> str | None:
    """``name`` matched against the ``source`` template (``{0}``: a layer index), written in the
    ``target`` template; None if it does not match."""
    match = re.fullmatch(re.escape(source).replace(re.escape("{0}"), r"(\d+)"), name)
    return target.format(*match.groups()) if match else None


def hf_to_paths(config: LlamaConfig, hf_key: str) -> list[tuple[str, KeyRule]]:
    """The NNX paths a checkpoint tensor fills (three for a fused q/k/v) and their rules."""
    found = []
    for rule in family_of(config).keys:
        path = translate_name(hf_key, rule.hf, rule.path)
        if path is not None:
            found.append((path, rule))
    return found


def path_to_hf(config: LlamaConfig, path: str) -> tuple[str, KeyRule]:
    """The checkpoint tensor name for an NNX parameter path (the family's table read backwards)."""
    for rule in family_of(config).keys:
        name = translate_name(path, rule.path, rule.hf)
        if name is not None:
            return name, rule
    raise KeyError(f"no {config.architecture} name for parameter {path}")


def _fused_part(value: np.ndarray, part: int, heads: int) -> np.ndarray:
    """Part ``part`` (q, k or v) of a fused ``[heads · 3 · head_dim, ...]`` tensor (GPT-NeoX)."""
    return np.ascontiguousarray(value.reshape(heads, 3, -1, *value.shape[1:])[:, part].reshape(-1, *value.shape[1:]))


def _fuse(parts: list[np.ndarray], heads: int) -> np.ndarray:
    """The inverse of :func:`_fused_part` over q, k, v."""
    stacked = np.stack([p.reshape(heads, -1, *p.shape[1:]) for p in parts], axis=1)
    return stacked.reshape(-1, *parts[0].shape[1:])


class LazyTensors(Mapping[str, np.ndarray]):
    """HF-named tensors, each read (dequantized, converted) only when asked for: a loader hands
    :func:`build_model` a whole checkpoint without ever holding it all in memory.

    A format that can read part of a tensor (a memory-mapped safetensors file) gives its shape and
    a reader taking an index (a tuple of slices) in ``parts``: a host then reads only the slices
    its devices hold (:meth:`part`)."""

    def __init__(
        self,
        readers: Mapping[str, Callable[[], np.ndarray]],
        parts: Mapping[str, tuple[tuple[int, ...], Callable[[tuple], np.ndarray]]] | None = None,
    ):
        self._readers = dict(readers)
        self._parts = dict(parts or {})

    def shape(self, name: str) -> tuple[int, ...] | None:
        """The stored shape, when the tensor can be read in parts (else None)."""
        return self._parts[name][0] if name in self._parts else None

    def part(self, name: str, index: tuple) -> np.ndarray:
        return self._parts[name][1](index)

    def __getitem__(self, name: str) -> np.ndarray:
        return self._readers[name]()

    def __iter__(self):
        return iter(self._readers)

    def __len__(self) -> int:
        return len(self._readers)


#: Where a parameter goes: its dotted NNX path and shape → a sharding (the trainer's mesh rules).
Placement = Callable[[str, tuple[int, ...]], jax.sharding.Sharding]


def _flat(state: nnx.State) -> dict[str, nnx.Variable]:
    return {".".join(str(p) for p in path): var for path, var in nnx.to_flat_state(state)}


def build_model(
    config: LlamaConfig, tensors: Mapping[str, np.ndarray], source: str, placement: Placement | None = None
) -> Llama:
    """A :class:`Llama` whose parameters are the given HF-named tensors; every parameter must be set.

    Shapes are checked against the config before anything is materialized, so a mismatched tensor is
    reported by name rather than as an XLA error deep in the forward pass. Each tensor is converted
    to ``config.param_dtype`` on the host as it is read (``tensors`` may read lazily), and with a
    ``placement`` sent straight to its sharding, so neither the host nor one device ever holds the
    whole model in another dtype or layout.
    """
    model = nnx.eval_shape(lambda: Llama(config, rngs=nnx.Rngs(0)))  # shapes only: no random weights
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    flat = _flat(params)
    dtype = jnp.dtype(config.param_dtype)
    filled: dict[str, np.ndarray | jax.Array] = {}
    for hf_key in tensors:  # each tensor is read only once its name is known to fit
        targets = hf_to_paths(config, hf_key)
        if not targets:
            if IGNORED_HF_KEYS.match(hf_key):
                continue
            raise UserError(f"{source}: unexpected tensor {hf_key!r} (not a {config.architecture} parameter)")
        if any(path not in flat for path, _ in targets):
            if targets[0][0] == "lm_head.kernel" and config.tie_word_embeddings:
                continue  # some exporters write the tied head anyway; the embedding is the truth
            raise UserError(f"{source}: tensor {hf_key!r} does not fit this config ({targets[0][0]} does not exist)")
        stored_shape = tensors.shape(hf_key) if isinstance(tensors, LazyTensors) else None
        whole = None
        for path, rule in targets:
            expected = tuple(flat[path].get_value().shape)
            if placement is not None and stored_shape is not None and rule.part is None:
                # each host reads only its devices' slices
                layout = stored_shape[::-1] if rule.transpose else stored_shape
                _check_shape(source, hf_key, stored_shape, layout, expected, rule)
                filled[path] = _read_placed(tensors, hf_key, rule.transpose, expected, dtype, placement(path, expected))
                continue
            whole = np.asarray(tensors[hf_key]) if whole is None else whole
            stored = whole if rule.part is None else _fused_part(whole, rule.part, config.num_attention_heads)
            value = stored.T if rule.transpose else stored
            _check_shape(source, hf_key, whole.shape, value.shape, expected, rule)
            value = value.astype(dtype, copy=False)
            filled[path] = value if placement is None else jax.device_put(value, placement(path, value.shape))
    missing = sorted(set(flat) - set(filled))
    if missing:
        hf_name = path_to_hf(config, missing[0])[0]
        raise UserError(f"{source}: missing tensor {hf_name!r}" + (f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""))
    paths = list(flat)
    if placement is None:  # one batched transfer for all tensors, not a dispatch per tensor
        placed = jax.device_put([filled[path] for path in paths])
    else:
        placed = [filled[path] for path in paths]
    for path, value in zip(paths, placed, strict=True):
        flat[path].set_value(value)
    model = nnx.merge(graphdef, params, rest)
    for name, local in (("inv_freq", False), ("local_inv_freq", True)):
        if local and config.local_rope_theta is None:
            continue
        freqs = np.asarray(rope_inverse_frequencies(config, local=local), np.float32)
        getattr(model, name).set_value(jnp.asarray(freqs) if placement is None else jax.device_put(freqs, placement(name, freqs.shape)))
    return model


def _check_shape(
    source: str, hf_key: str, stored: tuple, actual: tuple, expected: tuple, rule: KeyRule
) -> None:
    """Refuse a tensor whose ``actual`` shape (the ``stored`` one split and transposed by its rule)
    is not its parameter's, naming it in its stored layout."""
    if tuple(actual) != expected:
        raise UserError(
            f"{source}: tensor {hf_key!r} has shape {tuple(stored)}, "
            f"config expects {expected[::-1] if rule.transpose else expected}"
            + ("" if rule.part is None else " per part")
        )


def _read_placed(
    tensors: LazyTensors, hf_key: str, transpose: bool, shape: tuple, dtype, sharding: jax.sharding.Sharding
) -> jax.Array:
    """One parameter as a global array, each process reading only the slices its devices hold
    (each distinct slice once: replicated devices share it)."""
    read: dict[tuple, np.ndarray] = {}

    def slice_of(index: tuple) -> np.ndarray:
        key = tuple((s.start, s.stop, s.step) for s in index)
        if key not in read:
            part = tensors.part(hf_key, index[::-1] if transpose else index)
            read[key] = (part.T if transpose else part).astype(dtype, copy=False)
        return read[key]

    return jax.make_array_from_callback(shape, sharding, slice_of)


def export_tensors(model: Llama, dtype: np.dtype | None = None) -> dict[str, np.ndarray]:
    """Checkpoint-named numpy arrays in HF layout, ready for safetensors (fused q/k/v fused again)."""
    config = model.config
    out: dict[str, np.ndarray] = {}
    fused: dict[str, dict[int, np.ndarray]] = {}
    for path, var in _flat(nnx.state(model, nnx.Param)).items():
        name, rule = path_to_hf(config, path)
        value = np.asarray(jax.device_get(var.get_value()))
        value = value.T if rule.transpose else value
        value = np.ascontiguousarray(value.astype(dtype) if dtype is not None else value)
        if rule.part is None:
            out[name] = value
        else:
            fused.setdefault(name, {})[rule.part] = value
    for name, parts in fused.items():
        out[name] = _fuse([parts[i] for i in range(3)], config.num_attention_heads)
    return out

