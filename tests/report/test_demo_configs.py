"""The committed demo configs: each one loads, and no two write to the same place (a demo's outputs
under results/ are committed, so a second config with the same ``out`` would overwrite them)."""

from pathlib import Path

import pytest

from emergence.report.demo_config import load_demo_config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs").glob("demo*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_committed_demo_config_loads(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # configs name their ladder relative to the repository root
    cfg, ladder = load_demo_config(path)
    assert cfg.tasks and ladder.models


def test_demo_configs_write_to_their_own_folders(monkeypatch):
    monkeypatch.chdir(ROOT)
    loaded = [load_demo_config(path)[0] for path in CONFIGS]
    assert (
        len({c.out for c in loaded})
        == len({c.work for c in loaded})
        == len({c.name for c in loaded})
        == len(CONFIGS)
    )


def test_make_demo_runs_the_config_whose_outputs_are_results_demo(monkeypatch):
    monkeypatch.chdir(ROOT)
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ndemo:", 1)[1].splitlines()[1]
    config = recipe.split("emergence demo ", 1)[1].strip()
    assert (ROOT / config).exists()
    assert load_demo_config(ROOT / config)[0].out == "results/demo"
