"""Model families as data: a ``config.json`` mapping onto :class:`LlamaConfig` and a weight key table.

Every family runs on the one decoder of :mod:`emergence.models.llama`; what differs is which of its
options a family's config turns on and what its checkpoints call each tensor. A :class:`KeyRule`
maps one checkpoint tensor name (``{0}``: the layer index) to one parameter path of ours, with the
transposition of linear kernels; GPT-NeoX's fused ``query_key_value`` is three rules, each taking
its ``part`` of the tensor laid out ``[heads, 3, head_dim, ...]`` (split on load, fused on export).
Our parameter paths are the same for every family (``layers.3.attn.q_proj``), so LoRA targets, the
sharding rules and adapters need no per-family code. ``post_attn_norm`` is the norm *before* the
MLP (HF LLaMA's ``post_attention_layernorm``); ``attn_out_norm`` and ``mlp_out_norm`` normalize the
sublayers' outputs (OLMo-2, Gemma 3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from emergence.errors import UserError
from emergence.models.config import LlamaConfig, parse_rope_scaling


@dataclass(frozen=True)
class KeyRule:
    """Checkpoint tensor name ↔ NNX ``path``; ``transpose`` for linear kernels; ``part`` j of a
    fused q/k/v tensor (GPT-NeoX)."""

    hf: str
    path: str
    transpose: bool = False
    part: int | None = None


def _rules(prefix: str, names: dict[str, str], linears: dict[str, str]) -> tuple[KeyRule, ...]:
    """Per-layer norms (``weight`` and ``bias``) and linears (kernel and bias) under ``prefix.{0}``."""
    rules = []
    for hf, ours in names.items():
        rules += [KeyRule(f"{prefix}.{{0}}.{hf}.{p}", f"layers.{{0}}.{ours}.{p}") for p in ("weight", "bias")]
    for hf, ours in linears.items():
        rules += [KeyRule(f"{prefix}.{{0}}.{hf}.weight", f"layers.{{0}}.{ours}.kernel", True),
                  KeyRule(f"{prefix}.{{0}}.{hf}.bias", f"layers.{{0}}.{ours}.bias")]
    return tuple(rules)


_HF_LINEARS = {f"self_attn.{p}": f"attn.{p}" for p in ("q_proj", "k_proj", "v_proj", "o_proj")} | {
    f"mlp.{p}": f"mlp.{p}" for p in ("gate_proj", "up_proj", "down_proj")
}
_HF_TOP = (
    KeyRule("model.embed_tokens.weight", "embed.embedding"),
    KeyRule("model.norm.weight", "norm.weight"),
    KeyRule("lm_head.weight", "lm_head.kernel", transpose=True),
)
_QK_NORMS = {"self_attn.q_norm": "attn.q_norm", "self_attn.k_norm": "attn.k_norm"}

LLAMA_KEYS = _HF_TOP + _rules(
    "model.layers", {"input_layernorm": "input_norm", "post_attention_layernorm": "post_attn_norm", **_QK_NORMS}, _HF_LINEARS
)
OLMO2_KEYS = _HF_TOP + _rules(
    "model.layers", {"post_attention_layernorm": "attn_out_norm", "post_feedforward_layernorm": "mlp_out_norm", **_QK_NORMS},
    _HF_LINEARS,
)
GEMMA3_KEYS = _HF_TOP + _rules(
    "model.layers",
    {"input_layernorm": "input_norm", "post_attention_layernorm": "attn_out_norm",
     "pre_feedforward_layernorm": "post_attn_norm", "post_feedforward_layernorm": "mlp_out_norm", **_QK_NORMS},
    _HF_LINEARS,
)
NEOX_KEYS = (
    KeyRule("gpt_neox.embed_in.weight", "embed.embedding"),
    KeyRule("gpt_neox.final_layer_norm.weight", "norm.weight"),
    KeyRule("gpt_neox.final_layer_norm.bias", "norm.bias"),
    KeyRule("embed_out.weight", "lm_head.kernel", transpose=True),
    *_rules(
        "gpt_neox.layers",
        {"input_layernorm": "input_norm", "post_attention_layernorm": "post_attn_norm"},
        {"attention.dense": "attn.o_proj", "mlp.dense_h_to_4h": "mlp.up_proj", "mlp.dense_4h_to_h": "mlp.down_proj"},
    ),
    *(KeyRule("gpt_neox.layers.{0}.attention.query_key_value.weight", f"layers.{{0}}.attn.{p}.kernel", True, part)
      for part, p in enumerate(("q_proj", "k_proj", "v_proj"))),
    *(KeyRule("gpt_neox.layers.{0}.attention.query_key_value.bias", f"layers.{{0}}.attn.{p}.bias", False, part)
      for part, p in enumerate(("q_proj", "k_proj", "v_proj"))),
)


def _activation(raw: dict[str, Any], source: str, default: str = "silu") -> str:
    key = "hidden_activation" if raw.get("hidden_activation") else "hidden_act"
    name = raw.get(key) or default
    known = {"silu": "silu", "swish": "silu", "gelu": "gelu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh",
             "gelu_fast": "gelu_tanh"}
    if name not in known:
        raise UserError(f"{source}: key {key!r} is {name!r}; supported: {', '.join(known)}")
    return known[name]


def _biases(raw: dict[str, Any]) -> dict[str, Any]:
    return {"qkv_bias": bool(raw.get("attention_bias", False)), "o_bias": bool(raw.get("attention_bias", False))}


def _sliding(raw: dict[str, Any]) -> dict[str, Any]:
    """Sliding-window options: Mistral's window on every layer, or per ``layer_types`` (Qwen2 with
    ``use_sliding_window``, Gemma 3)."""
    window = raw.get("sliding_window")
    if not window or raw.get("use_sliding_window") is False:
        return {}
    types = raw.get("layer_types")
    return {"sliding_window": int(window), "layer_types": tuple(types) if types else None}


def _gemma3(raw: dict[str, Any], source: str) -> dict[str, Any]:
    for key in ("final_logit_softcapping", "attn_logit_softcapping"):
        if raw.get(key) is not None:
            raise UserError(f"{source}: key {key!r} is set; logit soft-capping is not supported")
    if raw.get("use_bidirectional_attention"):
        raise UserError(f"{source}: key 'use_bidirectional_attention' is set; only causal attention is supported")
    rope = raw.get("rope_parameters") or {}
    local = rope.get("sliding_attention") or {}
    types = raw.get("layer_types") or [
        "sliding_attention" if (i + 1) % int(raw.get("sliding_window_pattern", 6)) else "full_attention"
        for i in range(int(raw["num_hidden_layers"]))
    ]
    return {
        **_biases(raw), "qk_norm": "head", "norm_offset": 1.0, "sublayer_norms": "both", "embedding_scale": True,
        "activation": _activation(raw, source, "gelu_pytorch_tanh"),
        "query_pre_attn_scalar": float(raw.get("query_pre_attn_scalar", 256)),
        "sliding_window": int(raw.get("sliding_window") or 4096), "layer_types": tuple(types),
        "local_rope_theta": float(local.get("rope_theta", raw.get("rope_local_base_freq", 10000.0))),
    }


def _neox(raw: dict[str, Any], source: str) -> dict[str, Any]:
    rope = raw.get("rope_parameters") or {}
    return {
        "norm": "layer", "rms_norm_eps": float(raw.get("layer_norm_eps", 1e-5)),
        "qkv_bias": bool(raw.get("attention_bias", True)), "o_bias": bool(raw.get("attention_bias", True)),
        "mlp_bias": True, "gated_mlp": False, "activation": _activation(raw, source, "gelu"),
        "parallel_residual": bool(raw.get("use_parallel_residual", True)),
        "partial_rotary_factor": float(rope.get("partial_rotary_factor", raw.get("rotary_pct", 0.25))),
        "rope_theta": float(rope.get("rope_theta", raw.get("rotary_emb_base", 10000.0))),
        "num_key_value_heads": int(raw["num_attention_heads"]),
        "intermediate_size": int(raw.get("intermediate_size") or 4 * int(raw["hidden_size"])),
        "tie_word_embeddings": bool(raw.get("tie_word_embeddings", False)),
    }


@dataclass(frozen=True)
class Family:
    """One architecture: its HF class and model type, its key table, its options from config.json."""

    architecture: str
    model_type: str
    keys: tuple[KeyRule, ...]
    options: Callable[[dict[str, Any], str], dict[str, Any]]
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


FAMILIES: dict[str, Family] = {f.architecture: f for f in (
    Family("LlamaForCausalLM", "llama", LLAMA_KEYS,
           lambda raw, src: {**_biases(raw), "mlp_bias": bool(raw.get("mlp_bias", False)), "activation": _activation(raw, src)}),
    Family("MistralForCausalLM", "mistral", LLAMA_KEYS,
           lambda raw, src: {"activation": _activation(raw, src), **_sliding(raw)}),
    Family("Qwen2ForCausalLM", "qwen2", LLAMA_KEYS,
           lambda raw, src: {"qkv_bias": True, "activation": _activation(raw, src), **_sliding(raw)}),
    Family("Qwen3ForCausalLM", "qwen3", LLAMA_KEYS,
           lambda raw, src: {**_biases(raw), "qk_norm": "head", "activation": _activation(raw, src), **_sliding(raw)}),
    Family("Olmo2ForCausalLM", "olmo2", OLMO2_KEYS,
           lambda raw, src: {**_biases(raw), "qk_norm": "full", "sublayer_norms": "post", "activation": _activation(raw, src)}),
    Family("GPTNeoXForCausalLM", "gpt_neox", NEOX_KEYS, _neox,
           lora_targets=("q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj")),
    Family("Gemma3ForCausalLM", "gemma3_text", GEMMA3_KEYS, _gemma3),
)}


def family_of(config: LlamaConfig) -> Family:
    return FAMILIES[config.architecture]


def _family_for(raw: dict[str, Any], source: str) -> Family:
    archs = raw.get("architectures") or []
    model_type = raw.get("model_type", "llama" if not archs else None)
    for family in FAMILIES.values():
        if (archs and archs[0] == family.architecture) or model_type == family.model_type:
            return family
    raise UserError(
        f"{source}: unsupported architecture {archs[0] if archs else None!r} (model_type {model_type!r}); "
        f"supported: {', '.join(FAMILIES)}"
    )


def config_from_hf(raw: dict[str, Any], source: str = "config.json") -> LlamaConfig:
    """The :class:`LlamaConfig` of an HF ``config.json``: the keys every family shares, then the
    family's own options (which win)."""
    family = _family_for(raw, source)
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads"):
        if key not in raw:
            raise UserError(f"{source}: missing key {key!r}")
    if "intermediate_size" not in raw and family.architecture != "GPTNeoXForCausalLM":
        raise UserError(f"{source}: missing key 'intermediate_size'")
    rope = raw.get("rope_parameters") or {}
    rope = rope.get("full_attention", rope)  # Gemma 3: per layer type
    theta = raw.get("rope_theta", rope.get("rope_theta", 10000.0))
    scaling = raw.get("rope_scaling") or (rope if rope.get("rope_type") else None)
    eos = raw.get("eos_token_id")
    common: dict[str, Any] = dict(
        vocab_size=int(raw["vocab_size"]),
        hidden_size=int(raw["hidden_size"]),
        intermediate_size=int(raw.get("intermediate_size") or 0),
        num_hidden_layers=int(raw["num_hidden_layers"]),
        num_attention_heads=int(raw["num_attention_heads"]),
        num_key_value_heads=int(raw.get("num_key_value_heads") or raw["num_attention_heads"]),
        head_dim=raw.get("head_dim"),
        max_position_embeddings=int(raw.get("max_position_embeddings", 2048)),
        rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
        rope_theta=float(theta),
        rope_scaling=parse_rope_scaling(scaling, source),
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", family.architecture == "Gemma3ForCausalLM")),
        bos_token_id=raw.get("bos_token_id"),
        eos_token_id=tuple(eos) if isinstance(eos, list) else eos,
        pad_token_id=raw.get("pad_token_id"),
        architecture=family.architecture,
    )
    return LlamaConfig(**{**common, **family.options(raw, source)})


