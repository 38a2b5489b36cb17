"""Observational scaling laws (Ruan, Maddison, Hashimoto 2024): forecasts from public models' scores.

:mod:`.fit` runs the pipeline on a table that :mod:`.data` loads and checks.
"""

from emergence.laws.observational.fit import ObsConfig, ObsResult, run_families, run_fit

__all__ = ["ObsConfig", "ObsResult", "run_families", "run_fit"]
