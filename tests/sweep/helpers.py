"""Shared pieces of the sweep tests: the CI config, variants of it, and running the CLI in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO / "configs" / "sweeps" / "tiny.yaml"
PAPER_CONFIG = REPO / "configs" / "sweeps" / "openllama_v1.yaml"
FIXTURES = REPO / "tests" / "fixtures"
TINY_LLAMA = FIXTURES / "tiny_llama"
EMERGENCE = [sys.executable, "-m", "emergence.cli"]


def tiny_raw() -> dict:
    return yaml.safe_load(TINY_CONFIG.read_text())


def write_config(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def copy_with_other_tokenizer(target: Path) -> Path:
    """gqa_tied's weights with a tokenizer that maps two tokens to each other's ids."""
    shutil.copytree(TINY_LLAMA / "gqa_tied", target)
    data = json.loads((target / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    vocab["is"], vocab["al"] = vocab["al"], vocab["is"]
    (target / "tokenizer.json").write_text(json.dumps(data))
    return target


def cli_env(cache_dir: Path) -> dict[str, str]:
    """Environment for runner subprocesses: CPU, offline, and a shared persistent compilation cache."""
    env = dict(os.environ)
    env.update(
        JAX_PLATFORMS="cpu",
        HF_HUB_OFFLINE="1",
        JAX_COMPILATION_CACHE_DIR=str(cache_dir),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1",
        PYTHONPATH=str(REPO),
        EMERGENCE_CODE_VERSION="test",  # other commits may land while the tests run in a shared tree
    )
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*EMERGENCE, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """A results table without the wall-clock column, for equality between runs."""
    return frame.drop(columns=["seconds"]).reset_index(drop=True)
