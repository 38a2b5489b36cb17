"""scripts/gpu_check.py's CPU dry run: a LoRA part and the report, on a tiny config, without a GPU."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.py"


@pytest.mark.slow
def test_cpu_smoke_writes_mfu_and_the_prediction(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)

    gpu_check.main(["lora", str(tmp_path), "--cpu-smoke"])
    gpu_check.main(["report", str(tmp_path)])

    lora = json.loads((tmp_path / "lora.json").read_text())
    assert lora["mfu"] > 0 and lora["flops_rule"] == "4N" and lora["param_dtype"] == "bfloat16"
    assert lora["predicted_train_step_bytes"] > 0
    report = (tmp_path / "gpu_check.md").read_text()
    assert "lora finetuning" in report and "MFU" in report
    assert "full: did not finish" in report and "evaluation: did not finish" in report
