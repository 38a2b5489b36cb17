"""The paper's default setting on the authors' data: 77 models, 21 families, cutoff at Llama-2-7B.

Runs on the committed fixture (cut from ../shared/data/obsscaling) and, when present, the full data.
"""

from pathlib import Path

import pytest

from emergence.laws.observational import ObsConfig, run_fit
from emergence.laws.observational.data import PAPER_BASE_EXCLUDED, PAPER_BASE_FAMILIES

FIXTURES = Path(__file__).parents[1] / "fixtures" / "obsscaling"
SHARED = Path(__file__).parents[3] / "shared" / "data" / "obsscaling"


def test_gsm8k_from_the_other_seven_benchmarks_beats_compute():
    m = run_fit(
        ObsConfig(data=str(FIXTURES / "base_llm_benchmark_eval_paper77.csv"), target="GSM8K", cutoff=84e21)
    ).metrics
    assert (m["n_models"], m["n_families"]) == (77, 21)
    assert "GSM8K" not in m["benchmarks"] and len(m["benchmarks"]) == 7
    assert (m["n_train"], m["n_test"]) == (47, 30)  # Mistral and Mixtral have no FLOPs: test
    assert m["baselines"]["log_flops"]["n_test"] == 28
    assert m["mse_test"] < 0.5 * m["baselines"]["log_flops"]["mse_test"]
    assert m["mse_test"] < m["baselines"]["log_params"]["mse_test"]
    assert m["equivalent_flops"]["reference_family"] == "Llama-2"


def test_joined_post_training_target_uses_the_joined_scores():
    m = run_fit(
        ObsConfig(
            data=str(FIXTURES / "post_training_gsm8k_cot8.csv"),
            join=str(FIXTURES / "base_llm_benchmark_eval_paper77.csv"),
            target="gsm8k_cot_8_exact_match,flexible-extract",
        )
    ).metrics
    assert (m["n_train"], m["n_test"]) == (47, 28)  # two big models have no CoT score: dropped, noted
    assert sum("no value for target" in n for n in m["notes"]) == 2
    assert m["mse_test"] < 0.5 * m["baselines"]["log_flops"]["mse_test"]


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared ObsScaling data not present")
def test_the_paper_filter_on_the_full_table_selects_the_fixture_models():
    m = run_fit(
        ObsConfig(
            data=str(SHARED / "base_llm_benchmark_eval.csv"),
            target="GSM8K",
            families=PAPER_BASE_FAMILIES,
            exclude_models=PAPER_BASE_EXCLUDED,
        )
    ).metrics
    fixture = run_fit(
        ObsConfig(data=str(FIXTURES / "base_llm_benchmark_eval_paper77.csv"), target="GSM8K")
    ).metrics
    assert (m["n_models"], m["n_families"]) == (77, 21)
    assert m["mse_test"] == fixture["mse_test"]


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared ObsScaling data not present")
def test_instruct_agent_target_with_top_ten_percent_held_out():
    m = run_fit(
        ObsConfig(
            data=str(SHARED / "instruct_llm_agent_eval.csv"),
            join=str(SHARED / "instruct_llm_benchmark_eval.csv"),
            target="ABench-OA",
            scale=10,
            holdout_top=0.1,
        )
    ).metrics
    assert len(m["benchmarks"]) == 7 and "Arena-Elo" not in m["benchmarks"]
    assert (m["n_train"], m["n_test"]) == (20, 2)
    held_out = {p["model"] for p in m["predictions"] if p["split"] == "test"}
    assert held_out == {"gpt-4-0613", "claude-2.0"}
    assert m["baselines"]["log_flops"]["n_test"] == 0  # closed models: no FLOPs, no baseline score
