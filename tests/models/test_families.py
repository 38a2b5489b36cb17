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
from emergence.models.families import FAMILIES, config_from_hf
from emergence.models.generate import greedy_generate
from emergence.models.registry import load_model, save_model
from emergence.train.config import LoraConfig
from emergence.train.lora import apply_lora, lora_layers
from tests.models.helpers import FAMILY_FIXTURES

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
    assert config_from_hf(json.loads(json.dumps(loaded.config.to_hf_dict()))) == loaded.config


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
