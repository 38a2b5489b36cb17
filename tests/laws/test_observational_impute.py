"""Low-rank imputation: it fills masked cells of a low-rank matrix, and it never learns from test rows."""

import numpy as np
import pytest

from emergence.errors import UserError
from emergence.laws.observational.capability import ImputeConfig, fit_imputer


def _rank_one_scores(rng, n=60, d=7):
    """Benchmark-like scores in (0, 1): one latent ability times per-benchmark loadings, plus offsets."""
    ability = rng.normal(size=(n, 1))
    loadings = rng.uniform(0.05, 0.15, size=(1, d))
    offsets = rng.uniform(0.3, 0.6, size=(1, d))
    return offsets + ability @ loadings


def test_masked_entries_of_a_rank_one_matrix_are_recovered():
    rng = np.random.default_rng(0)
    truth = _rank_one_scores(rng)
    mask = rng.random(truth.shape) < 0.15
    mask[:, 0] = False  # keep every column observed somewhere
    observed = np.where(mask, np.nan, truth)

    _, filled = fit_imputer(observed, ImputeConfig(rank=1))

    assert np.allclose(filled[~mask], truth[~mask]), "observed cells must be left alone"
    err = np.abs(filled[mask] - truth[mask])
    mean_fill_err = np.abs(np.nanmean(observed, axis=0)[np.nonzero(mask)[1]] - truth[mask])
    assert err.max() < 1e-3
    assert err.mean() < 0.05 * mean_fill_err.mean()


def test_test_rows_are_filled_from_the_training_fit():
    rng = np.random.default_rng(1)
    truth = _rank_one_scores(rng, n=40)
    train, test = truth[:30].copy(), truth[30:].copy()
    train[rng.random(train.shape) < 0.1] = np.nan
    test_mask = np.zeros(test.shape, bool)
    test_mask[:, 2] = True
    imputer, _ = fit_imputer(train)

    filled = imputer.transform(np.where(test_mask, np.nan, test))

    assert np.abs(filled[test_mask] - test[test_mask]).max() < 1e-3


def test_changing_test_rows_cannot_change_the_training_fit():
    rng = np.random.default_rng(2)
    truth = _rank_one_scores(rng, n=30)
    train = truth.copy()
    train[rng.random(train.shape) < 0.1] = np.nan
    imputer_a, filled_a = fit_imputer(train)
    test_a = imputer_a.transform(np.full((3, train.shape[1]), 0.5))
    imputer_b, filled_b = fit_imputer(train)
    test_b = imputer_b.transform(np.full((3, train.shape[1]), 0.9))

    np.testing.assert_array_equal(filled_a, filled_b)
    np.testing.assert_array_equal(imputer_a.components, imputer_b.components)
    assert not np.allclose(test_a, test_b)  # the test rows themselves are of course different


def test_imputed_cells_are_clipped_to_the_score_range():
    x = np.array([[0.0, 0.0], [0.5, 0.5], [1.0, 1.0], [2.0, np.nan]])
    _, filled = fit_imputer(x, ImputeConfig(clip=(0.0, 1.0)))
    assert filled[3, 1] == 1.0
    assert filled[3, 0] == 2.0  # observed values are never clipped


def test_a_benchmark_with_no_training_value_is_a_user_error():
    x = np.array([[0.1, np.nan], [0.2, np.nan], [0.3, np.nan]])
    with pytest.raises(UserError, match="'HumanEval' has no value in any training row"):
        fit_imputer(x, columns=["MMLU", "HumanEval"])
