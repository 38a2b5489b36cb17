"""A finetuning run's learning curve (``finetune.eval_every=N``: ``run_finetune(evaluator=...)``).

The evaluator here returns a checksum of the weights it is shown, so each test can tell exactly which
model a point of the curve scored: the base at step 0, the finished result at the last step, and the
same values again after a run that crashed midway was resumed.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file

from emergence.models.registry import load_model
from emergence.train.adapters import load_adapter
from emergence.train.config import FinetuneConfig, LoraConfig, OptimConfig
from emergence.train.finetune import eval_curve, run_finetune

from .conftest import BENCHMARKS, TINY


def weight_sum(loaded) -> dict[str, float]:
    leaves = jax.tree.leaves(nnx.state(loaded.model, nnx.Param))
    return {"weight_sum": float(sum(np.sum(np.asarray(x, np.float64)) for x in leaves))}


def _cfg(method: str, steps: int, **kw) -> FinetuneConfig:
    return FinetuneConfig(
        model=str(TINY), task="cola", budget=8, method=method, steps=steps, batch_size=4,
        lora=LoraConfig(rank=2), optim=OptimConfig(lr=1e-2), data_dir=str(BENCHMARKS), **kw,
    )  # fmt: skip


def test_the_curve_scores_the_base_at_step_0_and_the_saved_result_at_the_last_step(tmp_path):
    out = tmp_path / "lora"
    run_finetune(_cfg("lora", 4, eval_every=2), out, evaluator=weight_sum)
    curve = eval_curve(out)
    assert [p["step"] for p in curve] == [0, 2, 4]
    base = weight_sum(load_model(str(TINY)))["weight_sum"]
    saved = weight_sum(load_adapter(load_model(str(TINY)), out))["weight_sum"]
    values = [p["eval"]["weight_sum"] for p in curve]
    assert values[0] == pytest.approx(base, rel=1e-9)  # LoRA's B starts at zero: the base model
    assert values[2] == pytest.approx(saved, rel=1e-6)  # the adapters folded in, as when saved
    assert values[1] != pytest.approx(values[0], rel=1e-6) and values[1] != pytest.approx(values[2], rel=1e-6)


def test_scoring_during_training_leaves_the_trained_adapter_unchanged(tmp_path):
    run_finetune(_cfg("lora", 4, eval_every=1), tmp_path / "scored", evaluator=weight_sum)
    run_finetune(_cfg("lora", 4), tmp_path / "plain")
    a = load_file(str(tmp_path / "scored" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "plain" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_a_run_that_crashed_midway_resumes_to_the_uninterrupted_curve_without_duplicates(tmp_path):
    run_finetune(_cfg("full", 6, save_every=2, eval_every=1), tmp_path / "straight", evaluator=weight_sum)

    calls = []

    def crashes_at_step_3(loaded):
        calls.append(1)
        if len(calls) == 4:  # steps 0, 1, 2 scored and step 2 saved; the kill comes while scoring step 3
            raise RuntimeError("killed")
        return weight_sum(loaded)

    out = tmp_path / "resumed"
    with pytest.raises(RuntimeError, match="killed"):
        run_finetune(_cfg("full", 6, save_every=2, eval_every=1), out, evaluator=crashes_at_step_3)
    result = run_finetune(_cfg("full", 6, save_every=2, eval_every=1), out, evaluator=weight_sum)
    assert result.start_step == 2
    assert eval_curve(out) == eval_curve(tmp_path / "straight")
    assert [p["step"] for p in eval_curve(out)] == [0, 1, 2, 3, 4, 5, 6]


def test_remat_trains_the_same_weights_and_leaves_the_callers_model_alone(tmp_path):
    base = load_model(str(TINY))
    plain = run_finetune(_cfg("lora", 3), tmp_path / "plain", loaded=base)
    remat = run_finetune(_cfg("lora", 3, remat="block"), tmp_path / "remat", loaded=base)
    assert remat.trainer.model().config.remat == "block" and base.model.config.remat == "none"
    np.testing.assert_allclose([m["loss"] for m in remat.history], [m["loss"] for m in plain.history], rtol=1e-5)
