"""Checkpoint tensors ↔ NNX parameters, through one declarative key table.

Every supported checkpoint format (HF safetensors, GGUF) is first turned into *HF-named* numpy arrays
in HF's layout (``[out, in]`` for linear weights); this table is the only place that knows how those
names and layouts map onto :class:`~emergence.models.llama.Llama`'s parameter paths. Saving walks the
same table backwards, so load → save → load is the identity by construction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from emergence.errors import UserError
from emergence.models.config import LlamaConfig, rope_inverse_frequencies
from emergence.models.llama import Llama


@dataclass(frozen=True)
class KeyRule:
    """HF tensor name ↔ NNX ``path`` (``{0}``: the layer index); ``transpose`` for linear kernels."""

    hf: str
    path: str
    transpose: bool = False


_ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")
_MLP = ("gate_proj", "up_proj", "down_proj")

KEY_TABLE: tuple[KeyRule, ...] = (
    KeyRule("model.embed_tokens.weight", "embed.embedding"),
    KeyRule("model.norm.weight", "norm.weight"),
    KeyRule("lm_head.weight", "lm_head.kernel", transpose=True),
    KeyRule("model.layers.{0}.input_layernorm.weight", "layers.{0}.input_norm.weight"),
    KeyRule("model.layers.{0}.post_attention_layernorm.weight", "layers.{0}.post_attn_norm.weight"),
    *(KeyRule(f"model.layers.{{0}}.self_attn.{p}.weight", f"layers.{{0}}.attn.{p}.kernel", True) for p in _ATTN),
    *(KeyRule(f"model.layers.{{0}}.self_attn.{p}.bias", f"layers.{{0}}.attn.{p}.bias") for p in _ATTN),
    *(KeyRule(f"model.layers.{{0}}.mlp.{p}.weight", f"layers.{{0}}.mlp.{p}.kernel", True) for p in _MLP),
    *(KeyRule(f"model.layers.{{0}}.mlp.{p}.bias", f"layers.{{0}}.mlp.{p}.bias") for p in _MLP),
)

#: HF keys that carry no parameters of ours (buffers some exporters write).
IGNORED_HF_KEYS = re.compile(r".*rotary_emb\.inv_freq$")

def _translate(name: str, source: str, target: str) -> str | None:
    """``name`` matched against the ``source`` template, written in the ``target`` template."""
    match = re.fullmatch(re.escape(source).replace(re.escape("{0}"), r"(\d+)"), name)
    return target.format(*match.groups()) if match else None


def hf_to_path(hf_key: str) -> tuple[str, bool] | None:
    """The NNX path for an HF tensor name and whether it is transposed, or None if unknown."""
    for rule in KEY_TABLE:
        path = _translate(hf_key, rule.hf, rule.path)
        if path is not None:
            return path, rule.transpose
    return None


def path_to_hf(path: str) -> tuple[str, bool]:
    """The HF tensor name for an NNX parameter path (the table read backwards)."""
    for rule in KEY_TABLE:
        name = _translate(path, rule.path, rule.hf)
        if name is not None:
            return name, rule.transpose
    raise KeyError(f"no HF name for parameter {path}")


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
        target = hf_to_path(hf_key)
        if target is None:
            if IGNORED_HF_KEYS.match(hf_key):
                continue
            raise UserError(f"{source}: unexpected tensor {hf_key!r} (not a LLaMA-family parameter)")
        path, transpose = target
        if path not in flat:
            if path == "lm_head.kernel" and config.tie_word_embeddings:
                continue  # some exporters write the tied head anyway; the embedding is the truth
            raise UserError(f"{source}: tensor {hf_key!r} does not fit this config ({path} does not exist)")
        expected = tuple(flat[path].get_value().shape)
        stored_shape = tensors.shape(hf_key) if isinstance(tensors, LazyTensors) else None
        if placement is not None and stored_shape is not None:  # each host reads its devices' slices
            _check_shape(source, hf_key, stored_shape, expected, transpose)
            filled[path] = _read_placed(tensors, hf_key, transpose, expected, dtype, placement(path, expected))
            continue
        stored = np.asarray(tensors[hf_key])
        _check_shape(source, hf_key, stored.shape, expected, transpose)
        value = (stored.T if transpose else stored).astype(dtype, copy=False)
        filled[path] = value if placement is None else jax.device_put(value, placement(path, value.shape))
    missing = sorted(set(flat) - set(filled))
    if missing:
        hf_name = path_to_hf(missing[0])[0]
        raise UserError(f"{source}: missing tensor {hf_name!r}" + (f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""))
    paths = list(flat)
    if placement is None:  # one batched transfer for all tensors, not a dispatch per tensor
        placed = jax.device_put([filled[path] for path in paths])
    else:
        placed = [filled[path] for path in paths]
    for path, value in zip(paths, placed, strict=True):
        flat[path].set_value(value)
    model = nnx.merge(graphdef, params, rest)
    inv_freq = np.asarray(rope_inverse_frequencies(config), np.float32)
    model.inv_freq.set_value(jnp.asarray(inv_freq) if placement is None else jax.device_put(inv_freq, placement("inv_freq", inv_freq.shape)))
    return model


def _check_shape(source: str, hf_key: str, stored: tuple, expected: tuple, transpose: bool) -> None:
    if (tuple(stored)[::-1] if transpose else tuple(stored)) != expected:
        raise UserError(
            f"{source}: tensor {hf_key!r} has shape {tuple(stored)}, "
            f"config expects {expected[::-1] if transpose else expected}"
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
    """HF-named numpy arrays in HF layout, ready for safetensors."""
    out: dict[str, np.ndarray] = {}
    for path, var in _flat(nnx.state(model, nnx.Param)).items():
        name, transpose = path_to_hf(path)
        value = np.asarray(jax.device_get(var.get_value()))
        value = value.T if transpose else value
        out[name] = np.ascontiguousarray(value.astype(dtype) if dtype is not None else value)
    return out

