"""Divergence beyond NaN: a run whose loss is finite but whose training has failed anyway.

The trainer stops on a non-finite loss or gradient by itself; :class:`DivergenceWatch` catches the
two finite failures that a sweep would otherwise fit the law on: a loss stuck with a zero gradient
norm (the network saturated), and a loss far above where it started (a learning rate too high). The
margins are wide: a real run's noisy loss never doubles *and* gains two nats over its start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

JUMP_FACTOR = 2.0  # the loss more than doubled ...
JUMP_NATS = 2.0  # ... and rose by more than this many nats over the reference
STALL_LOGS = 2  # consecutive logged steps with zero gradient and an unchanged loss
STALL_MIN_LOSS = 1e-4  # below this a zero gradient is a model that fits its data, not a dead one


@dataclass
class DivergenceWatch:
    """Checks each logged step; ``reference`` is the run's first logged loss (kept across resumes)."""

    reference: float | None = None
    _stalled: int = 0
    _last_loss: float | None = None

    def check(self, step: int, loss: float, grad_norm: float) -> str | None:
        """None while training is healthy, else the one-line reason it diverged."""
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            return None  # the trainer's non-finite check reports these
        if self.reference is None:
            self.reference = loss
        ref = self.reference
        if loss > ref * JUMP_FACTOR and loss > ref + JUMP_NATS:
            return (
                f"training diverged: loss {loss:.4g} at step {step}, far above its start {ref:.4g}; "
                "lower --lr"
            )
        stuck = grad_norm == 0.0 and loss > STALL_MIN_LOSS
        if not stuck:
            self._stalled = 0
        elif self._stalled and loss == self._last_loss:
            self._stalled += 1  # still no gradient, and the loss has not moved
        else:
            self._stalled = 1
        self._last_loss = loss
        if self._stalled >= STALL_LOGS:
            return (
                f"training diverged: loss stuck at {loss:.4g} with zero gradient norm by step {step} "
                "(the model saturated); lower --lr"
            )
        return None
