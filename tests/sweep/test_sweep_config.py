"""Sweep configs: strict YAML, dotted overrides, validation without network, and stable cell keys."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from emergence.config import apply_overrides, from_dict, load_config
from emergence.errors import UserError
from emergence.sweep.config import finetune_config, load_sweep_config
from emergence.sweep.plan import expand, format_plan
from emergence.train.config import MeshConfig
from tests.sweep.helpers import (
    PAPER_CONFIG,
    TINY_CONFIG,
    TINY_LLAMA,
    copy_with_other_tokenizer,
    tiny_raw,
    write_config,
)


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-4
    steps: int | None = None


@dataclass(frozen=True)
class Outer:
    name: str
    sizes: tuple[int, ...] = ()
    inner: Inner = field(default_factory=Inner)


# ----------------------------------------------------------------------------- the generic loader


def test_generic_loader_builds_frozen_dataclasses_with_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: a\nsizes: [1, 2]\ninner: {lr: 0.1}\n")
    cfg = load_config(Outer, path, ["inner.lr=3e-4", "inner.steps=5"])
    assert cfg == Outer("a", (1, 2), Inner(3e-4, 5))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name": "a", "inner": {"lrr": 1}}, "unknown key 'inner.lrr'"),
        ({"sizes": [1]}, "missing required key 'name'"),
        ({"name": "a", "sizes": [1, "two"]}, "sizes[1]: expected an integer, got 'two'"),
        ({"name": "a", "sizes": [True]}, "sizes[0]: expected an integer, got True"),
        ({"name": "a", "inner": 3}, "inner: expected a mapping"),
    ],
)
def test_generic_loader_names_key_and_file(raw, message):
    with pytest.raises(UserError) as err:
        from_dict(Outer, raw, source="x.yaml")
    assert str(err.value).startswith("x.yaml: ") and message in str(err.value)


def test_overrides_parse_values_as_yaml_and_reject_malformed_items():
    out = apply_overrides({"a": {"b": 1}}, ["a.b=[1, 2]", "a.c=true", "d=text"])
    assert out == {"a": {"b": [1, 2], "c": True}, "d": "text"}
    with pytest.raises(UserError, match="expected dotted.key=value"):
        apply_overrides({}, ["novalue"])
    with pytest.raises(UserError, match="a.b is not a section"):
        apply_overrides({"a": {"b": 1}}, ["a.b.c=2"])


# ----------------------------------------------------------------------------- sweep configs


def test_tiny_config_plans_ten_cells_with_one_fewshot_cell_per_checkpoint():
    cells = expand(load_sweep_config(TINY_CONFIG))
    assert len(cells) == 10
    fewshot = [c for c in cells if c.budget == 0]
    assert [(c.checkpoint_id, c.subset_seed, c.method) for c in fewshot] == [
        ("tiny-tied", None, "none"),
        ("tiny-untied", None, "none"),
    ]
    assert {(c.budget, c.subset_seed) for c in cells if c.budget} == {(16, 0), (16, 1), (64, 0), (64, 1)}
    assert len({c.key for c in cells}) == 10


def test_keys_are_stable_and_change_only_with_what_changes_the_numbers(tmp_path):
    base = {c.label(): c.key for c in expand(load_sweep_config(TINY_CONFIG))}
    assert base == {c.label(): c.key for c in expand(load_sweep_config(TINY_CONFIG))}
    moved = {
        c.label(): c.key
        for c in expand(load_sweep_config(TINY_CONFIG, ["out=/elsewhere", "eval.batch_size=3"]))
    }
    assert moved == base  # output folder and eval batch size do not change results
    how = ["dtype=float32", "param_dtype=float32", "finetune.remat=block", "finetune.peak_tflops=5"]
    assert {c.label(): c.key for c in expand(load_sweep_config(TINY_CONFIG, how))} == base  # CPU defaults
    bf16 = {c.label(): c.key for c in expand(load_sweep_config(TINY_CONFIG, ["param_dtype=bfloat16"]))}
    assert not set(bf16.values()) & set(base.values())  # bf16 weights score differently
    new_lr = {c.label(): c.key for c in expand(load_sweep_config(TINY_CONFIG, ["finetune.optim.lr=3e-4"]))}
    changed = {label for label in base if new_lr[label] != base[label]}
    assert changed == {label for label in base if "D=0 " not in label}  # few-shot cells do not train


def test_learning_curves_change_only_the_finetuned_cells_keys_and_only_when_asked(tmp_path):
    base = {c.label(): c.key for c in expand(load_sweep_config(TINY_CONFIG))}
    curved = {c.label(): c.key for c in expand(load_sweep_config(TINY_CONFIG, ["finetune.eval_every=5"]))}
    changed = {label for label in base if curved[label] != base[label]}
    assert changed == {label for label in base if "D=0 " not in label}


def test_a_task_can_finetune_with_its_own_settings(tmp_path):
    raw = tiny_raw()
    raw["finetune"]["optim"]["warmup_ratio"] = 0.1
    base = {c.label(): c.key for c in expand(load_sweep_config(write_config(tmp_path / "a.yaml", raw)))}
    raw["tasks"][0]["finetune"] = {"epochs": 5, "optim": {"lr": "3e-4"}}
    cfg = load_sweep_config(write_config(tmp_path / "b.yaml", raw))
    task = raw["tasks"][0]["name"]
    own = cfg.task_finetune(task)
    assert (own.epochs, own.optim.lr) == (5.0, 3e-4)
    assert own.batch_size == cfg.finetune.batch_size  # the rest comes from the sweep,
    assert own.optim.warmup_ratio == 0.1 and own.lora == cfg.finetune.lora  # section by section
    cells = expand(cfg)
    assert {c.resolved["finetune"]["epochs"] for c in cells if c.budget} == {5.0}
    changed = {c.label() for c in cells if base[c.label()] != c.key}
    assert changed == {c.label() for c in cells if c.budget}  # few-shot cells keep their keys


def test_a_mesh_changes_where_cells_run_not_their_keys(tmp_path):
    base = [c.key for c in expand(load_sweep_config(TINY_CONFIG))]
    raw = tiny_raw()
    raw["mesh"] = {"data": 2}  # the sweep's devices; a checkpoint's own mesh wins
    raw["checkpoints"][0].update(mesh={"fsdp": 8}, architecture="llama-1b")
    cfg = load_sweep_config(write_config(tmp_path / "mesh.yaml", raw))
    cells = expand(cfg)
    assert [c.key for c in cells] == base
    tied, untied = cfg.checkpoints
    assert (cfg.checkpoint_mesh(tied).fsdp, cfg.checkpoint_mesh(untied).data) == (8, 2)
    assert finetune_config(cfg, tied.model, "cola", 16, 0, cfg.checkpoint_mesh(tied)).mesh.fsdp == 8
    job = load_sweep_config(write_config(tmp_path / "job.yaml", raw | {"mesh": {"fsdp": -1, "distributed": True}}))
    assert job.checkpoint_mesh(job.checkpoints[0]) == MeshConfig(fsdp=8, distributed=True)  # one job, all cells
    rows = format_plan(cfg, cells).splitlines()[2:12]  # each cell's mesh, data×fsdp×tensor
    assert [row.split()[-1] for row in rows] == ["1×8×1"] * 5 + ["2×1×1"] * 5


def test_the_plan_shows_long_task_and_checkpoint_names_whole(tmp_path):
    cfg = load_sweep_config(write_config(tmp_path / "tiny.yaml", tiny_raw()))
    long_task = "harness:toy_choice_with_a_long_name"
    long_checkpoint = "tiny-tied_step_143000_of_a_long_run"
    cells = [replace(c, task=long_task, checkpoint_id=long_checkpoint) for c in expand(cfg)]
    first = format_plan(cfg, cells, rows=2).splitlines()[2]
    assert long_task in first.split() and long_checkpoint in first.split()


def test_paper_config_plans_without_touching_the_network(monkeypatch):
    import huggingface_hub

    def no_network(*args, **kwargs):
        raise AssertionError("plan must not download")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)
    cfg = load_sweep_config(PAPER_CONFIG)
    cells = expand(cfg)
    ids = [c.checkpoint_id for c in cells]
    assert {"open_llama_3b_step_2500", "open_llama_7b_step_250000", "open_llama_13b_step_500000"} <= set(ids)
    assert {c.task: c.shots for c in cells if c.budget == 0} == {
        "mmlu": 5,
        "commonsense_qa": 6,
        "gsm8k": 5,
        "cola": 5,
    }
    text = format_plan(cfg, cells, rows=3)
    assert f"{len(cells)} cells" in text and "accelerator-hours" in text and "unknown size" not in text
    from emergence.models.presets import PRESETS

    # each checkpoint's shape for planning its memory offline: a preset with its very parameter count
    assert all(PRESETS[c.architecture].num_params() == c.params for c in cfg.checkpoints)


def test_ladder_manifest_paths_are_relative_to_the_manifest(tmp_path):
    ladder = tmp_path / "ladder"
    ladder.mkdir()
    import shutil

    shutil.copytree(TINY_LLAMA / "gqa_tied", ladder / "step_100")
    (ladder / "manifest.yaml").write_text("checkpoints:\n  - {model: step_100, id: s100, tokens: 1.0e6}\n")
    raw = tiny_raw()
    raw.pop("checkpoints")
    raw["ladder"] = str(ladder / "manifest.yaml")
    cfg = load_sweep_config(write_config(tmp_path / "s.yaml", raw))
    assert [(c.id, c.tokens) for c in cfg.checkpoints] == [("s100", 1.0e6)]
    assert cfg.checkpoints[0].model == str(ladder / "step_100")


@pytest.mark.parametrize(
    ("edit", "culprit"),
    [
        (lambda r: r["finetune"].update(lrr=1), "unknown key 'finetune.lrr'"),
        (
            lambda r: r["checkpoints"].append({"model": "tests/fixtures/tiny_llama/nope"}),
            "checkpoints[2].model",
        ),
        (lambda r: r.update(budgets=[0, "sixteen"]), "budgets[1]: expected an integer, got 'sixteen'"),
        (lambda r: r["checkpoints"][1].update(id="tiny-tied"), "duplicate checkpoint id 'tiny-tied'"),
        (lambda r: r["tasks"].append({"name": "mmmlu"}), "tasks[1].name: unknown task 'mmmlu'"),
        (lambda r: r["finetune"].update(method="qlora"), "finetune: method must be one of lora, full"),
        (lambda r: r["loss"].update(corpus="missing.txt"), "loss.corpus: file not found"),
        (lambda r: r["tasks"][0].update(finetune={"epoch": 2}), "unknown key 'tasks[0].finetune.epoch'"),
        (lambda r: r["tasks"][0].update(finetune={"epochs": "two"}), "tasks[0].finetune.epochs"),
        (lambda r: r["finetune"].update(eval_every=0), "finetune: eval_every must be a positive number"),
        (lambda r: r["tasks"][0].update(finetune={"eval_every": -2}), "tasks[0].finetune: eval_every must be"),
        (lambda r: r["finetune"].update(mesh={"fsdp": 2}), "finetune.mesh: a sweep runs each cell, evaluation"),
        (lambda r: r["tasks"][0].update(finetune={"mesh": {"fsdp": 2}}), "tasks[0].finetune.mesh: a sweep"),
        (lambda r: r["checkpoints"][0].update(mesh={"distributed": True}), "checkpoints[0].mesh.distributed"),
        (lambda r: r.update(mesh={"fsdp": 0}), "mesh: mesh sizes must be positive"),
    ],
)
def test_bad_configs_name_the_culprit(tmp_path, edit, culprit):
    raw = tiny_raw()
    edit(raw)
    path = write_config(tmp_path / "bad.yaml", raw)
    with pytest.raises(UserError) as err:
        load_sweep_config(path)
    assert culprit in str(err.value) and str(path) in str(err.value)


def test_checkpoints_with_different_tokenizers_are_refused(tmp_path):
    other = copy_with_other_tokenizer(tmp_path / "other_tok")
    raw = tiny_raw()
    raw["checkpoints"].append({"model": str(other), "id": "odd"})
    with pytest.raises(UserError, match="checkpoint 'odd' has a different tokenizer than 'tiny-tied'"):
        load_sweep_config(write_config(tmp_path / "s.yaml", raw))


def _hub_sweep(tmp_path, model: str):
    raw = tiny_raw()
    raw.pop("ladder", None)
    raw["checkpoints"] = [{"model": model, "params": 70426624}]
    return load_sweep_config(write_config(tmp_path / "hub.yaml", raw))


def test_a_hub_revision_is_part_of_the_checkpoint_id_and_every_key(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: pytest.fail("plan must not download"))
    plain = expand(_hub_sweep(tmp_path, "EleutherAI/pythia-70m"))
    # the key of a hub checkpoint without a revision is the one it had before revisions existed
    assert plain[0].key == "f42dec79cbf6a445" and plain[0].checkpoint_id == "EleutherAI/pythia-70m"
    step = expand(_hub_sweep(tmp_path, "EleutherAI/pythia-70m@step1000"))
    assert {c.checkpoint_id for c in step} == {"EleutherAI/pythia-70m@step1000"}
    assert not {c.key for c in step} & {c.key for c in plain}
    assert {c.key for c in step} != {c.key for c in expand(_hub_sweep(tmp_path, "EleutherAI/pythia-70m@step2000"))}


@pytest.mark.parametrize("name, checkpoints", [("pythia", 66), ("openllama_v1", 27)])
def test_the_ladder_configs_plan_offline_with_the_compute_of_every_checkpoint(name, checkpoints, monkeypatch):
    import huggingface_hub

    from emergence.sweep.plan import format_checkpoints

    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: pytest.fail("plan must not download"))
    cfg = load_sweep_config(PAPER_CONFIG.with_name(f"{name}.yaml"))
    assert len(cfg.checkpoints) == checkpoints
    for ckpt in cfg.checkpoints:
        assert ckpt.flops == 6 * ckpt.params * ckpt.tokens > 0, ckpt.id
    text = format_checkpoints(cfg)
    assert "?" not in text and all(ckpt.id in text for ckpt in cfg.checkpoints)
    if name == "pythia":  # 2,097,152 tokens per step, every size at 11 revisions
        assert cfg.checkpoints[-1].model == "EleutherAI/pythia-2.8b@step143000"
        assert cfg.checkpoints[-1].tokens == 143000 * 2_097_152
        assert len({c.model.split("@")[1] for c in cfg.checkpoints}) == 11
    assert f"{len(expand(cfg))} cells" in format_plan(cfg, expand(cfg), rows=1)


def test_reading_a_config_does_not_import_jax():
    """The launcher of ``sweep run --workers`` reads the config in a process that computes nothing."""
    import subprocess
    import sys

    probe = (
        "import sys; from emergence.sweep.config import load_sweep_config; "
        f"load_sweep_config({str(TINY_CONFIG)!r}, []); print(sorted({{'jax', 'flax'}} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
