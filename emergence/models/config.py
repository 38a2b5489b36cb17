"""The decoder's architecture config: one frozen dataclass for every supported family.

The families differ in sizes, RoPE, tied embeddings and a few options of one transformer;
:mod:`emergence.models.families` maps each family's ``config.json`` onto these options. Anything the
model cannot represent is a :class:`~emergence.errors.UserError` naming the file and key, never a
silent approximation.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from emergence.errors import UserError

SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")
DTYPES = ("float32", "bfloat16")
#: What each decoder block keeps for the backward pass: everything (``none``), only its input
#: (``block``: the block is recomputed), or its input and the matmul outputs (``dots``).
REMAT_POLICIES = ("none", "block", "dots")
#: ``auto`` is the blocked einsum path on CPU (tuned there) and ``jax.nn.dot_product_attention``
#: elsewhere (cuDNN on GPU where its shapes and dtypes allow, XLA otherwise).
ATTENTION_IMPLEMENTATIONS = ("auto", "blocked", "xla", "cudnn")
#: The architecture options' choices: q/k norm per head (Qwen3, Gemma 3) or over the whole
#: projection (OLMo-2); norms before the sublayers (LLaMA), after them (OLMo-2) or both (Gemma 3).
QK_NORMS = ("none", "head", "full")
SUBLAYER_NORMS = ("pre", "post", "both")
NORMS = ("rms", "layer")
ACTIVATIONS = ("silu", "gelu", "gelu_tanh")
LAYER_TYPES = ("full_attention", "sliding_attention")
_CHOICES = {
    "dtype": DTYPES, "param_dtype": DTYPES, "remat": REMAT_POLICIES, "attention": ATTENTION_IMPLEMENTATIONS,
    "qk_norm": QK_NORMS, "norm": NORMS, "sublayer_norms": SUBLAYER_NORMS, "activation": ACTIVATIONS,
}


def check_choices(*, as_options: bool = False, **settings: str) -> None:
    """A :class:`UserError` naming the first setting (``dtype``, ``param_dtype``, ``remat``,
    ``attention`` or an architecture option) whose value is not one of its choices (as the CLI option
    ``--param-dtype`` … when ``as_options``: the commands pass these straight through)."""
    for key, value in settings.items():
        if value not in _CHOICES[key]:
            name = f"--{key.replace('_', '-')}" if as_options else f"model {key}"
            raise UserError(f"{name} must be one of {', '.join(_CHOICES[key])}, got {value!r}")


@dataclass(frozen=True)
class RopeScaling:
    """RoPE frequency scaling: ``linear`` (divide by factor) or ``llama3`` (wavelength-banded)."""

    rope_type: str = "default"
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192


@dataclass(frozen=True)
class LlamaConfig:
    """Sizes, numerics and architecture options of one model (the defaults are LLaMA's).

    Architecture options: ``qkv_bias`` / ``o_bias`` (biases on the q/k/v and output projections),
    ``qk_norm`` (:data:`QK_NORMS`), ``norm`` (RMSNorm or LayerNorm with bias), ``norm_offset``
    (Gemma's RMSNorm scales by ``offset + w``), ``sublayer_norms`` (:data:`SUBLAYER_NORMS`),
    ``parallel_residual`` (GPT-NeoX: ``x + attn(ln1 x) + mlp(ln2 x)``), ``partial_rotary_factor``
    (the share of each head that RoPE rotates), ``gated_mlp`` and ``activation``
    (:data:`ACTIVATIONS`), ``embedding_scale`` (embeddings times sqrt(hidden)),
    ``query_pre_attn_scalar`` (attention scores scaled by its inverse square root instead of the
    head size's), ``layer_types`` (per layer, :data:`LAYER_TYPES`; None: every layer slides when
    ``sliding_window`` is set) and ``local_rope_theta`` (the sliding layers' RoPE base, unscaled).

    ``dtype`` is the compute dtype and ``param_dtype`` the stored one; ``remat`` and ``attention``
    choose how the forward runs (:data:`REMAT_POLICIES`, :data:`ATTENTION_IMPLEMENTATIONS`), never
    what it computes. None of the four is part of a checkpoint's ``config.json``."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int | None = None
    max_position_embeddings: int = 2048
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: RopeScaling | None = None
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    sliding_window: int | None = None
    qk_norm: str = "none"
    norm: str = "rms"
    norm_offset: float = 0.0
    sublayer_norms: str = "pre"
    parallel_residual: bool = False
    partial_rotary_factor: float = 1.0
    gated_mlp: bool = True
    activation: str = "silu"
    embedding_scale: bool = False
    query_pre_attn_scalar: float | None = None
    layer_types: tuple[str, ...] | None = None
    local_rope_theta: float | None = None
    bos_token_id: int | None = 1
    eos_token_id: int | tuple[int, ...] | None = 2
    pad_token_id: int | None = None
    architecture: str = "LlamaForCausalLM"
    dtype: str = "float32"
    param_dtype: str = "float32"
    remat: str = "none"
    attention: str = "auto"

    def __post_init__(self) -> None:
        check_choices(**{key: getattr(self, key) for key in _CHOICES})
        if self.head_dim is None:
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_attention_heads)
        if self.num_attention_heads % self.num_key_value_heads:
            raise UserError(
                f"num_attention_heads={self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads={self.num_key_value_heads}"
            )
        if self.layer_types is not None:
            if len(self.layer_types) != self.num_hidden_layers or not set(self.layer_types) <= set(LAYER_TYPES):
                raise UserError(f"model layer_types must give one of {', '.join(LAYER_TYPES)} per layer")
            object.__setattr__(self, "layer_types", tuple(self.layer_types))
        if self.rotary_dim % 2 or self.rotary_dim == 0:
            raise UserError(f"model partial_rotary_factor={self.partial_rotary_factor} rotates an odd or empty share of the head")

    @property
    def rotary_dim(self) -> int:
        """How many leading dimensions of each head RoPE rotates (all of them unless partial)."""
        return int(self.head_dim * self.partial_rotary_factor)

    def sliding_layers(self) -> tuple[bool, ...]:
        """Per layer, whether it attends within ``sliding_window`` only."""
        if not self.sliding_window:
            return (False,) * self.num_hidden_layers
        if self.layer_types is None:
            return (True,) * self.num_hidden_layers
        return tuple(kind == "sliding_attention" for kind in self.layer_types)

    def replace(self, **changes: Any) -> LlamaConfig:
        return dataclasses.replace(self, **changes)

    def with_layers(self, layers: int) -> LlamaConfig:
        """The first ``layers`` layers of this model (what memory planning compiles)."""
        types = None if self.layer_types is None else self.layer_types[:layers]
        return self.replace(num_hidden_layers=layers, layer_types=types)

    def num_params(self) -> int:
        """Parameter count, embeddings included (the lm_head counted once when tied)."""
        d, f, v, hd = self.hidden_size, self.intermediate_size, self.vocab_size, self.head_dim
        qkv = (self.num_attention_heads + 2 * self.num_key_value_heads) * hd
        attn = qkv * d + self.num_attention_heads * hd * d + (qkv if self.qkv_bias else 0) + (d if self.o_bias else 0)
        qk_norm = {"none": 0, "head": 2 * hd, "full": (self.num_attention_heads + self.num_key_value_heads) * hd}
        attn += qk_norm[self.qk_norm] * (2 if self.norm == "layer" else 1)
        projections = 3 if self.gated_mlp else 2
        mlp = projections * d * f + (((projections - 1) * f + d) if self.mlp_bias else 0)
        norm = d * (2 if self.norm == "layer" else 1)
        per_layer = attn + mlp + norm * (4 if self.sublayer_norms == "both" else 2)
        head = 0 if self.tie_word_embeddings else v * d
        return v * d + self.num_hidden_layers * per_layer + norm + head



def parse_rope_scaling(raw: dict[str, Any] | None, source: str) -> RopeScaling | None:
    if not raw:
        return None
    rope_type = raw.get("rope_type", raw.get("type", "default"))
    if rope_type not in SUPPORTED_ROPE_TYPES:
        raise UserError(f"{source}: rope scaling type {rope_type!r} is not supported ({', '.join(SUPPORTED_ROPE_TYPES)})")
    if rope_type == "default":
        return None
    given = [f for f in dataclasses.fields(RopeScaling)[1:] if f.name in raw]  # the rest keep their defaults
    return RopeScaling(rope_type, **{f.name: type(f.default)(raw[f.name]) for f in given})


def rope_inverse_frequencies(config: LlamaConfig, *, local: bool = False) -> list[float]:
    """Per-pair inverse frequencies, with the config's scaling applied (as transformers computes them);
    ``local``: the sliding-window layers' own base (``local_rope_theta``), never scaled."""
    dim = config.rotary_dim
    theta = config.local_rope_theta if local else config.rope_theta
    inv = [1.0 / (theta ** (i / dim)) for i in range(0, dim, 2)]
    s = None if local else config.rope_scaling
    if s is None:
        return inv
    if s.rope_type == "linear":
        return [f / s.factor for f in inv]
    low_wavelen = s.original_max_position_embeddings / s.low_freq_factor
    high_wavelen = s.original_max_position_embeddings / s.high_freq_factor
    out = []
    for f in inv:
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(f)
        elif wavelen > low_wavelen:
            out.append(f / s.factor)
        else:
            smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) / (
                s.high_freq_factor - s.low_freq_factor
            )
            out.append((1 - smooth) * f / s.factor + smooth * f)
    return out
