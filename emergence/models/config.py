"""The LLaMA-family architecture config, read from and written to Hugging Face ``config.json``.

One frozen dataclass covers LLaMA 1/2/3, OpenLLaMA, TinyLlama, SmolLM2 and Mistral-style GQA: the
family differs only in sizes, RoPE θ and scaling, tied embeddings and an optional sliding window.
Anything the model cannot represent (another activation, an unknown RoPE type, another architecture)
is a :class:`~emergence.errors.UserError` naming the file and key, never a silent approximation.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emergence.errors import UserError
from emergence.fileio import read_json_object

SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM")
SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")
DTYPES = ("float32", "bfloat16")
#: What each decoder block keeps for the backward pass: everything (``none``), only its input
#: (``block``: the block is recomputed), or its input and the matmul outputs (``dots``).
REMAT_POLICIES = ("none", "block", "dots")
#: ``auto`` is the blocked einsum path on CPU (tuned there) and ``jax.nn.dot_product_attention``
#: elsewhere (cuDNN on GPU where its shapes and dtypes allow, XLA otherwise).
ATTENTION_IMPLEMENTATIONS = ("auto", "blocked", "xla", "cudnn")
_CHOICES = {"dtype": DTYPES, "param_dtype": DTYPES, "remat": REMAT_POLICIES, "attention": ATTENTION_IMPLEMENTATIONS}


def check_execution_settings(*, as_options: bool = False, **settings: str) -> None:
    """A :class:`UserError` naming the first of ``dtype``, ``param_dtype``, ``remat`` or
    ``attention`` whose value is not one of its choices (as the CLI option ``--param-dtype`` …
    when ``as_options``: the commands pass these straight through)."""
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
    """Sizes and numerics of one LLaMA-family model.

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
    attention_bias: bool = False
    mlp_bias: bool = False
    sliding_window: int | None = None
    bos_token_id: int | None = 1
    eos_token_id: int | tuple[int, ...] | None = 2
    pad_token_id: int | None = None
    architecture: str = "LlamaForCausalLM"
    dtype: str = "float32"
    param_dtype: str = "float32"
    remat: str = "none"
    attention: str = "auto"

    def __post_init__(self) -> None:
        check_execution_settings(dtype=self.dtype, param_dtype=self.param_dtype, remat=self.remat, attention=self.attention)
        if self.head_dim is None:
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_attention_heads)
        if self.num_attention_heads % self.num_key_value_heads:
            raise UserError(
                f"num_attention_heads={self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads={self.num_key_value_heads}"
            )

    def replace(self, **changes: Any) -> LlamaConfig:
        return dataclasses.replace(self, **changes)

    def num_params(self) -> int:
        """Parameter count, embeddings included (the lm_head counted once when tied)."""
        d, f, v, hd = self.hidden_size, self.intermediate_size, self.vocab_size, self.head_dim
        q = d * self.num_attention_heads * hd
        kv = 2 * d * self.num_key_value_heads * hd
        o = self.num_attention_heads * hd * d
        bias = (self.num_attention_heads + 2 * self.num_key_value_heads) * hd + d if self.attention_bias else 0
        mlp = 3 * d * f + ((2 * f + d) if self.mlp_bias else 0)
        per_layer = q + kv + o + bias + mlp + 2 * d
        head = 0 if self.tie_word_embeddings else v * d
        return v * d + self.num_hidden_layers * per_layer + d + head

    # ----------------------------------------------------------------- HF config.json
    @classmethod
    def from_hf_dict(cls, raw: dict[str, Any], source: str = "config.json") -> LlamaConfig:
        archs = raw.get("architectures") or ["LlamaForCausalLM"]
        arch = archs[0]
        model_type = raw.get("model_type", "llama")
        if arch not in SUPPORTED_ARCHITECTURES and model_type not in ("llama", "mistral"):
            raise UserError(
                f"{source}: unsupported architecture {arch!r} (model_type {model_type!r}); "
                f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
            )
        act = raw.get("hidden_act", "silu")
        if act not in ("silu", "swish"):
            raise UserError(f"{source}: key 'hidden_act' is {act!r}; only 'silu' (SwiGLU) is supported")
        for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"):
            if key not in raw:
                raise UserError(f"{source}: missing key {key!r}")
        rope_params = raw.get("rope_parameters") or {}
        theta = raw.get("rope_theta", rope_params.get("rope_theta", 10000.0))
        scaling_raw = raw.get("rope_scaling") or (rope_params if rope_params.get("rope_type") else None)
        scaling = _parse_rope_scaling(scaling_raw, source)
        window = raw.get("sliding_window") if arch == "MistralForCausalLM" or model_type == "mistral" else None
        return cls(
            vocab_size=int(raw["vocab_size"]),
            hidden_size=int(raw["hidden_size"]),
            intermediate_size=int(raw["intermediate_size"]),
            num_hidden_layers=int(raw["num_hidden_layers"]),
            num_attention_heads=int(raw["num_attention_heads"]),
            num_key_value_heads=int(raw.get("num_key_value_heads") or raw["num_attention_heads"]),
            head_dim=raw.get("head_dim"),
            max_position_embeddings=int(raw.get("max_position_embeddings", 2048)),
            rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
            rope_theta=float(theta),
            rope_scaling=scaling,
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
            attention_bias=bool(raw.get("attention_bias", False)),
            mlp_bias=bool(raw.get("mlp_bias", False)),
            sliding_window=int(window) if window else None,
            bos_token_id=raw.get("bos_token_id"),
            eos_token_id=tuple(raw["eos_token_id"]) if isinstance(raw.get("eos_token_id"), list) else raw.get("eos_token_id"),
            pad_token_id=raw.get("pad_token_id"),
            architecture=arch if arch in SUPPORTED_ARCHITECTURES else "LlamaForCausalLM",
        )

    @classmethod
    def from_file(cls, path: str | Path) -> LlamaConfig:
        return cls.from_hf_dict(read_json_object(path, "model config"), source=str(path))

    def to_hf_dict(self) -> dict[str, Any]:
        """A config.json that transformers 4.x and 5.x both read as this architecture."""
        out: dict[str, Any] = {
            "architectures": [self.architecture],
            "model_type": "mistral" if self.architecture == "MistralForCausalLM" else "llama",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "max_position_embeddings": self.max_position_embeddings,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": None,
            "tie_word_embeddings": self.tie_word_embeddings,
            "attention_bias": self.attention_bias,
            "mlp_bias": self.mlp_bias,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": list(self.eos_token_id) if isinstance(self.eos_token_id, tuple) else self.eos_token_id,
            "pad_token_id": self.pad_token_id,
            "torch_dtype": "float32",
        }
        if self.rope_scaling is not None and self.rope_scaling.rope_type != "default":
            s = self.rope_scaling
            out["rope_scaling"] = {"rope_type": s.rope_type, "factor": s.factor}
            if s.rope_type == "llama3":
                out["rope_scaling"].update(
                    low_freq_factor=s.low_freq_factor,
                    high_freq_factor=s.high_freq_factor,
                    original_max_position_embeddings=s.original_max_position_embeddings,
                )
        if self.sliding_window:
            out["sliding_window"] = self.sliding_window
        return out


def _parse_rope_scaling(raw: dict[str, Any] | None, source: str) -> RopeScaling | None:
    if not raw:
        return None
    rope_type = raw.get("rope_type", raw.get("type", "default"))
    if rope_type not in SUPPORTED_ROPE_TYPES:
        raise UserError(f"{source}: rope scaling type {rope_type!r} is not supported ({', '.join(SUPPORTED_ROPE_TYPES)})")
    if rope_type == "default":
        return None
    return RopeScaling(
        rope_type=rope_type,
        factor=float(raw.get("factor", 1.0)),
        low_freq_factor=float(raw.get("low_freq_factor", 1.0)),
        high_freq_factor=float(raw.get("high_freq_factor", 4.0)),
        original_max_position_embeddings=int(raw.get("original_max_position_embeddings", 8192)),
    )


def rope_inverse_frequencies(config: LlamaConfig) -> list[float]:
    """Per-pair inverse frequencies, with the config's scaling applied (as transformers computes them)."""
    dim = config.head_dim
    inv = [1.0 / (config.rope_theta ** (i / dim)) for i in range(0, dim, 2)]
    s = config.rope_scaling
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
