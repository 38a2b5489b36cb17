"""Ladder pretraining: a CI-sized ladder trains, exports loadable checkpoints and a valid manifest;
a run killed with SIGKILL and rerun ends with the same weights as an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from emergence.config import from_dict
from emergence.errors import UserError
from emergence.train.budgets import step_example_ids
from emergence.train.ladder_config import LadderConfig
from emergence.train.pretrain import pretrain_ladder, read_manifest, split_models

ROOT = Path(__file__).resolve().parents[2]
CI = ROOT / "configs" / "ladders" / "ci.yaml"
TINY = {
    "name": "tiny",
    "world": {
        "seed": 1,
        "n_entities": 20,
        "corpus_tokens_hint": 30_000,
        "heldout_docs": 20,
        "vocab_size": 320,
    },
    "seq_len": 32,
    "batch_size": 4,
    "log_every": 10,
    "models": [
        {"name": "m", "hidden_size": 16, "layers": 1, "heads": 2, "steps": 240, "checkpoints": [80, 160, 240]}
    ],
}


@pytest.fixture(scope="module")
def ci_ladder(tmp_path_factory):
    out = tmp_path_factory.mktemp("ci")
    return LadderConfig.from_file(CI), pretrain_ladder(LadderConfig.from_file(CI), out)


def test_ci_ladder_writes_a_manifest_of_loadable_checkpoints(ci_ladder):
    from emergence.models.registry import load_model

    ladder, manifest = ci_ladder
    doc = yaml.safe_load(manifest.read_text())
    assert doc["ladder"] == "ci" and (manifest.parent / doc["data_dir"] / "world.json").is_file()
    entries = read_manifest(manifest)
    assert [(e["ladder_model"], e["step"]) for e in entries] == [
        (m.name, s) for m in ladder.models for s in m.checkpoints
    ]
    for e in entries:
        assert e["tokens"] == e["step"] * ladder.batch_size * ladder.seq_len
        assert e["flops"] == pytest.approx(6 * e["params"] * e["tokens"])
        assert np.isfinite(e["pretrain_loss"])
    small, big = (e for e in entries if e["step"] == 40)
    assert big["params"] > small["params"]
    loaded = load_model(entries[-1]["path"])
    assert loaded.meta.tokens == entries[-1]["tokens"] and loaded.meta.flops == entries[-1]["flops"]
    assert loaded.tokenizer.decode(loaded.tokenizer.encode("lipo keeps a cat.")) == "lipo keeps a cat."


def test_the_sweep_reads_the_manifest_as_its_checkpoints(ci_ladder):
    from emergence.sweep.config import read_ladder

    specs = read_ladder(ci_ladder[1])
    entries = read_manifest(ci_ladder[1])
    assert [s.id for s in specs] == [e["id"] for e in entries]
    assert all(Path(s.model).resolve() == Path(e["path"]) for s, e in zip(specs, entries, strict=True))
    assert [s.flops for s in specs] == [e["flops"] for e in entries]
    doc = yaml.safe_load(ci_ladder[1].read_text())
    assert (ci_ladder[1].parent / doc["heldout_corpus"]).is_file()


def test_pretraining_lowers_the_heldout_loss(ci_ladder):
    entries = read_manifest(ci_ladder[1])
    for model in ("d16-l1", "d32-l2"):
        losses = [e["pretrain_loss"] for e in entries if e["ladder_model"] == model]
        assert losses[-1] < losses[0] < np.log(400)


def test_a_toy_task_evaluates_on_a_ladder_checkpoint(ci_ladder):
    from emergence.eval.evaluate import evaluate
    from emergence.models.registry import load_model

    entry = read_manifest(ci_ladder[1])[-1]
    result = evaluate(
        load_model(entry["path"]), "toy_yesno", shots=1, limit=8, data_dir=ci_ladder[1].parent / "world"
    )
    assert result.n == 8 and -1.0 <= result.metrics["mcc"] <= 1.0


def test_data_order_is_a_pure_function_of_the_step():
    a = [step_example_ids(s, 10, 4, (0,)).tolist() for s in range(6)]  # the windows a pretraining step sees
    assert a == [step_example_ids(s, 10, 4, (0,)).tolist() for s in range(6)]
    assert sorted(sum(a[:5], [])[:10]) == list(range(10))  # an epoch sees every window once


def ladder_from_dict(raw: dict) -> LadderConfig:
    return from_dict(LadderConfig, raw, source="ladder config")


def _weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path / "model.safetensors"))


def test_resume_after_sigkill_gives_identical_final_weights(tmp_path):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    straight = pretrain_ladder(ladder_from_dict(TINY), tmp_path / "straight").parent
    out = tmp_path / "killed"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "emergence.cli", "pretrain", str(tmp_path / "tiny.yaml"), "--out", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not list((out / "m" / "state").glob("step_*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "m" / "step_000240").exists()  # killed mid-run
    resumed = pretrain_ladder(ladder_from_dict(TINY), out).parent
    a, b = _weights(straight / "m" / "step_000240"), _weights(resumed / "m" / "step_000240")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_bad_ladder_configs_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match=r"unknown key 'models\[0\].widht'"):
        ladder_from_dict({**TINY, "models": [{**TINY["models"][0], "widht": 3}]})
    with pytest.raises(UserError, match="must include the last step"):
        ladder_from_dict({**TINY, "models": [{**TINY["models"][0], "checkpoints": [10]}]})
    with pytest.raises(UserError, match="not found"):
        LadderConfig.from_file(tmp_path / "missing.yaml")


def test_cli_reports_a_bad_config_in_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodels: []\n")
    proc = subprocess.run(
        [sys.executable, "-m", "emergence.cli", "pretrain", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {bad}: ladder 'x': no models"]  # names the file


def test_split_models_gives_every_model_to_one_group_largest_first():
    ladder = LadderConfig.from_file(ROOT / "configs" / "ladders" / "toy_words_many.yaml")
    groups = split_models(ladder, 2)
    assert sorted(name for group in groups for name in group) == sorted(m.name for m in ladder.models)
    assert groups[0] == ["d96-l3"]  # the longest run alone; the other three beside it
    assert split_models(ladder, 1) == [
        [m.name for m in sorted(ladder.models, key=lambda m: -m.steps * m.hidden_size * m.layers)]
    ]
    assert len(split_models(ladder, 9)) == len(ladder.models)


def test_pretraining_only_some_models_of_a_ladder(tmp_path):
    """``--model``: the named models only; an unknown name is a one-line error, before any work."""
    ladder = ladder_from_dict(
        {
            **TINY,
            "models": [
                {**TINY["models"][0], "steps": 20, "checkpoints": [20]},
                {**TINY["models"][0], "name": "n", "steps": 20, "checkpoints": [20]},
            ],
        }
    )
    manifest = pretrain_ladder(ladder, tmp_path / "l", models=["n"])
    assert [c["id"] for c in read_manifest(manifest)] == ["n@20"]
    with pytest.raises(UserError, match="no model 'q'; models: m, n"):
        pretrain_ladder(ladder, tmp_path / "other", models=["q"])
    assert not (tmp_path / "other").exists()
