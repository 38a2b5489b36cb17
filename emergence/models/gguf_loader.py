"""GGUF (llama.cpp) checkpoints: metadata → config, tensors → HF-named arrays, tokenizer.

Every tensor type the ``gguf`` package can dequantize is accepted; anything else is a one-line error
naming the tensor and its type. Tensors are renamed to the family's HF names and put back in HF's
form, so that the family's key table (:mod:`emergence.models.families`) applies: for LLaMA,
llama.cpp's converter permutes the rows of Q and K (to interleave RoPE pairs its way), which we
undo; for Gemma 3 it stores RMSNorm weights as ``1 + w``, from which we subtract the 1 again. A
missing ``output.weight`` means tied embeddings.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from gguf import quants

from emergence.errors import UserError
from emergence.models.config import LlamaConfig, RopeScaling, rope_inverse_frequencies
from emergence.models.families import config_from_hf
from emergence.models.gguf_file import read_gguf
from emergence.models.weights import LazyTensors, translate_name

#: GGUF tensor name → HF tensor name (``{0}`` is the layer index).
GGUF_TO_HF: dict[str, str] = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
    "blk.{0}.attn_norm.weight": "model.layers.{0}.input_layernorm.weight",
    "blk.{0}.ffn_norm.weight": "model.layers.{0}.post_attention_layernorm.weight",
    "blk.{0}.attn_q.weight": "model.layers.{0}.self_attn.q_proj.weight",
    "blk.{0}.attn_k.weight": "model.layers.{0}.self_attn.k_proj.weight",
    "blk.{0}.attn_v.weight": "model.layers.{0}.self_attn.v_proj.weight",
    "blk.{0}.attn_output.weight": "model.layers.{0}.self_attn.o_proj.weight",
    "blk.{0}.ffn_gate.weight": "model.layers.{0}.mlp.gate_proj.weight",
    "blk.{0}.ffn_up.weight": "model.layers.{0}.mlp.up_proj.weight",
    "blk.{0}.ffn_down.weight": "model.layers.{0}.mlp.down_proj.weight",
}
#: Gemma 3 (llama.cpp arch ``gemma3``): four norms per layer and q/k norms.
GEMMA3_TO_HF: dict[str, str] = {
    **GGUF_TO_HF,
    "blk.{0}.post_attention_norm.weight": "model.layers.{0}.post_attention_layernorm.weight",
    "blk.{0}.ffn_norm.weight": "model.layers.{0}.pre_feedforward_layernorm.weight",
    "blk.{0}.post_ffw_norm.weight": "model.layers.{0}.post_feedforward_layernorm.weight",
    "blk.{0}.attn_q_norm.weight": "model.layers.{0}.self_attn.q_norm.weight",
    "blk.{0}.attn_k_norm.weight": "model.layers.{0}.self_attn.k_norm.weight",
}
#: llama.cpp architectures → the HF class whose family options (:mod:`.families`) apply. llama.cpp's
#: Gemma 3 constants are not in the metadata and are that family's defaults: every 6th layer is
#: global, the sliding layers' RoPE base is 10,000.
GGUF_ARCHITECTURES = {
    "llama": "LlamaForCausalLM", "mistral": "LlamaForCausalLM", "gemma3": "Gemma3ForCausalLM"
}


def unpermute_qk(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's interleaving of Q/K rows per head (GGUF → HF)."""
    return (
        weight.reshape(n_head, weight.shape[0] // n_head // 2, 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def config_from_fields(fields: dict[str, Any], source: str) -> LlamaConfig:
    """The config of GGUF metadata: its keys written as the family's ``config.json`` would hold
    them, then read by the one HF mapping (:func:`~emergence.models.families.config_from_hf`)."""
    arch = fields.get("general.architecture")
    if arch not in GGUF_ARCHITECTURES:
        raise UserError(f"{source}: unsupported architecture {arch!r} (llama, mistral or gemma3 GGUF files)")

    def get(key: str, default: Any = None) -> Any:
        value = fields.get(f"{arch}.{key}", default)
        if value is None:
            raise UserError(f"{source}: missing metadata key {arch}.{key}")
        return value

    heads = int(get("attention.head_count"))
    hidden = int(get("embedding_length"))
    tokens = fields.get("tokenizer.ggml.tokens")
    scaling = None
    scale_type = fields.get(f"{arch}.rope.scaling.type")
    if scale_type == "linear":
        scaling = {"rope_type": "linear", "factor": float(get("rope.scaling.factor"))}
    elif scale_type not in (None, "none"):
        raise UserError(f"{source}: rope scaling type {scale_type!r} is not supported")
    raw: dict[str, Any] = {
        "architectures": [GGUF_ARCHITECTURES[arch]],
        "vocab_size": int(fields.get(f"{arch}.vocab_size") or (len(tokens) if tokens else get("vocab_size"))),
        "hidden_size": hidden,
        "intermediate_size": int(get("feed_forward_length")),
        "num_hidden_layers": int(get("block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(fields.get(f"{arch}.attention.head_count_kv") or heads),
        "head_dim": int(fields.get(f"{arch}.attention.key_length") or hidden // heads),
        "max_position_embeddings": int(get("context_length", 2048)),
        "rms_norm_eps": float(f"{float(get('attention.layer_norm_rms_epsilon', 1e-5)):.7g}"),  # stored as f32
        "rope_theta": float(get("rope.freq_base", 10000.0)),
        "rope_scaling": scaling,
        "tie_word_embeddings": False,  # decided by the presence of output.weight
        "bos_token_id": fields.get("tokenizer.ggml.bos_token_id"),
        "eos_token_id": fields.get("tokenizer.ggml.eos_token_id"),
        "pad_token_id": fields.get("tokenizer.ggml.padding_token_id"),
    }
    if arch == "gemma3":
        raw.update(query_pre_attn_scalar=float(get("attention.key_length")),
                   sliding_window=int(get("attention.sliding_window")))
    return config_from_hf(raw, source)


def _llama3_scaling_from_freqs(config: LlamaConfig, factors: np.ndarray, source: str) -> RopeScaling:
    """llama.cpp stores LLaMA-3 RoPE scaling as per-frequency divisors; recover the HF parameters."""
    candidate = RopeScaling("llama3", factor=float(np.max(factors)))
    base = np.asarray(rope_inverse_frequencies(config.replace(rope_scaling=None)))
    scaled = np.asarray(rope_inverse_frequencies(config.replace(rope_scaling=candidate)))
    if not np.allclose(base / scaled, factors, rtol=1e-3):
        raise UserError(f"{source}: tensor 'rope_freqs.weight' does not match LLaMA-3 RoPE scaling")
    return candidate


def _dequantize(tensor: Any, path: Path, qk_heads: int | None, shift: float = 0.0) -> np.ndarray:
    """One tensor as fp32 in HF layout (Q/K rows un-permuted for ``qk_heads`` heads, ``shift``
    subtracted)."""
    try:
        array = np.asarray(quants.dequantize(tensor.data, tensor.tensor_type), np.float32)
    except (NotImplementedError, KeyError, ValueError) as err:
        raise UserError(
            f"{path}: tensor {tensor.name!r} has type {tensor.tensor_type.name}, which cannot be dequantized ({err})"
        ) from None
    array = array.reshape([int(d) for d in reversed(tensor.shape)])
    if shift:
        array = array - np.float32(shift)
    return array if qk_heads is None else unpermute_qk(array, qk_heads)


def load_gguf(path: str | Path) -> tuple[LlamaConfig, LazyTensors, dict[str, Any]]:
    """Config, HF-named tensors (HF layout, dequantized to fp32 one at a time when read) and raw
    metadata fields of a GGUF file."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: GGUF file not found")
    try:
        contents = read_gguf(path)
    except Exception as err:
        raise UserError(f"{path}: not a readable GGUF file ({err})") from None
    fields = contents.fields
    config = config_from_fields(fields, str(path))
    readers: dict[str, Callable[[], np.ndarray]] = {}
    rope_freqs = None
    gemma = config.architecture == "Gemma3ForCausalLM"
    table = GEMMA3_TO_HF if gemma else GGUF_TO_HF
    for tensor in contents.tensors:
        if tensor.name == "rope_freqs.weight":
            rope_freqs = _dequantize(tensor, path, None)
            continue
        hf = next(filter(None, (translate_name(tensor.name, src, dst) for src, dst in table.items())), None)
        if hf is None:
            raise UserError(f"{path}: unexpected tensor {tensor.name!r} for a {fields.get('general.architecture')} model")
        # Gemma 3: NeoX-style RoPE (no Q/K permutation to undo), norms stored as 1 + w
        heads = {"q_proj": config.num_attention_heads, "k_proj": config.num_key_value_heads}.get(hf.split(".")[-2])
        shift = 1.0 if gemma and hf.endswith("norm.weight") else 0.0
        readers[hf] = functools.partial(_dequantize, tensor, path, None if gemma else heads, shift)
    tensors = LazyTensors(readers)
    config = config.replace(tie_word_embeddings="lm_head.weight" not in tensors)
    if rope_freqs is not None:
        config = config.replace(rope_scaling=_llama3_scaling_from_freqs(config, rope_freqs, str(path)))
    return config, tensors, fields
