"""Observational scaling laws (Ruan, Maddison, Hashimoto 2024): forecasts from public models' scores.

:mod:`.data` loads and checks the tables, :mod:`.capability` turns scores into principal capabilities
(and their growth with compute), :mod:`.law` is the floored sigmoid (least squares and NUTS), and
:mod:`.fit` runs the pipeline.
"""

from emergence.laws.observational.fit import ObsConfig, ObsResult, run_families, run_fit

__all__ = ["ObsConfig", "ObsResult", "run_families", "run_fit"]
