"""Our NNX LLaMA reproduces transformers' PyTorch LlamaForCausalLM (fixtures from scripts/make_llama_fixtures.py)."""

import numpy as np
import pytest
from safetensors.numpy import load_file

from emergence.models.registry import load_model
from tests.models.helpers import FIXTURES

VARIANTS = ["gqa_untied", "gqa_tied", "llama3_rope_mqa"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_logits_match_pytorch_reference(variant):
    loaded = load_model(str(FIXTURES / variant))
    reference = load_file(str(FIXTURES / variant / "reference.safetensors"))
    logits, _ = loaded.model(reference["input_ids"].astype(np.int32))
    assert np.asarray(logits).shape == reference["logits"].shape
    np.testing.assert_allclose(np.asarray(logits), reference["logits"], atol=1e-4, rtol=0)


def test_variants_cover_the_architecture_options():
    configs = {v: load_model(str(FIXTURES / v)).config for v in VARIANTS}
    assert configs["gqa_tied"].tie_word_embeddings and not configs["gqa_untied"].tie_word_embeddings
    assert configs["gqa_untied"].num_key_value_heads < configs["gqa_untied"].num_attention_heads
    assert configs["llama3_rope_mqa"].num_key_value_heads == 1
    assert configs["llama3_rope_mqa"].rope_scaling.rope_type == "llama3"


def test_bfloat16_compute_stays_close_to_fp32():
    reference = load_file(str(FIXTURES / "gqa_untied" / "reference.safetensors"))
    bf16 = load_model(str(FIXTURES / "gqa_untied"), dtype="bfloat16")
    logits, _ = bf16.model(reference["input_ids"].astype(np.int32))
    assert logits.dtype == np.float32  # logits are always returned in fp32
    np.testing.assert_allclose(np.asarray(logits), reference["logits"], atol=0.15)
