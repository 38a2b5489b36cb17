"""Observational scaling laws (Ruan, Maddison, Hashimoto 2024): forecasts from public models' scores.

Modules: :mod:`.data` (load, join, clean, report quirks), :mod:`.impute` (training-only low-rank
imputation), :mod:`.capability` (PCA), :mod:`.sigmoid` (floored sigmoid by bounded least squares),
:mod:`.holdout` (splits), :mod:`.families` (compute efficiency, equivalent FLOPs), :mod:`.bayes` (NUTS),
:mod:`.fit` (the pipeline and metrics.json).
"""

from emergence.laws.observational.fit import ObsConfig, ObsResult, run_families, run_fit

__all__ = ["ObsConfig", "ObsResult", "run_families", "run_fit"]
