"""Recovery: tables drawn from the observational law with known parameters come back out of the fit."""

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from emergence.laws.observational import ObsConfig, run_fit
from emergence.laws.observational.law import SigmoidConfig, fit_sigmoid

BENCHES = ["MMLU", "ARC-C", "HellaSwag", "Winograd", "TruthfulQA", "XWinograd", "HumanEval"]


def test_floored_sigmoid_parameters_are_recovered():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 2))
    w, w0, floor = np.array([1.5, -0.7]), -0.4, 0.12
    y = (1 - floor) * expit(x @ w + w0) + floor

    fit = fit_sigmoid(x, y)

    np.testing.assert_allclose(fit.weights, w, atol=1e-4)
    assert fit.intercept == pytest.approx(w0, abs=1e-4)
    assert fit.floor == pytest.approx(floor, abs=1e-4)
    assert fit.ceiling == 1.0


def test_a_free_ceiling_is_recovered_and_the_floor_respects_its_bound():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 1)) * 2
    y = (0.8 - 0.05) * expit(2.0 * x[:, 0] + 0.5) + 0.05
    fit = fit_sigmoid(x, y, SigmoidConfig(free_ceiling=True))
    assert fit.ceiling == pytest.approx(0.8, abs=1e-3)
    assert fit.floor == pytest.approx(0.05, abs=1e-3)

    bounded = fit_sigmoid(x, y + 0.5, SigmoidConfig(floor_max=0.2))  # data wants a floor of 0.55
    assert 0.0 <= bounded.floor <= 0.2


def synthetic_table(seed: int = 0, n_families: int = 6, per_family: int = 7, y_noise: float = 0.003):
    """Rank-3 benchmark scores from latent abilities; target = floored sigmoid of a known direction.

    Ability 1 grows with log10 FLOPs plus a family offset (families differ in compute efficiency), so
    a law on capabilities should beat a law on FLOPs. The target's linear predictor lies in the span
    of the scores, hence the true law is exactly representable with K = 3 principal components.
    """
    rng = np.random.default_rng(seed)
    rows, latents, fams = [], [], []
    for f in range(n_families):
        offset = rng.normal(scale=0.6)
        for log10_flops in np.linspace(20.5, 24.5, per_family) + rng.normal(scale=0.1, size=per_family):
            latents.append([0.8 * (log10_flops - 22.5) + offset, rng.normal(), rng.normal()])
            fams.append(f"fam{f}")
            rows.append(10 ** (log10_flops - 21))
    latents = np.array(latents)
    loadings = np.linalg.qr(rng.normal(size=(7, 3)))[0].T * np.array([[0.15], [0.05], [0.04]])
    scores = 0.5 + latents @ loadings
    direction = np.linalg.pinv(loadings) @ np.array([3.0, 1.0, 0.0])  # inside the scores' span
    z_true = (scores - 0.5) @ direction - 1.0  # = 3·ability1 + ability2 − 1
    floor = 0.05
    y = (1 - floor) * expit(z_true) + floor + rng.normal(scale=y_noise, size=len(z_true))
    frame = pd.DataFrame(scores, columns=BENCHES)
    frame.insert(0, "Model", [f"m{i}" for i in range(len(frame))])
    frame.insert(1, "Model Family", fams)
    frame.insert(2, "Model Size (B)", np.array(rows) / 6 / 2000)  # 2T tokens
    frame.insert(3, "Pretraining Data Size (T)", 2.0)
    frame.insert(4, "FLOPs (1E21)", rows)
    frame["Target"] = y
    return frame, z_true, floor


def test_end_to_end_fit_recovers_the_law_and_beats_the_flops_baseline(tmp_path):
    frame, z_true, floor = synthetic_table()
    path = tmp_path / "synthetic.csv"
    frame.to_csv(path, index=False)

    result = run_fit(ObsConfig(data=str(path), target="Target", cutoff=10**23.5))
    m = result.metrics

    assert m["n_train"] > 15 and m["n_test"] > 10
    assert result.fit.floor == pytest.approx(floor, abs=0.01)
    z_fit = result.models["linear_predictor"].to_numpy()
    train = (result.models["split"] == "train").to_numpy()
    assert np.abs(z_fit[train] - z_true[train]).max() < 0.2
    assert m["mse_test"] < 1e-4  # the law extrapolates to the bigger, held-out models
    assert m["mse_test"] < 0.2 * m["baselines"]["log_flops"]["mse_test"]


def test_same_config_gives_the_same_numbers(tmp_path):
    frame, _, _ = synthetic_table(seed=3)
    path = tmp_path / "synthetic.csv"
    frame.to_csv(path, index=False)
    config = ObsConfig(data=str(path), target="Target")
    assert run_fit(config).metrics == run_fit(config).metrics


def test_test_rows_do_not_leak_into_the_fit(tmp_path):
    """Scramble every held-out model's scores (and punch holes in them): nothing fitted may move."""
    frame, _, _ = synthetic_table(seed=4)
    frame.loc[[0, 3, 8], "MMLU"] = np.nan  # training rows with gaps, so imputation really runs
    base = tmp_path / "base.csv"
    frame.to_csv(base, index=False)
    test_rows = frame["FLOPs (1E21)"] > 10**2.5
    scrambled = frame.copy()
    rng = np.random.default_rng(0)
    scrambled.loc[test_rows, BENCHES] = rng.uniform(0, 1, size=(int(test_rows.sum()), len(BENCHES)))
    scrambled.loc[test_rows[test_rows].index[:2], "HellaSwag"] = np.nan
    other = tmp_path / "scrambled.csv"
    scrambled.to_csv(other, index=False)

    a = run_fit(ObsConfig(data=str(base), target="Target", cutoff=10**23.5))
    b = run_fit(ObsConfig(data=str(other), target="Target", cutoff=10**23.5))

    assert a.metrics["n_train"] == b.metrics["n_train"] == int((~test_rows).sum())
    assert a.metrics["params"] == b.metrics["params"]
    for key in ("loadings", "explained_variance_ratio", "imputation_iterations"):
        assert a.metrics["pca"][key] == b.metrics["pca"][key]
    train = (a.models["split"] == "train").to_numpy()
    np.testing.assert_array_equal(a.models["predicted"][train], b.models["predicted"][train])
    assert a.metrics["mse_test"] != b.metrics["mse_test"]
