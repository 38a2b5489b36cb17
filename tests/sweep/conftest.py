"""The sweep tests' shared fixtures: one environment for runner subprocesses and one reference run."""

from __future__ import annotations

import pytest

from emergence.sweep.results import results_table
from tests.sweep.helpers import TINY_CONFIG, cli_env, run_cli


@pytest.fixture(scope="session")
def env(tmp_path_factory):
    return cli_env(tmp_path_factory.mktemp("jax_cache"))


@pytest.fixture(scope="session")
def reference(tmp_path_factory, env):
    """One uninterrupted single-process run of the CI sweep: (output folder, table, stdout)."""
    out = tmp_path_factory.mktemp("reference") / "out"
    proc = run_cli(["sweep", "run", str(TINY_CONFIG), f"out={out}"], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, results_table(out), proc.stdout
