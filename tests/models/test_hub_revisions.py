"""Hub references ``owner/name@revision``: read from the hub cache (laid out as huggingface_hub lays it
out) one snapshot per revision, and, offline, a revision that is not cached is one clear line."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from flax import nnx

from emergence.models.registry import hub_reference, load_model
from tests.commands.test_model_cli import assert_one_line_error, run

BIN = Path(__file__).resolve().parents[1] / "fixtures" / "tiny_bin"
COMMITS = {"step1": "1" * 40, "step2": "2" * 40}


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """models--org--tiny with revisions step1 (float32 weights, .bin) and step2 (other weights, bf16
    safetensors), and main pointing at step2, as ``snapshot_download`` leaves a cache."""
    cache = tmp_path / "hub"
    repo = cache / "models--org--tiny"
    for revision, fixture in (("step1", "fp32_single"), ("step2", "bf16_sharded_st")):
        shutil.copytree(BIN / fixture, repo / "snapshots" / COMMITS[revision])
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / revision).write_text(COMMITS[revision])
    (repo / "refs" / "main").write_text(COMMITS["step2"])
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def _params(loaded) -> dict[str, np.ndarray]:
    state = nnx.state(loaded.model, nnx.Param)
    return {".".join(map(str, path)): np.asarray(var.get_value()) for path, var in nnx.to_flat_state(state)}


def test_references_name_a_repo_and_optionally_a_revision(tmp_path):
    assert hub_reference("EleutherAI/pythia-70m") == ("EleutherAI/pythia-70m", None)
    assert hub_reference("EleutherAI/pythia-70m@step1000") == ("EleutherAI/pythia-70m", "step1000")
    assert hub_reference("org/name@refs/pr/1") == ("org/name", "refs/pr/1")
    assert hub_reference("model.gguf") is None and hub_reference("a/b/c") is None
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "name@v1").mkdir()
    assert hub_reference(str(tmp_path / "org" / "name@v1")) is None  # a local folder wins


def test_each_revision_loads_its_own_snapshot(hub_cache):
    first, second = load_model("org/tiny@step1"), load_model("org/tiny@step2")
    assert first.meta.commit == COMMITS["step1"] and second.meta.commit == COMMITS["step2"]
    assert first.meta.name == "org/tiny@step1"
    expected = {"step1": _params(load_model(str(BIN / "fp32_single"))), "step2": _params(load_model(str(BIN / "bf16_sharded")))}
    for loaded, revision in ((first, "step1"), (second, "step2")):
        for path, value in _params(loaded).items():
            np.testing.assert_array_equal(value, expected[revision][path], err_msg=f"{revision} {path}")
    embedding = "embed.embedding"
    assert not np.array_equal(_params(first)[embedding], _params(second)[embedding])
    assert load_model("org/tiny").meta.commit == COMMITS["step2"]  # no revision: main


def test_a_commit_hash_is_a_revision_too(hub_cache):
    assert load_model(f"org/tiny@{COMMITS['step1']}").meta.commit == COMMITS["step1"]


def test_offline_a_revision_that_is_not_cached_is_one_line(hub_cache, capsys):
    code, out, err = run(["info", "EleutherAI/pythia-70m@step1000"], capsys)
    assert_one_line_error(code, err, "EleutherAI/pythia-70m@step1000", "revision 'step1000'", "not in the hub cache", "offline")
    code, out, err = run(["info", "org/tiny@step3"], capsys)
    assert_one_line_error(code, err, "revision 'step3' of org/tiny is not in the hub cache")
