"""SentencePiece ``tokenizer.model`` files (LLaMA, Gemma and OpenLLaMA styles, read without
sentencepiece) and a GPT-NeoX tokenizer.json tokenize a fixed text set exactly as sentencepiece and
transformers do (fixtures from scripts/make_tokenizer_fixtures.py)."""

import json
from pathlib import Path

import pytest

from emergence.errors import UserError
from emergence.models.spm_model import read_spm
from emergence.models.tokenizer import TextTokenizer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tokenization"
REFERENCE = json.loads((FIXTURES / "reference.json").read_text())
LOSSLESS = ("spm_llama", "spm_gemma", "neox")  # OpenLLaMA's normalization collapses whitespace


@pytest.mark.parametrize("variant", sorted(REFERENCE))
def test_ids_match_the_reference_tokenizer(variant):
    tokenizer = TextTokenizer.from_directory(FIXTURES / variant)
    for text, ids in REFERENCE[variant].items():
        assert tokenizer.encode(text, add_bos=False) == ids, text
        if variant in LOSSLESS:
            assert tokenizer.decode(ids) == text


def test_the_sentencepiece_options_are_read_from_the_model_file():
    llama, gemma, openllama = (read_spm(FIXTURES / v / "tokenizer.model") for v in ("spm_llama", "spm_gemma", "spm_openllama"))
    assert llama["tokenizer.ggml.add_space_prefix"] and not gemma["tokenizer.ggml.add_space_prefix"]
    assert openllama["tokenizer.ggml.remove_extra_whitespaces"] and openllama["tokenizer.ggml.precompiled_charsmap"]
    assert not llama["tokenizer.ggml.remove_extra_whitespaces"] and not llama["tokenizer.ggml.precompiled_charsmap"]
    assert (llama["tokenizer.ggml.bos_token_id"], llama["tokenizer.ggml.eos_token_id"], llama["tokenizer.ggml.padding_token_id"]) == (1, 2, None)
    assert "<start_of_turn>" in gemma["tokenizer.ggml.tokens"]


def test_a_damaged_model_file_is_a_user_error_naming_it(tmp_path):
    damaged = tmp_path / "tokenizer.model"
    damaged.write_bytes((FIXTURES / "spm_llama" / "tokenizer.model").read_bytes()[:1000])
    with pytest.raises(UserError, match="tokenizer.model: not a readable SentencePiece model"):
        read_spm(damaged)
