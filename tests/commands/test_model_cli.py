"""`emergence info` / `generate`, and bad model inputs: exit code 2, one line naming the culprit."""

import json
import shutil

import numpy as np
from safetensors.numpy import load_file, save_file

from tests.cli import run
from tests.models.helpers import FIXTURES
from tests.models.test_gguf import _write_with_raw_type


def copy_fixture(tmp_path, name="gqa_untied"):
    target = tmp_path / name
    shutil.copytree(FIXTURES / name, target)
    return target


def test_info_prints_the_architecture(capsys):
    code, out, _ = run(["info", str(FIXTURES / "gqa_tied")], capsys)
    assert code == 0
    assert "LlamaForCausalLM" in out and "28,192" in out and "kv 2" in out


def test_generate_prints_only_the_completion(capsys):
    code, out, err = run(["generate", str(FIXTURES / "gqa_untied"), "--prompt", "The capital", "-n", "4"], capsys)
    assert code == 0
    assert "tokens/s" in err and "tokens/s" not in out


def assert_one_line_error(code, err, *needles):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_missing_config(tmp_path, capsys):
    model = copy_fixture(tmp_path)
    (model / "config.json").unlink()
    code, _, err = run(["info", str(model)], capsys)
    assert_one_line_error(code, err, "config.json")


def test_missing_tensor(tmp_path, capsys):
    model = copy_fixture(tmp_path)
    tensors = load_file(str(model / "model.safetensors"))
    del tensors["model.layers.1.mlp.up_proj.weight"]
    save_file(tensors, str(model / "model.safetensors"))
    code, _, err = run(["info", str(model)], capsys)
    assert_one_line_error(code, err, "model.layers.1.mlp.up_proj.weight", "missing")


def test_shape_mismatch(tmp_path, capsys):
    model = copy_fixture(tmp_path)
    tensors = load_file(str(model / "model.safetensors"))
    tensors["model.layers.0.self_attn.k_proj.weight"] = np.zeros((8, 32), np.float32)
    save_file(tensors, str(model / "model.safetensors"))
    code, _, err = run(["info", str(model)], capsys)
    assert_one_line_error(code, err, "model.layers.0.self_attn.k_proj.weight", "shape")


def test_unsupported_architecture(tmp_path, capsys):
    model = copy_fixture(tmp_path)
    config = json.loads((model / "config.json").read_text())
    config.update(architectures=["GPT2LMHeadModel"], model_type="gpt2")
    (model / "config.json").write_text(json.dumps(config))
    code, _, err = run(["info", str(model)], capsys)
    assert_one_line_error(code, err, "config.json", "GPT2LMHeadModel")


def test_unsupported_quant_type(tmp_path, capsys):
    import gguf

    path = tmp_path / "q81.gguf"
    _write_with_raw_type(path, gguf.GGMLQuantizationType.Q8_1)
    code, _, err = run(["info", str(path)], capsys)
    assert_one_line_error(code, err, "blk.0.ffn_up.weight", "Q8_1")


def test_unknown_reference(capsys):
    code, _, err = run(["info", "no/such-model-here"], capsys)
    assert_one_line_error(code, err, "no/such-model-here")
