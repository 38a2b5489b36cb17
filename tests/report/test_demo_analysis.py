"""The demo's per-task backtest on a table drawn from the law with a known truth: the held-out
checkpoints leave the fit, the ground truth comes from the full few-shot curve, the compute ratio
divides what the docstring says, and finetuned elbows sit at higher loss than the few-shot one.

(The CI-sized pipeline never emerges, so this is where the "it emerged" branch is exercised.)
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from emergence.laws.predict import truth_elbow
from emergence.laws.simulate import Design, draw_truth, ladder, simulate
from emergence.report.demo_analysis import analyse_task, compute_lookahead
from emergence.report.demo_config import DemoFit, DemoTask, Holdout, held_out

DESIGN = Design(
    sizes=(20e6, 60e6, 150e6, 400e6),
    steps_per_size=3,
    budgets=(64, 256, 1024),
    n_eval=800,
    n_emerged=2,
    lead=(0.01, 0.03),  # few-shot emergence inside the ladder: two checkpoints past it
)
SETTINGS = DemoFit(samples=150, warmup=150, chains=2, protocols=False)


@pytest.fixture(scope="module")
def backtest(tmp_path_factory):
    truth = draw_truth(DESIGN, np.random.default_rng(3))
    frame = simulate(truth, DESIGN, seed=3)
    biggest = ladder(DESIGN).sort_values("flops")["checkpoint"].tolist()[-3:]
    out = tmp_path_factory.mktemp("task")
    analysis = analyse_task(
        frame, DemoTask(name="synthetic", chance=0.25), SETTINGS, set(biggest), out, source="sim", echo=print
    )
    return frame, truth, set(biggest), out, analysis


def test_held_out_checkpoints_are_not_fitted_but_define_the_truth(backtest):
    frame, truth, held, out, a = backtest
    fit = json.loads((out / "fit.json").read_text())
    assert a["n_rows_fitted"] == fit["n_rows"] == int((~frame["checkpoint"].isin(held)).sum())
    fs = frame[frame["budget"] == 0]
    expected = truth_elbow(fs["pretrain_loss"].to_numpy(), fs["acc"].to_numpy())
    assert a["truth"]["emerged"] and a["truth"]["elbow"] == pytest.approx(expected.elbow)
    assert abs(a["truth"]["elbow"] - truth.e0) < 0.1  # the observed elbow finds the simulated one
    assert a["error_nats"] == pytest.approx(abs(a["prediction"]["mle"] - a["truth"]["elbow"]))  # the MLE
    for name, baseline in a["baselines"].items():
        assert baseline["error"] == pytest.approx(abs(baseline["prediction"] - a["truth"]["elbow"])), name
    assert {"budgets_rising_before_holdout", "elbows_spearman", "interval_width", "converged"} <= set(
        a["acceptance"]
    )
    assert a["acceptance"]["within_0_1_nats"] == (a["error_nats"] <= 0.1 + 1e-9)


def test_compute_ratio_is_first_post_emergence_flops_over_max_fitted_flops(backtest):
    frame, _, held, _, a = backtest
    per_ckpt = frame.groupby("checkpoint").agg(loss=("pretrain_loss", "mean"), flops=("flops", "mean"))
    past = per_ckpt[per_ckpt["loss"] < a["truth"]["elbow"]]
    fitted = per_ckpt[~per_ckpt.index.isin(held)]
    assert a["compute"]["first_post_emergence"]["flops"] == pytest.approx(past["flops"].min())
    assert a["compute"]["ratio"] == pytest.approx(past["flops"].min() / fitted["flops"].max())
    assert a["acceptance"]["compute_ratio_at_least_2"] == (a["compute"]["ratio"] >= 2)


def test_finetuned_elbows_are_at_higher_loss_than_few_shot_when_the_law_says_so(backtest):
    _, truth, _, _, a = backtest
    elbows = a["finetuned_vs_fewshot"]
    assert [b["budget"] for b in elbows["budgets"]] == list(DESIGN.budgets)
    assert truth.k > 0 and elbows["finetuned_higher"] is True
    for b in elbows["budgets"]:
        assert b["emerged"] and b["elbow"] > elbows["fewshot_elbow"]
        assert b["law"]["q05"] <= b["law"]["median"] <= b["law"]["q95"]


def test_forecast_puts_the_e0_posterior_through_the_fitted_compute_law(backtest):
    _, _, _, out, a = backtest
    f = a["forecast"]
    assert f["flops"]["q05"] <= f["flops"]["median"] <= f["flops"]["q95"]
    assert f["observed_first_post_emergence_flops"] == a["compute"]["first_post_emergence"]["flops"]
    assert a["fit"]["compute_law"]["n_points"] == len(
        {r["id"] for r in a["checkpoints"] if not r["held_out"]}
    )
    for name in ("law.png", "elbows.png", "e0_cdf.png", "forecast.png", "samples.npz"):
        assert (out / name).stat().st_size > 0


def test_compute_lookahead_without_emergence_has_no_ratio():
    table = [
        {"id": "a", "flops": 1.0, "held_out": False, "post_emergence": False},
        {"id": "b", "flops": 4.0, "held_out": True, "post_emergence": False},
    ]
    got = compute_lookahead(table)
    assert got["ratio"] is None and got["first_post_emergence"] is None and got["max_fitted_flops"] == 1.0


def test_a_post_emergence_checkpoint_among_the_fitted_ones_is_reported():
    table = [
        {"id": "small-long", "flops": 2.0, "held_out": False, "post_emergence": True},
        {"id": "big", "flops": 8.0, "held_out": True, "post_emergence": True},
    ]
    got = compute_lookahead(table)
    assert got["ratio"] == 1.0 and got["fitted_post_emergence"] == ["small-long"]


def test_held_out_is_the_union_of_models_ids_and_compute_threshold():
    entries = [
        {"id": "s@1", "ladder_model": "s", "flops": 1.0},
        {"id": "s@2", "ladder_model": "s", "flops": 2.0},
        {"id": "m@1", "ladder_model": "m", "flops": 3.0},
        {"id": "l@1", "ladder_model": "l", "flops": 9.0},
    ]
    assert held_out(Holdout(models=("l",)), entries) == {"l@1"}
    assert held_out(Holdout(checkpoints=("s@2",), flops_above=2.5), entries) == {"s@2", "m@1", "l@1"}
    assert held_out(Holdout(largest=2), entries) == {"m@1", "l@1"}


def test_a_lookahead_holdout_keeps_only_checkpoints_with_enough_less_compute():
    entries = [{"id": f"c@{f}", "ladder_model": "c", "flops": float(f)} for f in (1, 2, 3, 5, 8)]
    # the first checkpoint past the few-shot elbow used 6 FLOPs: fit only on <= 3 (2x less)
    assert held_out(Holdout(lookahead=2.0), entries, first_post_flops=6.0) == {"c@5", "c@8"}
    assert held_out(Holdout(lookahead=2.0), entries, first_post_flops=None) == set()
