"""Metrics on hand-checked cases: accuracy (micro and macro), Matthews correlation, exact match.

MCC values below were worked out by hand from the confusion matrix (and agree with
sklearn.metrics.matthews_corrcoef, which the harness uses for CoLA).
"""

import math

import pytest

from emergence.eval import metrics as m


def test_binary_mcc_from_a_confusion_matrix():
    # TP=3, FN=2, FP=1, TN=2  ->  (3*2 - 1*2) / sqrt(4*5*3*4) = 4 / sqrt(240)
    golds = [1, 1, 1, 1, 1, 0, 0, 0]
    preds = [1, 1, 1, 0, 0, 1, 0, 0]
    assert m.matthews_corrcoef(preds, golds) == pytest.approx(4 / math.sqrt(240))
    assert m.matthews_corrcoef(preds, golds) == pytest.approx(0.2581988897471611)


def test_mcc_is_one_for_perfect_and_minus_one_for_inverted_predictions():
    golds = [0, 1, 1, 0, 1]
    assert m.matthews_corrcoef(golds, golds) == pytest.approx(1.0)
    assert m.matthews_corrcoef([1 - g for g in golds], golds) == pytest.approx(-1.0)


@pytest.mark.parametrize(
    ("preds", "golds"),
    [
        ([1, 1, 1, 1], [0, 1, 0, 1]),  # a model that always says "yes" (typical at chance on CoLA)
        ([0, 0, 0, 0], [0, 1, 0, 1]),  # always "no"
        ([0, 1, 0, 1], [1, 1, 1, 1]),  # gold labels all one class
        ([1, 1, 1], [1, 1, 1]),  # everything one class, all correct
    ],
)
def test_mcc_is_zero_when_predictions_or_labels_are_all_one_class(preds, golds):
    assert m.matthews_corrcoef(preds, golds) == 0.0


def test_multiclass_mcc_uses_the_generalized_formula():
    # C (rows gold) = [[1,1,0],[0,2,0],[1,0,1]]: t=[2,2,2], p=[2,3,1], c=4, s=6
    # (4*6 - 12) / sqrt((36 - 14) * (36 - 12)) = 12 / sqrt(528)
    golds = [0, 0, 1, 1, 2, 2]
    preds = [0, 1, 1, 1, 2, 0]
    assert m.matthews_corrcoef(preds, golds) == pytest.approx(12 / math.sqrt(528))


def test_mcc_of_nothing_is_unknown():
    assert math.isnan(m.matthews_corrcoef([], []))


def test_accuracy_micro_and_macro_differ_when_groups_have_different_sizes():
    # subject a: 3/4 correct; subject b: 0/1 -> micro 3/5, macro (0.75 + 0) / 2
    preds = [0, 1, 2, 0, 3]
    golds = [0, 1, 2, 3, 0]
    groups = ["a", "a", "a", "a", "b"]
    assert m.accuracy(preds, golds) == pytest.approx(0.6)
    assert m.macro_accuracy(preds, golds, groups) == pytest.approx(0.375)


def test_accuracy_rejects_mismatched_lengths_and_is_nan_when_empty():
    with pytest.raises(ValueError, match="length mismatch"):
        m.accuracy([0, 1], [0])
    assert math.isnan(m.accuracy([], []))
    assert math.isnan(m.macro_accuracy([], [], []))


def test_exact_match_rate_is_the_mean_of_matches():
    assert m.exact_match_rate([True, False, True, True]) == pytest.approx(0.75)
    assert math.isnan(m.exact_match_rate([]))


def test_task_metrics_from_engine_outputs_multiple_choice():
    from emergence.data.tasks import Request

    reqs = [
        Request("mmlu", i, "ctx", gold=g, continuations=(" A", " B", " C", " D"), group=s)
        for i, (g, s) in enumerate([(0, "a"), (1, "a"), (2, "a"), (3, "a"), (0, "b")])
    ]
    records = m.score_examples(reqs, [0, 1, 2, 0, 3])
    assert [r["correct"] for r in records] == [True, True, True, False, False]
    assert m.aggregate(("acc", "acc_macro"), records) == pytest.approx({"acc": 0.6, "acc_macro": 0.375})
    cola = m.aggregate(("mcc", "acc"), m.score_examples(reqs[:4], [0, 1, 2, 3]))
    assert cola == pytest.approx({"mcc": 1.0, "acc": 1.0})


def test_task_metrics_from_engine_outputs_generation():
    from emergence.data.tasks import Request

    reqs = [
        Request("gsm8k", i, "ctx", gold=f"Work.\n#### {a}", stop=("Question:",), max_gen_toks=256)
        for i, a in enumerate([18, 7, 1234])
    ]
    completions = [" 9 * 2 = 18.\n#### 18", " The answer is 7.", " #### 1,235"]
    records = m.score_examples(reqs, completions, answer_filter="gsm8k")
    assert [(r["em_strict"], r["em_flexible"]) for r in records] == [
        (True, True),
        (False, True),
        (False, False),
    ]
    assert records[2]["strict"] == "1,235" and records[1]["flexible"] == "7."
    assert m.aggregate(("em_strict", "em_flexible"), records) == pytest.approx(
        {"em_strict": 1 / 3, "em_flexible": 2 / 3}
    )
    with pytest.raises(ValueError, match="unknown metric 'bleu'"):
        m.aggregate(("bleu",), records)
    with pytest.raises(ValueError, match="length mismatch"):
        m.score_examples(reqs, completions[:2], answer_filter="gsm8k")
    with pytest.raises(ValueError, match="unknown answer filter None"):
        m.score_examples(reqs, completions)
