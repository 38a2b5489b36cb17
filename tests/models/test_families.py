"""Every family runs on the one decoder and reproduces transformers' PyTorch model of it
(fixtures from scripts/make_family_fixtures.py): logits, greedy generation, export, LoRA, scoring."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file

from emergence.data.tasks import Request
from emergence.errors import UserError
from emergence.eval.loglikelihood import score_requests
from emergence.models.families import FAMILIES, config_from_hf, config_to_hf
from emergence.models.generate import greedy_generate
from emergence.models.registry import load_model, save_model
from emergence.train.config import LoraConfig
from emergence.train.lora import apply_lora, lora_layers
from tests.models.helpers import FAMILY_FIXTURES, add_shape_and_vocabulary

FAMILY_NAMES = ["qwen2", "qwen3", "olmo2", "gpt_neox", "gpt_neox_sequential", "gemma3"]


@pytest.fixture(scope="module", params=FAMILY_NAMES)
def family(request):
    directory = FAMILY_FIXTURES / request.param
    return request.param, load_model(str(directory)), load_file(str(directory / "reference.safetensors"))


def test_logits_match_transformers(family):
    _, loaded, reference = family
    logits, _ = loaded.model(reference["input_ids"].astype(np.int32))
    np.testing.assert_allclose(np.asarray(logits), reference["logits"], atol=1e-4, rtol=0)


def test_greedy_generation_with_the_kv_cache_matches_transformers(family):
    _, loaded, reference = family
    prompt = [int(t) for t in reference["prompt"]]
    [out] = greedy_generate(loaded.model, loaded.tokenizer, [prompt], max_new_tokens=len(reference["generated"]),
                            batch_size=1, stop_at_eos=False)
    assert list(out.token_ids) == reference["generated"].tolist()


def test_cached_decoding_gives_the_logits_of_a_full_forward(family):
    """One token at a time through the KV cache (sliding windows and local RoPE included)."""
    from emergence.models.llama import KVCache

    _, loaded, reference = family
    tokens = jnp.asarray(reference["input_ids"][:1].astype(np.int32))
    full, _ = loaded.model(tokens)
    cache = KVCache.empty(loaded.config, 1, tokens.shape[1])
    steps = []
    for i in range(tokens.shape[1]):
        logits, cache = loaded.model(tokens[:, i:i + 1], cache=cache)
        steps.append(np.asarray(logits[:, 0]))
    np.testing.assert_allclose(np.stack(steps, axis=1), np.asarray(full), atol=1e-4, rtol=0)


def test_export_loads_back_exactly_and_keeps_the_checkpoint_names(family, tmp_path):
    name, loaded, reference = family
    out = save_model(loaded, tmp_path / name)
    again = load_model(str(out))
    assert again.config == loaded.config
    assert set(load_file(str(out / "model.safetensors"))) == set(load_file(str(FAMILY_FIXTURES / name / "model.safetensors")))
    tokens = reference["input_ids"].astype(np.int32)
    np.testing.assert_array_equal(np.asarray(again.model(tokens)[0]), np.asarray(loaded.model(tokens)[0]))


def test_the_config_mapping_reads_back_what_it_writes(family):
    _, loaded, _ = family
    assert config_from_hf(json.loads(json.dumps(config_to_hf(loaded.config)))) == loaded.config


def test_default_lora_targets_are_the_familys_projections(family):
    _, loaded, reference = family
    model = apply_lora(nnx.clone(loaded.model), LoraConfig(rank=2))
    names = {path[-1] for path, _ in lora_layers(model)}
    assert names == set(FAMILIES[loaded.config.architecture].lora_targets)
    tokens = reference["input_ids"].astype(np.int32)
    np.testing.assert_array_equal(np.asarray(model(tokens)[0]), np.asarray(loaded.model(tokens)[0]))


def test_scoring_equals_the_log_probabilities_of_a_full_forward(family):
    """The evaluator (packed rows, length buckets) on every family."""
    _, loaded, _ = family
    tok = loaded.tokenizer
    request = Request("t", 0, "The capital of France is", 0, (" Paris.", " Rome, Italy"))
    scores = score_requests(loaded.model, tok, [request])[0]
    context = tok.encode(request.context)
    for choice, loglik in zip(request.continuations, scores.loglikelihoods, strict=True):
        ids = tok.encode(request.context + choice)
        logits, _ = loaded.model(jnp.asarray([ids]))
        logp = np.asarray(jax_log_softmax(logits[0]))
        expected = sum(logp[i - 1, ids[i]] for i in range(len(context), len(ids)))
        assert loglik == pytest.approx(expected, abs=1e-4)


def jax_log_softmax(x):
    import jax

    return jax.nn.log_softmax(x, axis=-1)


def test_each_family_sets_only_its_own_options():
    configs = {name: load_model(str(FAMILY_FIXTURES / name)).config for name in FAMILY_NAMES}
    assert configs["qwen2"].qkv_bias and not configs["qwen2"].o_bias
    assert configs["qwen3"].qk_norm == "head" and configs["olmo2"].qk_norm == "full"
    assert configs["olmo2"].sublayer_norms == "post" and configs["gemma3"].sublayer_norms == "both"
    neox = configs["gpt_neox"]
    assert (neox.norm, neox.parallel_residual, neox.gated_mlp, neox.rotary_dim) == ("layer", True, False, 2)
    assert not configs["gpt_neox_sequential"].parallel_residual
    gemma = configs["gemma3"]
    assert gemma.sliding_layers() == (True, False, True) and gemma.local_rope_theta == 10000.0
    assert gemma.rope_scaling.rope_type == "linear" and gemma.embedding_scale and gemma.norm_offset == 1.0


def test_an_unknown_architecture_is_refused_naming_it():
    with pytest.raises(UserError, match="unsupported architecture 'BloomForCausalLM'.*Qwen2ForCausalLM"):
        config_from_hf({"architectures": ["BloomForCausalLM"], "model_type": "bloom"}, "x/config.json")


def test_gemma_logit_softcapping_is_refused_not_ignored():
    raw = json.loads((FAMILY_FIXTURES / "gemma3" / "config.json").read_text())
    with pytest.raises(UserError, match="final_logit_softcapping"):
        config_from_hf({**raw, "final_logit_softcapping": 30.0}, "gemma/config.json")


def _write_gemma3_gguf(path, directory):
    """The Gemma 3 fixture as llama.cpp's converter writes it: gemma3 metadata, its tensor names,
    RMSNorm weights stored as 1 + w, Q/K rows not permuted."""
    import gguf

    cfg = json.loads((directory / "config.json").read_text())
    tok = json.loads((directory / "tokenizer.json").read_text())
    names = {"input_layernorm": "attn_norm", "post_attention_layernorm": "post_attention_norm",
             "pre_feedforward_layernorm": "ffn_norm", "post_feedforward_layernorm": "post_ffw_norm",
             "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm", "self_attn.q_proj": "attn_q",
             "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    writer = gguf.GGUFWriter(str(path), "gemma3")
    add_shape_and_vocabulary(writer, cfg, tok, cfg["rope_parameters"]["full_attention"]["rope_theta"])
    writer.add_key_length(cfg["head_dim"])
    writer.add_value_length(cfg["head_dim"])
    writer.add_sliding_window(cfg["sliding_window"])
    for hf, array in load_file(str(directory / "model.safetensors")).items():
        if hf == "model.embed_tokens.weight":
            name = "token_embd.weight"
        elif hf == "model.norm.weight":
            name = "output_norm.weight"
        else:
            layer, rest = hf.split(".")[2], ".".join(hf.split(".")[3:-1])
            name = f"blk.{layer}.{names[rest]}.weight"
        writer.add_tensor(name, array + np.float32(1) if hf.endswith("norm.weight") else array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_gemma3_gguf_gives_the_model_its_safetensors_give(tmp_path):
    """Names, the 1 + w norms and the metadata of llama.cpp's gemma3 files (whose sliding pattern,
    every 6th layer global, and local RoPE base of 10,000 are fixed in llama.cpp, not stored)."""
    from emergence.models.hf_checkpoint import load_hf_directory
    from emergence.models.weights import build_model

    directory = FAMILY_FIXTURES / "gemma3"
    _write_gemma3_gguf(tmp_path / "tiny-gemma3.gguf", directory)
    from_gguf = load_model(str(tmp_path / "tiny-gemma3.gguf"))
    config, tensors, _ = load_hf_directory(directory)
    expected = config.replace(layer_types=("sliding_attention",) * 3, rope_scaling=None, max_position_embeddings=128,
                              query_pre_attn_scalar=16.0, pad_token_id=None, bos_token_id=None, eos_token_id=None)
    assert from_gguf.config == expected
    tokens = load_file(str(directory / "reference.safetensors"))["input_ids"].astype(np.int32)
    same_weights = build_model(expected, tensors, str(directory))
    np.testing.assert_allclose(np.asarray(from_gguf.model(tokens)[0]), np.asarray(same_weights(tokens)[0]), atol=1e-5, rtol=0)


def test_the_first_layers_of_a_model_keep_their_own_layer_types():
    """What memory planning compiles (1 or 2 layers) of a model with sliding and global layers."""
    gemma = load_model(str(FAMILY_FIXTURES / "gemma3")).config
    assert gemma.with_layers(2).sliding_layers() == (True, False)
    assert load_model(str(FAMILY_FIXTURES / "qwen2")).config.with_layers(1).layer_types is None
