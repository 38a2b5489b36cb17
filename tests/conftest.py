"""Test-wide setup: four fake CPU devices (sharding tests, parallel NUTS chains), before JAX starts,
and the one pointer to the full benchmark files: the copy CI is given beside the repository
(``../shared/data/benchmarks``) becomes ``$EMERGENCE_DATA`` unless it is set already. Tests that need
those files skip with a reason when neither exists; the product itself never guesses this path."""

import os
from pathlib import Path

_BENCHMARKS = Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmarks"
if _BENCHMARKS.is_dir():
    os.environ.setdefault("EMERGENCE_DATA", str(_BENCHMARKS))

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
