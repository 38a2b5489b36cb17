"""GGUF files (llama.cpp conventions: permuted Q/K, quantized tensors, tokenizer in metadata) load
to the same model as the same weights in safetensors."""

import json

import gguf
import numpy as np
import pytest
from safetensors.numpy import load_file

from emergence.errors import UserError
from emergence.models.families import config_from_hf, config_to_hf
from emergence.models.hf_checkpoint import load_hf_directory, save_hf_directory
from emergence.models.registry import load_model
from emergence.models.tokenizer import TextTokenizer, tokenizer_from_gguf
from emergence.models.weights import build_model
from tests.models.helpers import FIXTURES, write_tiny_gguf

Q = gguf.GGMLQuantizationType


@pytest.mark.parametrize("fixture", ["gqa_untied", "gqa_tied"])
def test_quantized_gguf_matches_safetensors_with_the_same_weights(tmp_path, fixture):
    path = tmp_path / "tiny.gguf"
    weights = write_tiny_gguf(path, fixture, {"q_proj": Q.Q8_0, "k_proj": Q.Q4_1, "mlp": Q.Q8_0})
    from_gguf = load_model(str(path))
    config, _, _ = load_hf_directory(FIXTURES / fixture)
    same = build_model(config, weights, "dequantized")
    tokens = np.random.default_rng(0).integers(0, 300, (2, 16)).astype(np.int32)
    np.testing.assert_allclose(np.asarray(from_gguf.model(tokens)[0]), np.asarray(same(tokens)[0]), atol=1e-5)
    assert from_gguf.config.tie_word_embeddings == config.tie_word_embeddings


def test_unquantized_gguf_gives_the_pytorch_reference_logits(tmp_path):
    path = tmp_path / "tiny.gguf"
    write_tiny_gguf(path, "gqa_untied", {})
    reference = load_file(str(FIXTURES / "gqa_untied" / "reference.safetensors"))
    logits, _ = load_model(str(path)).model(reference["input_ids"].astype(np.int32))
    np.testing.assert_allclose(np.asarray(logits), reference["logits"], atol=1e-4)


def test_gguf_tokenizer_equals_the_original_bpe(tmp_path):
    path = tmp_path / "tiny.gguf"
    write_tiny_gguf(path, "gqa_untied", {})
    ours = load_model(str(path)).tokenizer
    original = TextTokenizer.from_directory(FIXTURES / "gqa_untied")
    for text in [
        "The capital of France is Paris.",
        "Question: What is 12 + 30?\nAnswer: 42",
        "  odd   spacing</s>",
    ]:
        assert ours.encode(text) == original.encode(text)
        assert ours.decode(ours.encode(text)) == text
    assert ours.encode("</s>") == [2]  # control tokens stay whole


def test_sentencepiece_style_tokenizer_from_scores():
    pieces = (
        ["<unk>", "<s>", "</s>"]
        + [f"<0x{b:02X}>" for b in range(256)]
        + [
            "▁",
            "h",
            "e",
            "l",
            "o",
            "w",
            "r",
            "d",
            "he",
            "ll",
            "hell",
            "hello",
            "▁hello",
            "wo",
            "wor",
            "worl",
            "world",
            "▁world",
        ]
    )
    scores = [0.0] * 259 + [-float(i) for i in range(len(pieces) - 259)]
    scores[pieces.index("▁hello")] = 10.0
    scores[pieces.index("▁world")] = 9.0
    types = [2, 3, 3] + [6] * 256 + [1] * (len(pieces) - 259)
    fields = {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": pieces,
        "tokenizer.ggml.scores": scores,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.unknown_token_id": 0,
    }
    tok = tokenizer_from_gguf(fields, "test")
    ids = tok.encode("hello world", add_bos=False)
    assert [pieces[i] for i in ids] == ["▁hello", "▁world"]
    assert tok.decode(ids) == "hello world"
    assert tok.add_bos and tok.encode("hello")[0] == 1  # SentencePiece LLaMAs start with <s>
    assert [pieces[i] for i in tok.encode("é", add_bos=False)] == ["▁", "<0xC3>", "<0xA9>"]  # byte fallback


