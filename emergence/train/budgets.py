"""Data budgets: nested training subsets, the steps policy, and a data order that is a function of step.

Nesting: for a task and subset seed s, one seeded permutation of the training split is drawn and a
budget D takes its first D examples, so the D = 64 subset lies inside the D = 256 subset. This is
what lets an emergence law compare budgets: a bigger budget adds data, it never swaps it.

Steps policy (:func:`plan_steps`): ``--steps N`` if given; otherwise ``ceil(epochs · D / E)``
optimizer steps, E = examples per step (batch × accumulation), but never fewer than ``min_steps``.
Tiny budgets thus still get enough updates to move (D = 8 at 3 epochs and batch 8 would be 3 steps),
while large budgets are trained for a fixed number of passes.

Order: epoch e visits the D examples in the permutation ``default_rng([*order_seed, e])``; step k
takes the examples at stream positions ``[k·E, (k+1)·E)`` of the concatenated epochs. Every batch is
therefore a pure function of (order seed, step), which is what makes a resumed run exact.
"""

from __future__ import annotations

import math

import numpy as np

from emergence.errors import UserError


def subset_indices(
    n_train: int, budget: int, subset_seed: int, *, where: str = "training split"
) -> np.ndarray:
    """Indices (into the training split) of the budget-D subset for ``subset_seed``; nested in D."""
    if budget <= 0:
        raise UserError(f"budget must be positive, got {budget}")
    if budget > n_train:
        raise UserError(f"budget {budget} is larger than the {where} ({n_train} examples)")
    return np.random.default_rng(subset_seed).permutation(n_train)[:budget]


def plan_steps(
    budget: int, examples_per_step: int, *, steps: int | None, epochs: float, min_steps: int
) -> int:
    """Optimizer steps for a run (see the module docstring for the policy)."""
    if steps is not None:
        return int(steps)
    return max(int(min_steps), math.ceil(epochs * budget / examples_per_step), 1)


def step_example_ids(step: int, n_examples: int, per_step: int, order_seed: tuple[int, ...]) -> np.ndarray:
    """Positions (into the subset) of the examples step ``step`` trains on."""
    start = step * per_step
    out = np.empty(per_step, np.int64)
    filled = 0
    while filled < per_step:
        epoch, offset = divmod(start + filled, n_examples)
        perm = np.random.default_rng([*order_seed, epoch]).permutation(n_examples)
        take = min(per_step - filled, n_examples - offset)
        out[filled : filled + take] = perm[offset : offset + take]
        filled += take
    return out
