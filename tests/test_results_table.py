"""The results table: reading a CSV or Parquet file whoever wrote it, and refusing impossible values
with one line that names the file, the row (as a spreadsheet numbers it) and the column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emergence.errors import UserError
from emergence.laws.simulate import Design, draw_truth, simulate
from emergence.results_table import RESULT_COLUMNS, metric_columns, read_results


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return simulate(draw_truth(Design(), np.random.default_rng(1)), Design(), seed=1)


def test_metrics_are_the_known_ones_then_any_other_number_column(frame):
    extended = frame.assign(my_score=0.5, notes="text", mcc=0.1)
    assert metric_columns(extended) == ["acc", "mcc", "my_score"]
    assert not set(metric_columns(extended)) & set(RESULT_COLUMNS)


def test_table_errors_name_the_culprit(frame, tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_results(tmp_path / "nope.csv")
    frame.drop(columns=["pretrain_loss"]).to_csv(tmp_path / "no_loss.csv", index=False)
    with pytest.raises(UserError, match="missing column 'pretrain_loss'"):
        read_results(tmp_path / "no_loss.csv")
    bad = frame.astype({"budget": object})
    bad.loc[4, "budget"] = "lots"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(UserError, match=r"row 6, column 'budget'"):
        read_results(tmp_path / "bad.csv")


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("pretrain_loss", "inf", "not a finite number"),
        ("pretrain_loss", "0", "a loss > 0"),
        ("params", "1.5", "a whole parameter count"),
        ("n_eval", "-20", "a whole number >= 0"),
        ("shots", "2.5", "a whole number >= 0"),
        ("n_correct", "999999", "more than n_eval"),
        ("acc", "7.5", r"in \[0, 1\]"),
        ("acc", "n/a?", "not a number"),
    ],
)
def test_impossible_values_are_refused(frame, tmp_path, column, value, message):
    bad = frame.astype({column: object})
    bad.loc[2, column] = value
    bad.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(UserError, match=rf"t.csv: row 4, column '{column}': .*{message}"):
        read_results(tmp_path / "t.csv")


def test_blank_cells_are_unknown_not_errors(frame, tmp_path):
    blank = frame.astype({"tokens": object, "acc": object})
    blank.loc[3, "tokens"] = ""
    blank.loc[5, "acc"] = "none"
    blank.to_csv(tmp_path / "t.csv", index=False)
    table = read_results(tmp_path / "t.csv")
    assert np.isnan(table.loc[3, "tokens"]) and np.isnan(table.loc[5, "acc"])


def test_parquet_and_csv_read_alike(frame, tmp_path):
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    a, b = read_results(tmp_path / "t.csv"), read_results(tmp_path / "t.parquet")
    pd.testing.assert_series_equal(a["acc"], b["acc"])
