"""`emergence memory`: a plan on a local config without weights; bad inputs exit 2 with one line."""

import json

import pytest

from tests.commands.test_model_cli import assert_one_line_error, run
from tests.train.conftest import TINY


def test_plans_a_local_model_directory_as_json(capsys):
    code, out, _ = run(
        [
            "memory", str(TINY), "finetune.batch_size=2", "finetune.max_seq_len=32", "--device-memory", "1GB",
            "--no-search", "--json",
        ],
        capsys,
    )  # fmt: skip
    assert code == 0
    report = json.loads(out)
    assert report["fits"] is True and report["dtype"] == "bfloat16" and report["param_dtype"] == "bfloat16"
    plan = report["plan"]
    assert plan["peak"] == max(plan["train_step"], plan["params"] + plan["optimizer"] + plan["evaluation"])
    assert plan["params"] > 0 and plan["activations"] > 0


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["memory", "llama-70b"], "llama-70b: not a model preset (llama-1b, llama-7b, llama-13b, openllama-3b)"),
        (["memory", "llama-7b", "finetune.mesh.fsdp=0"], "mesh"),
        (["memory", "llama-7b", "finetune.mesh.fsdp=64"], "needs 64 devices"),
        (["memory", "llama-7b", "--device-memory", "lots"], "--device-memory"),
        (["memory", "llama-7b", "finetune.method=adapter"], "method"),
    ],
)
def test_bad_inputs_are_one_line_errors(argv, needle, capsys):
    code, _, err = run(argv, capsys)
    assert_one_line_error(code, err, needle)


def test_cpu_devices_without_xla_flags_is_quiet_once_jax_has_started(monkeypatch):
    """A mesh of several devices sets JAX's CPU device count; once JAX has started that is refused
    (plan_mesh then names what to do), never a crash of its own (it was an unknown config name)."""
    import jax

    from emergence.commands.shared import cpu_devices

    monkeypatch.setenv("XLA_FLAGS", "")
    jax.devices()
    cpu_devices(2)
