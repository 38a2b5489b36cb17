"""``python -m emergence.harness ARGS``: the ``lm_eval`` command with the ``emergence`` model
registered (lm-eval 0.4 discovers models only in its own registry, not through entry points)."""

import sys

from emergence.errors import UserError
from emergence.harness import require

try:
    require()
except UserError as err:
    print(f"error: {err}", file=sys.stderr)
    sys.exit(2)

from lm_eval.__main__ import cli_evaluate  # noqa: E402

from emergence.harness import backend  # noqa: E402, F401 - registers "emergence"

cli_evaluate()
