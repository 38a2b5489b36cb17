"""Data budgets: nested training subsets, the steps policy, and a data order that is a function of step.

For a task and subset seed, a budget D takes the first D examples of one seeded permutation of the
training split, so a bigger budget adds data and never swaps it: that is what lets an emergence law
compare budgets. Step k trains on positions ``[k·E, (k+1)·E)`` of the concatenated per-epoch
permutations (E = examples per step), so every batch is a pure function of (order seed, step) and a
resumed run is exact.
"""

from __future__ import annotations

import math

import numpy as np

from emergence.errors import UserError


def subset_indices(
    n_train: int, budget: int, subset_seed: int, *, where: str = "training split"
) -> np.ndarray:
    """Indices (into the training split) of the budget-D subset for ``subset_seed``; nested in D."""
    if budget > n_train:
        raise UserError(f"budget {budget} is larger than the {where} ({n_train} examples)")
    return np.random.default_rng(subset_seed).permutation(n_train)[:budget]


def plan_steps(
    budget: int, examples_per_step: int, *, steps: int | None, epochs: float, min_steps: int
) -> int:
    """``steps`` if given, else ``ceil(epochs · D / E)`` but at least ``min_steps``: tiny budgets
    still get enough updates to move, large ones a fixed number of passes."""
    if steps is not None:
        return int(steps)
    return max(int(min_steps), math.ceil(epochs * budget / examples_per_step), 1)


def step_example_ids(step: int, n_examples: int, per_step: int, order_seed: tuple[int, ...]) -> np.ndarray:
    """Positions (into the subset) of the examples step ``step`` trains on."""
    first, offset = divmod(step * per_step, n_examples)
    epochs = range(first, (step * per_step + per_step - 1) // n_examples + 1)
    order = [np.random.default_rng([*order_seed, epoch]).permutation(n_examples) for epoch in epochs]
    return np.concatenate(order)[offset : offset + per_step]