def _same_parse(path):
    """read_gguf gives the gguf library's fields (decoded) and tensors (same views of the file)."""
    from emergence.models.gguf_file import read_fields, read_gguf

    ours, theirs = read_gguf(path), gguf.GGUFReader(str(path))
    expected = read_fields(theirs)
    assert list(ours.fields) == list(expected)
    for key, value in expected.items():
        assert ours.fields[key] == value and type(ours.fields[key]) is type(value), key
    assert [(t.name, t.tensor_type, t.shape) for t in ours.tensors] == [
        (t.name, t.tensor_type, tuple(int(d) for d in t.shape)) for t in theirs.tensors
    ]
    for a, b in zip(ours.tensors, theirs.tensors, strict=True):
        assert a.data.dtype == b.data.dtype and a.data.shape == b.data.shape, a.name
        assert np.array_equal(a.data, b.data), a.name


def test_our_parse_of_a_written_file_is_the_gguf_library_s(tmp_path):
    path = tmp_path / "tiny.gguf"
    write_tiny_gguf(path, "gqa_untied", {"q_proj": Q.Q4_1, "mlp": Q.Q8_0})
    _same_parse(path)


@pytest.mark.realmodel
def test_our_parse_of_the_real_smollm2_file_is_the_gguf_library_s():
    from emergence.models.registry import alias_path

    _same_parse(alias_path("smollm2-135m"))


def test_a_file_that_is_not_gguf_is_one_line(tmp_path):
    path = tmp_path / "bad.gguf"
    path.write_bytes(b"NOPE" + bytes(60))
    with pytest.raises(UserError, match="not a readable GGUF file.*magic"):
        load_model(str(path))


def test_unsupported_quant_type_names_the_tensor(tmp_path):
    writer_path = tmp_path / "q81.gguf"
    _write_with_raw_type(writer_path, Q.Q8_1)
    with pytest.raises(UserError, match=r"blk\.0\.ffn_up\.weight.*Q8_1"):
        load_model(str(writer_path))


def _write_with_raw_type(path, qtype):
    """A GGUF whose ffn_up tensor claims a type gguf cannot dequantize."""
    write_tiny_gguf(path, "gqa_untied", {})
    reader = gguf.GGUFReader(str(path))
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    writer = gguf.GGUFWriter(str(path) + ".new", "llama")
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        value = field.contents()
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            writer.add_array(name, value)
        else:
            writer.add_key_value(name, value, vtype)
    for tensor in reader.tensors:
        if tensor.name == "blk.0.ffn_up.weight":
            rows, cols = int(tensor.shape[1]), int(tensor.shape[0])
            writer.add_tensor(
                tensor.name, np.zeros((rows, cols // block * type_size), np.uint8), raw_dtype=qtype
            )
        else:
            writer.add_tensor(tensor.name, np.asarray(tensor.data))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    (path.parent / (path.name + ".new")).replace(path)


def test_config_roundtrips_through_hf_dict():
    config = config_from_hf(json.loads((FIXTURES / "llama3_rope_mqa" / "config.json").read_text()))
    assert config_from_hf(config_to_hf(config)) == config


def test_gguf_roundtrip_to_hf_directory(tmp_path):
    path = tmp_path / "tiny.gguf"
    write_tiny_gguf(path, "gqa_tied", {"mlp": Q.Q4_1})
    loaded = load_model(str(path))
    from emergence.models.weights import export_tensors

    out = save_hf_directory(tmp_path / "hf", loaded.config, export_tensors(loaded.model), loaded.tokenizer)
    again = load_model(str(out))
    tokens = np.arange(20, dtype=np.int32)[None]
    np.testing.assert_array_equal(np.asarray(again.model(tokens)[0]), np.asarray(loaded.model(tokens)[0]))
    assert again.tokenizer.encode("Paris is") == loaded.tokenizer.encode("Paris is")
