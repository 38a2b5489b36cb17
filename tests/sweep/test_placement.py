"""`sweep plan --device-memory`: whether each checkpoint fits its mesh, by `emergence memory`'s estimate."""

from __future__ import annotations

from emergence.sweep.config import load_sweep_config
from emergence.sweep.placement import devices_needed, memory_lines, mesh_label
from emergence.train.config import MeshConfig
from tests.sweep.helpers import TINY_CONFIG, tiny_raw, write_config

GIB = 2**30


def test_a_mesh_reads_data_by_fsdp_by_tensor():
    assert mesh_label(MeshConfig()) == "1×1×1"
    assert mesh_label(MeshConfig(data=2, fsdp=-1)) == "2×*×1"


def test_each_checkpoint_fits_or_not_its_mesh_by_the_memory_estimate():
    cfg = load_sweep_config(TINY_CONFIG)
    roomy, tight = memory_lines(cfg, GIB), memory_lines(cfg, 1000)
    where = [line.split(":")[0].strip() for line in roomy[1:]]
    assert where == [f"{c} on 1×1×1 (tests/fixtures/tiny_llama/gqa_{c[5:]})" for c in ("tiny-tied", "tiny-untied")]
    assert all(line.endswith("fits") for line in roomy[1:])
    assert all("DOES NOT FIT" in line for line in tight[1:])


def test_checkpoints_sharing_a_shape_and_mesh_share_one_estimate_and_a_bad_mesh_is_named(tmp_path):
    raw = tiny_raw()
    for ckpt in raw["checkpoints"]:
        ckpt["architecture"] = "tests/fixtures/tiny_llama/gqa_tied"
    raw["checkpoints"].append({"model": "tests/fixtures/tiny_llama/gqa_untied", "id": "wide", "mesh": {"data": 3}})
    raw["checkpoints"].append({"model": "openlm-research/open_llama_3b_step_2500", "id": "hub"})
    cfg = load_sweep_config(write_config(tmp_path / "s.yaml", raw))
    assert devices_needed(cfg) == 3
    lines = memory_lines(cfg, GIB)[1:]
    assert len(lines) == 3 and lines[0].startswith("  tiny-tied and 1 more on 1×1×1") and lines[0].endswith("fits")
    assert "wide on 3×1×1: cannot run: micro-batch 8 does not divide" in lines[1]  # the batch of 8, 3 ways
    assert lines[2] == "  hub on 1×1×1: unknown (a hub checkpoint: give its 'architecture', e.g. llama-7b)"