def config_to_hf(config: LlamaConfig) -> dict[str, Any]:
    """A config.json that transformers reads as ``config``'s architecture (and we read back equal)."""
    arch = config.architecture
    eos = list(config.eos_token_id) if isinstance(config.eos_token_id, tuple) else config.eos_token_id
    act = {"silu": "silu", "gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh"}[config.activation]
    out: dict[str, Any] = {
        "architectures": [arch], "model_type": FAMILIES[arch].model_type,
        "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size, "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads, "num_key_value_heads": config.num_key_value_heads,
        "head_dim": config.head_dim, "max_position_embeddings": config.max_position_embeddings,
        "tie_word_embeddings": config.tie_word_embeddings, "attention_bias": config.o_bias,
        "bos_token_id": config.bos_token_id, "eos_token_id": eos, "pad_token_id": config.pad_token_id,
        "torch_dtype": "float32",
    }
    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": config.rope_theta}
    s = config.rope_scaling
    if s is not None:  # linear scaling has only a factor
        rope.update(asdict(s) if s.rope_type == "llama3" else {"rope_type": s.rope_type, "factor": s.factor})
    if arch == "GPTNeoXForCausalLM":
        out.update(layer_norm_eps=config.rms_norm_eps, hidden_act=act, use_parallel_residual=config.parallel_residual,
                   rope_parameters={**rope, "partial_rotary_factor": config.partial_rotary_factor},
                   rotary_pct=config.partial_rotary_factor, rotary_emb_base=config.rope_theta)
        return out
    out.update(rms_norm_eps=config.rms_norm_eps, rope_theta=config.rope_theta,
               rope_scaling=dict(rope) if config.rope_scaling is not None else None)
    if arch == "Gemma3ForCausalLM":
        del out["rope_theta"], out["rope_scaling"]
        scalar = config.query_pre_attn_scalar
        out.update(hidden_activation=act, query_pre_attn_scalar=int(scalar) if float(scalar).is_integer() else scalar,
                   sliding_window=config.sliding_window, layer_types=list(config.layer_types or ()),
                   rope_parameters={"full_attention": rope,
                                    "sliding_attention": {"rope_type": "default", "rope_theta": config.local_rope_theta}})
        return out
    out.update(hidden_act=act, mlp_bias=config.mlp_bias)
    if config.sliding_window:
        out.update(sliding_window=config.sliding_window, use_sliding_window=True)
        if config.layer_types is not None:
            out["layer_types"] = list(config.layer_types)
    return out
