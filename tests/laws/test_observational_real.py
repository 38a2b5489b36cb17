"""The paper's settings on the authors' data, the ObsScaling tables shipped in emergence/data/obsscaling/.

The default base-model set is 77 models in 21 families, with the cutoff at Llama-2-7B.
"""

import hashlib
import re

from emergence.laws.observational import ObsConfig, run_fit
from emergence.laws.observational.data import (
    PAPER_BASE_EXCLUDED,
    PAPER_BASE_FAMILIES,
    SHIPPED_TABLES,
    table_path,
)

PAPER_SET = {"families": PAPER_BASE_FAMILIES, "exclude_models": PAPER_BASE_EXCLUDED}


def test_the_shipped_tables_are_the_release_byte_for_byte():
    listed = re.findall(r"^\| (\S+\.csv) \| (\d+) \| \d+ \| ([0-9a-f]{64}) \|$",
                        (SHIPPED_TABLES / "PROVENANCE.md").read_text(), re.MULTILINE)  # fmt: skip
    assert sorted(name for name, _, _ in listed) == sorted(p.name for p in SHIPPED_TABLES.glob("*.csv"))
    for name, size, sha256 in listed:
        data = (SHIPPED_TABLES / name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (int(size), sha256), name


def test_a_bare_name_is_a_shipped_table_unless_such_a_file_is_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert table_path("instruct_llm_agent_eval.csv") == SHIPPED_TABLES / "instruct_llm_agent_eval.csv"
    (tmp_path / "instruct_llm_agent_eval.csv").write_text("Model\n")
    assert table_path("instruct_llm_agent_eval.csv").resolve() == tmp_path / "instruct_llm_agent_eval.csv"


def test_gsm8k_from_the_other_seven_benchmarks_beats_compute():
    m = run_fit(ObsConfig(data=None, target="GSM8K", cutoff=84e21, **PAPER_SET)).metrics
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
            data="base_llm_post_training_eval.csv",
            join="base_llm_benchmark_eval.csv",
            target="gsm8k_cot_8_exact_match,flexible-extract",
            **PAPER_SET,
        )
    ).metrics
    assert (m["n_train"], m["n_test"]) == (47, 28)  # two big models have no CoT score: dropped, noted
    assert sum("no value for target" in n for n in m["notes"]) == 2
    assert m["mse_test"] < 0.5 * m["baselines"]["log_flops"]["mse_test"]


def test_instruct_agent_target_with_top_ten_percent_held_out():
    m = run_fit(
        ObsConfig(
            data="instruct_llm_agent_eval.csv",
            join="instruct_llm_benchmark_eval.csv",
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
