"""Data budgets: nested subsets, seeded determinism, the steps policy, and answer-only loss positions."""

from __future__ import annotations

import numpy as np
import pytest

from emergence.data.tasks import get_task
from emergence.errors import UserError
from emergence.train.budgets import plan_steps, step_example_ids, subset_indices
from emergence.train.examples import make_batch, task_examples

from .conftest import BENCHMARKS


def test_smaller_budgets_are_nested_inside_larger_ones():
    small, large = subset_indices(8551, 64, 3), subset_indices(8551, 256, 3)
    assert set(small) <= set(large)
    np.testing.assert_array_equal(large[:64], small)
    assert len(set(large)) == 256


def test_subsets_depend_on_the_seed_and_only_on_it():
    np.testing.assert_array_equal(subset_indices(1000, 50, 7), subset_indices(1000, 50, 7))
    assert set(subset_indices(1000, 50, 7)) != set(subset_indices(1000, 50, 8))


def test_budget_larger_than_the_split_is_a_user_error():
    with pytest.raises(UserError, match="budget 61 is larger than the cola train split"):
        subset_indices(60, 61, 0, where="cola train split")


def test_steps_policy_epochs_with_a_floor():
    assert plan_steps(1000, 8, steps=None, epochs=3, min_steps=20) == 375
    assert plan_steps(8, 8, steps=None, epochs=3, min_steps=20) == 20
    assert plan_steps(8, 8, steps=5, epochs=3, min_steps=20) == 5


def test_each_epoch_visits_every_example_once_and_order_is_a_function_of_step():
    per_step, n = 4, 10
    stream = np.concatenate([step_example_ids(k, n, per_step, (1, 2)) for k in range(5)])  # 2 epochs
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:20]) == list(range(10))
    np.testing.assert_array_equal(step_example_ids(3, n, per_step, (1, 2)), stream[12:16])
    assert not np.array_equal(step_example_ids(0, n, per_step, (1, 3)), stream[:4])


def test_examples_are_the_zero_shot_prompt_plus_gold_and_only_the_answer_carries_loss(tiny):
    docs, _ = get_task("cola").train_records(BENCHMARKS)
    examples = task_examples("cola", docs[:4], tiny.tokenizer, 512)
    for doc, ex in zip(docs[:4], examples, strict=True):
        text = tiny.tokenizer.decode(ex.tokens.tolist())
        assert (
            text
            == doc["sentence"]
            + "\nQuestion: Does this sentence make sense?\nAnswer:"
            + (" no", " yes")[doc["label"]]
        )
        answer = tiny.tokenizer.decode(ex.tokens[-ex.n_answer :].tolist())
        assert answer == (" no", " yes")[doc["label"]]
    batch = make_batch(examples, 2, 2)
    first = examples[0]
    n_in = len(first.tokens) - 1
    assert batch.valid[0, 0].sum() == n_in
    assert batch.target_mask[0, 0].sum() == first.n_answer
    np.testing.assert_array_equal(batch.targets[0, 0, : first.n_answer], first.tokens[-first.n_answer :])
    np.testing.assert_array_equal(
        batch.target_pos[0, 0, : first.n_answer], np.arange(n_in - first.n_answer, n_in)
    )
