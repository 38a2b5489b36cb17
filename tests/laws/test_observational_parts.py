"""Splits, per-family lines, equivalent FLOPs and the data checks, one behaviour per test."""

import numpy as np
import pandas as pd
import pytest

from emergence.errors import UserError
from emergence.laws.observational import data as obs_data
from emergence.laws.observational.capability import family_efficiency, fit_equivalent_flops
from emergence.laws.observational.fit import split_by_cutoff, split_top_fraction


def test_cutoff_trains_on_models_at_or_below_it_and_sends_unknown_flops_to_test():
    flops = np.array([84e21, 84.0 * 1e21 * (1 + 1e-12), 85e21, np.nan, 1e20])
    assert split_by_cutoff(flops, 84e21).tolist() == [True, True, False, False, True]


def test_top_fraction_holds_out_the_best_models():
    y = np.array([0.1, 0.9, 0.3, 0.8, 0.2, 0.5, 0.4, 0.6, 0.7, 0.05, 0.15, 0.25])
    train = split_top_fraction(y, 0.1)  # floor(1.2) = 1 model
    assert (~train).sum() == 1 and y[~train][0] == 0.9
    assert (~split_top_fraction(y, 0.25)).sum() == 3


def test_family_lines_and_the_reference_ruler():
    fams = np.array(["A", "A", "A", "B", "B", "C"], dtype=object)
    logf = np.array([22.0, 23.0, 24.0, 22.0, 23.0, np.nan])
    pc1 = np.array([0.0, 0.5, 1.0, 1.0, 2.0, 3.0])
    eff = family_efficiency(fams, logf, pc1)
    assert eff["A"].slope == pytest.approx(0.5) and eff["A"].r2 == pytest.approx(1.0)
    assert eff["B"].slope == pytest.approx(1.0)
    assert eff["C"] is None  # no FLOPs, no line

    ruler = fit_equivalent_flops(fams, logf, pc1, "A")
    # a model as capable as A's 1e24 model is "worth" 1e24 A-FLOPs, wherever it comes from
    assert ruler.log10_flops(np.array([1.0, 3.0])).tolist() == pytest.approx([24.0, 28.0])
    assert fit_equivalent_flops(fams, logf, pc1, "C") is None


def _write(tmp_path, text):
    path = tmp_path / "t.csv"
    path.write_text(text)
    return path


def test_a_non_numeric_cell_names_its_row_and_column(tmp_path):
    path = _write(tmp_path, "Model,MMLU\na,0.3\nb,oops\n")
    table = obs_data.load_table(path)
    with pytest.raises(UserError, match=r"line 3 \(model 'b'\), column 'MMLU': non-numeric value 'oops'"):
        obs_data.parse_numeric_columns(table, ["MMLU"])


def test_quirks_are_reported_not_hidden(tmp_path):
    path = _write(
        tmp_path,
        "Model,Model Family,Model Size (B),Pretraining Data Size (T),FLOPs (1E21),MMLU\n"
        "org/x-7b,X,7,2,84,0.4\n"
        "org/x-7b,X,7,2,84,0.5\n"
        "org/y_7b_v2,Y,13,1,78,0.4\n"
        "org/z-3b,Z,3,627,11286,0.3\n"
        "org/w-1b,W,1,1,50,0.3\n"
        "org/v-2b,V,2,,,0.3\n",
    )
    table = obs_data.load_table(path)
    obs_data.parse_numeric_columns(table, ["MMLU"])
    obs_data.check_quirks(table)
    notes = "\n".join(table.notes)
    assert "dropped duplicate row for model 'org/x-7b'" in notes
    assert len(table.frame) == 5
    assert "'org/y_7b_v2': Model Size (B) is 13 but the name says 7B" in notes
    assert "'org/z-3b': 627T tokens for 3B params is implausible" in notes
    assert "'org/w-1b': FLOPs 5e+22 differ from 6·N·D" in notes
    assert "'org/v-2b': no FLOPs" in notes
    assert table.flops()[0] == pytest.approx(84e21)


def test_gsm8k_is_dropped_from_default_predictors_for_gsm8k_targets():
    cols = ["Model", "MMLU", "GSM8K", "HumanEval", "gsm8k_5"]
    assert obs_data.default_benchmarks(cols, "gsm8k_5") == ["MMLU", "HumanEval"]
    assert obs_data.default_benchmarks(cols, "ABench") == ["MMLU", "GSM8K", "HumanEval"]


def test_join_keeps_the_models_in_both_tables_and_says_which_were_lost(tmp_path):
    a = tmp_path / "a.csv"
    b = tmp_path / "b.csv"
    pd.DataFrame({"Model": ["m1", "m2"], "T": [0.1, 0.2]}).to_csv(a, index=False)
    pd.DataFrame({"Model": ["m1"], "MMLU": [0.5], "T": [9.0]}).to_csv(b, index=False)
    table = obs_data.load_table(a, b)
    assert table.frame["Model"].tolist() == ["m1"]
    assert table.frame["T"].tolist() == ["0.1"]  # DATA's column wins, and the note says so
    assert any("'m2': in" in n for n in table.notes) and any("'T' is in both" in n for n in table.notes)


def test_a_bad_cell_in_the_joined_file_is_located_in_that_file(tmp_path):
    a = tmp_path / "a.csv"
    b = tmp_path / "b.csv"
    a.write_text("Model,T\nm2,0.2\nm1,0.1\n")
    b.write_text("Model,MMLU\nm0,0.4\nm1,0.5\nm2,x\n")
    table = obs_data.load_table(a, b)
    with pytest.raises(UserError, match=r"b\.csv: line 4 \(model 'm2'\), column 'MMLU'"):
        obs_data.parse_numeric_columns(table, ["T", "MMLU"])
