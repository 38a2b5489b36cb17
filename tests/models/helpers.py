"""Shared test helpers for models: fixture paths and a tiny GGUF writer (llama.cpp conventions)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tiny_llama"
FAMILY_FIXTURES = FIXTURES.parent / "families"


def llama_cpp_permute(weight: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf permutation of Q/K rows, written out independently of ours."""
    rows = weight.shape[0]
    out = np.empty_like(weight)
    head = rows // n_head
    for h in range(n_head):
        block = weight[h * head:(h + 1) * head]
        # HF keeps (first half, second half) of each head; llama.cpp interleaves the two halves.
        out[h * head:(h + 1) * head][0::2] = block[: head // 2]
        out[h * head:(h + 1) * head][1::2] = block[head // 2:]
    return out


GGUF_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_name(hf: str) -> str:
    if hf in GGUF_NAMES:
        return GGUF_NAMES[hf]
    parts = hf.split(".")
    return f"blk.{parts[2]}." + LAYER_NAMES[".".join(parts[3:])]


def write_tiny_gguf(path: Path, fixture: str, quant: dict[str, object], *, drop: str | None = None) -> dict[str, np.ndarray]:
    """Write fixture ``fixture`` as GGUF; ``quant`` maps HF-name substrings to a GGML type.

    Returns the HF tensors *as the GGUF holds them after quantization* (dequantized again), so a
    safetensors directory with exactly these weights must give the same logits.
    """
    import gguf
    from safetensors.numpy import load_file

    src = FIXTURES / fixture
    cfg = json.loads((src / "config.json").read_text())
    tensors = load_file(str(src / "model.safetensors"))
    tok = json.loads((src / "tokenizer.json").read_text())
    writer = gguf.GGUFWriter(str(path), "llama")
    add_shape_and_vocabulary(writer, cfg, tok, cfg.get("rope_theta") or cfg["rope_parameters"]["rope_theta"])
    writer.add_tokenizer_pre("default")
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    dequantized: dict[str, np.ndarray] = {}
    for hf, array in tensors.items():
        if hf == drop:
            continue
        array = np.asarray(array, np.float32)
        if hf.endswith("q_proj.weight"):
            stored = llama_cpp_permute(array, cfg["num_attention_heads"])
        elif hf.endswith("k_proj.weight"):
            stored = llama_cpp_permute(array, cfg["num_key_value_heads"])
        else:
            stored = array
        qtype = next((q for key, q in quant.items() if key in hf), None)
        if qtype is None:
            writer.add_tensor(gguf_name(hf), stored)
            dequantized[hf] = array
        else:
            packed = gguf.quants.quantize(stored, qtype)
            writer.add_tensor(gguf_name(hf), packed, raw_dtype=qtype)
            back = gguf.quants.dequantize(packed, qtype).reshape(stored.shape)
            if hf.endswith("q_proj.weight"):
                back = _unpermute(back, cfg["num_attention_heads"])
            elif hf.endswith("k_proj.weight"):
                back = _unpermute(back, cfg["num_key_value_heads"])
            dequantized[hf] = back
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dequantized


def _unpermute(weight: np.ndarray, n_head: int) -> np.ndarray:
    rows, head = weight.shape[0], weight.shape[0] // n_head
    out = np.empty_like(weight)
    for h in range(n_head):
        block = weight[h * head:(h + 1) * head]
        out[h * head:h * head + head // 2] = block[0::2]
        out[h * head + head // 2:(h + 1) * head] = block[1::2]
    assert rows == out.shape[0]
    return out


def add_shape_and_vocabulary(writer, cfg: dict, tok: dict, rope_theta: float) -> None:
    """The GGUF metadata every fixture file carries: the model's shape from its HF ``config.json``
    and its byte-level BPE vocabulary from ``tokenizer.json``."""
    writer.add_block_count(cfg["num_hidden_layers"])
    writer.add_context_length(cfg["max_position_embeddings"])
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(cfg["num_attention_heads"])
    writer.add_head_count_kv(cfg["num_key_value_heads"])
    writer.add_rope_freq_base(rope_theta)
    writer.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    vocab = sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([t for t, _ in vocab])
    writer.add_token_types([3 if t in ("<unk>", "<s>", "</s>") else 1 for t, _ in vocab])
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]])
