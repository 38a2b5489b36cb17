"""The study scores the law at every admissible compute cutoff, beside its baselines.

A simulated results table stands in for one seed's sweep: its truth is known, its checkpoints
carry FLOPs, and few-shot emergence sits inside the ladder, so the cutoffs that leave >= 2x
lookahead are exactly those below half the first post-emergence checkpoint's compute.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emergence.config import load_config
from emergence.errors import UserError
from emergence.laws.simulate import Design, draw_truth, simulate
from emergence.report.demo_config import DemoFit, DemoTask
from emergence.report.study import StudyConfig, cutoff_cases, render_study, summarize_cases

DESIGN = Design(
    sizes=(20e6, 60e6, 150e6, 400e6),
    budgets=(8, 32, 128, 512),
    n_eval=2000,
    n_emerged=3,
    lead=(0.01, 0.03),
)
TASK = DemoTask(name="synthetic", metric="acc", chance=0.25)


STUDY = StudyConfig(demo="unused.yaml", tuned_seeds=(0,))


@pytest.fixture(scope="module")
def frame():
    truth = draw_truth(DESIGN, np.random.default_rng(3))
    return simulate(truth, DESIGN, seed=3)


@pytest.fixture(scope="module")
def cases(frame):
    return cutoff_cases(frame, TASK, DemoFit(), STUDY, seed=1)


def test_every_admissible_cutoff_is_scored_with_baselines(frame, cases):
    scored = [c for c in cases if c["status"] == "scored"]
    assert scored, cases
    ckpt = frame.groupby("checkpoint")[["flops", "pretrain_loss"]].mean()
    first_post = ckpt.loc[ckpt["pretrain_loss"] < scored[0]["truth"], "flops"].min()
    expected = [f for f in sorted(ckpt["flops"].unique()) if first_post / f >= 2 and (ckpt["flops"] <= f).sum() >= 4]
    assert [c["cutoff_flops"] for c in cases] == pytest.approx(expected)
    for case in scored:
        assert case["lookahead"] >= 2 and not case["tuned"]
        assert case["error_law"] == pytest.approx(abs(case["law"] - case["truth"]))
        assert {"error_strongest", "error_smallest_budget", "error_linear"} <= set(case)


def test_summary_and_report_separate_tuned_seeds(cases):
    tuned = [c | {"seed": 0, "tuned": True} for c in cases]
    table = pd.DataFrame(tuned + cases)
    summary = summarize_cases(table)
    assert summary["all"]["cases"] == 2 * summary["untuned_seeds"]["cases"] > 0
    assert 0.0 <= summary["all"]["within_0_1"] <= 1.0
    text = render_study({"config": STUDY.__dict__, **summary}, table)
    assert "untuned_seeds" in text and "Every case" in text


def test_study_config_is_checked(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("demo: configs/demo.yaml\nseeds: [0, 0]\n")
    with pytest.raises(UserError, match="distinct"):
        load_config(StudyConfig, path)
    path.write_text("demo: configs/demo.yaml\nlookahead: 2\n")
    with pytest.raises(UserError, match="lookahead"):
        load_config(StudyConfig, path)
