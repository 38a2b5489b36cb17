"""Cell keys name checkpoints and loss corpora by content: a moved sweep finds its cells, a re-trained
checkpoint gets new ones."""

from __future__ import annotations

import shutil

from emergence.sweep.config import load_sweep_config
from emergence.sweep.identity import model_fingerprint
from emergence.sweep.plan import expand
from tests.sweep.helpers import REPO, TINY_LLAMA, tiny_raw, write_config


def _moved_copy(root, raw: dict) -> dict:
    """The tiny sweep's checkpoints and corpus copied under ``root``, and the config pointing there."""
    raw = dict(raw, checkpoints=[dict(c) for c in raw["checkpoints"]], loss=dict(raw["loss"]))
    for ckpt in raw["checkpoints"]:
        ckpt["model"] = str(shutil.copytree(REPO / ckpt["model"], root / ckpt["id"]))
    corpus = root / "corpus.txt"
    shutil.copy(REPO / raw["loss"]["corpus"], corpus)
    raw["loss"]["corpus"] = str(corpus)
    return raw


def _keys(path, raw) -> dict[str, str]:
    return {c.label(): c.key for c in expand(load_sweep_config(write_config(path, raw)))}


def test_a_sweep_moved_to_another_path_keeps_every_cell_key(tmp_path):
    here = _keys(tmp_path / "here.yaml", tiny_raw())
    (tmp_path / "mnt").mkdir()
    moved = _moved_copy(tmp_path / "mnt", tiny_raw())
    assert _keys(tmp_path / "moved.yaml", moved) == here
    (tmp_path / "mnt" / "tiny-tied" / "README.md").write_text("notes")  # not part of the model
    assert _keys(tmp_path / "moved.yaml", moved) == here


def test_a_checkpoint_retrained_in_place_gets_new_keys(tmp_path):
    raw = _moved_copy(tmp_path, tiny_raw())
    before = _keys(tmp_path / "a.yaml", raw)
    weights = tmp_path / "tiny-tied" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # the last byte of the last tensor
    weights.write_bytes(bytes(data))
    after = _keys(tmp_path / "a.yaml", raw)
    changed = {label for label in before if after[label] != before[label]}
    assert changed == {label for label in before if label.startswith("tiny-tied ")}


def test_fingerprints_tell_the_fixture_models_apart():
    prints = {model_fingerprint(p) for p in TINY_LLAMA.iterdir() if (p / "config.json").is_file()}
    assert len(prints) == len([p for p in TINY_LLAMA.iterdir() if (p / "config.json").is_file()])
