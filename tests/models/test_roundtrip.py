"""load → save as an HF directory → load gives identical parameters, logits and tokenization."""

import json

import jax
import numpy as np
from flax import nnx

from emergence.models.registry import load_model, save_model
from tests.models.helpers import FIXTURES


def test_hf_directory_roundtrip_is_exact(tmp_path):
    first = load_model(str(FIXTURES / "llama3_rope_mqa"))
    out = save_model(first, tmp_path / "export", extra_meta={"tokens": 1000, "flops": 6.0e9})
    second = load_model(str(out))
    a = jax.tree.leaves(nnx.state(first.model, nnx.Param))
    b = jax.tree.leaves(nnx.state(second.model, nnx.Param))
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    tokens = np.arange(1, 30, dtype=np.int32)[None]
    np.testing.assert_array_equal(np.asarray(first.model(tokens)[0]), np.asarray(second.model(tokens)[0]))
    assert second.config == first.config
    assert second.meta.tokens == 1000 and second.meta.flops == 6.0e9
    text = "Question: What is 12 + 30?\nAnswer: 42"
    assert second.tokenizer.encode(text) == first.tokenizer.encode(text)


def test_export_is_readable_by_transformers_config_and_tokenizer(tmp_path):
    out = save_model(load_model(str(FIXTURES / "gqa_tied")), tmp_path / "export")
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(out)
    assert config.model_type == "llama" and config.tie_word_embeddings
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.eos_token == "</s>"
    assert json.loads((out / "config.json").read_text())["num_key_value_heads"] == 2


def test_saving_over_an_existing_export_replaces_it_whole(tmp_path):
    loaded = load_model(str(FIXTURES / "gqa_untied"))
    target = tmp_path / "export"
    save_model(loaded, target)
    (target / "stale.txt").write_text("left from an older export")
    save_model(loaded, target)
    assert not (target / "stale.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_two_loads_of_one_architecture_share_no_variables():
    """The traced abstract model is reused per config; every load still gets its own variables."""
    first = load_model(str(FIXTURES / "gqa_tied"))
    second = load_model(str(FIXTURES / "gqa_tied"))
    kernel = first.model.layers[0].attn.q_proj.kernel
    assert kernel is not second.model.layers[0].attn.q_proj.kernel
    kernel.set_value(kernel.get_value() * 0)
    assert float(np.abs(np.asarray(second.model.layers[0].attn.q_proj.kernel.get_value())).sum()) > 0
