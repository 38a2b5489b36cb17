"""Task specs render lm-evaluation-harness' exact strings, 0-shot and k-shot.

Golden requests come from the real harness (``scripts/make_golden_prompts.py``, lm-eval 0.4.x):
``fixture_data.json`` on the small cuts in ``tests/fixtures/benchmarks`` (always run) and
``shared_data.json`` on the full real data (run when $EMERGENCE_DATA names them). Each case
holds the first three requests, so the seeded few-shot generator is checked beyond the first draw.
"""

import json
import os
from pathlib import Path

import pytest

from emergence.data import sources, tasks
from emergence.errors import UserError

FIXTURES = Path(__file__).parents[1] / "fixtures"
GOLDEN = FIXTURES / "golden_prompts"
FIXTURE_DATA = FIXTURES / "benchmarks"
REAL_DATA = Path(os.environ[sources.ENV_DATA_DIR]) if os.environ.get(sources.ENV_DATA_DIR) else None


def _cases(name: str) -> list[dict]:
    return json.loads((GOLDEN / name).read_text(encoding="utf-8"))["cases"]


def _render(case: dict, data_dir: Path) -> list[tasks.Request]:
    spec = tasks.get_task(case["task"])
    subjects = [case["subject"]] if case["subject"] else None
    docs, fewshot = tasks.load_task_docs(spec, shots=case["shots"], data_dir=data_dir, subjects=subjects)
    return tasks.build_requests(
        spec, docs, fewshot, shots=case["shots"], seed=case["seed"], limit=len(case["requests"])
    )


def _assert_same(requests: list[tasks.Request], golden: list[dict]) -> None:
    assert len(requests) == len(golden)
    for ours, theirs in zip(requests, golden, strict=True):
        assert ours.doc_id == theirs["doc_id"]
        assert ours.context == theirs["context"]  # byte-identical, description and shots included
        if "continuations" in theirs:
            assert list(ours.continuations) == theirs["continuations"]
        else:
            assert ours.is_generation and list(ours.stop) == theirs["generation_kwargs"]["until"]


@pytest.mark.parametrize(
    "case", _cases("fixture_data.json"), ids=lambda c: f"{c['harness_task']}-{c['shots']}shot"
)
def test_prompts_equal_the_harness_on_fixture_data(case):
    _assert_same(_render(case, FIXTURE_DATA), case["requests"])


@pytest.mark.skipif(REAL_DATA is None, reason="full benchmark files not found: set EMERGENCE_DATA")
@pytest.mark.parametrize(
    "case", _cases("shared_data.json"), ids=lambda c: f"{c['harness_task']}-{c['shots']}shot"
)
def test_prompts_equal_the_harness_on_the_real_data(case):
    _assert_same(_render(case, REAL_DATA), case["requests"])


def test_mmlu_description_matches_the_harness_for_all_57_subjects():
    descriptions = json.loads((GOLDEN / "mmlu_descriptions.json").read_text(encoding="utf-8"))["descriptions"]
    assert len(descriptions) == 57
    spec = tasks.get_task("mmlu")
    for subject, description in descriptions.items():
        assert spec.description({"subject": subject}) == description


def test_golden_cases_cover_zero_and_k_shot_for_every_task():
    covered = {(c["task"], c["shots"] > 0) for c in _cases("fixture_data.json")}
    harness_tasks = [t for t, spec in tasks.TASKS.items() if isinstance(spec.loader, sources.Release)]
    assert harness_tasks == ["mmlu", "commonsense_qa", "cola", "gsm8k"]
    assert covered == {(t, k) for t in harness_tasks for k in (False, True)}
    mmlu_fewshot_subjects = {
        c["subject"] for c in _cases("fixture_data.json") if c["task"] == "mmlu" and c["shots"]
    }
    assert len(mmlu_fewshot_subjects) >= 2


def test_multiple_choice_request_fields():
    spec = tasks.get_task("cola")
    docs, fewshot = tasks.load_task_docs(spec, shots=2, data_dir=FIXTURE_DATA)
    reqs = tasks.build_requests(spec, docs, fewshot, shots=2)
    assert [r.doc_id for r in reqs] == list(range(len(docs)))
    assert reqs[0].continuations == (" no", " yes") and reqs[0].gold == docs[0]["label"]
    assert reqs[0].context.endswith(
        docs[0]["sentence"] + "\nQuestion: Does this sentence make sense?\nAnswer:"
    )
    assert not reqs[0].is_generation and reqs[0].max_gen_toks == 0


def test_generation_request_fields():
    spec = tasks.get_task("gsm8k")
    docs, fewshot = tasks.load_task_docs(spec, data_dir=FIXTURE_DATA)  # default: 5 shots, like the harness
    reqs = tasks.build_requests(spec, docs, fewshot)
    assert reqs[0].is_generation and reqs[0].stop == ("Question:", "</s>", "<|im_end|>")
    assert reqs[0].max_gen_toks == 256 and reqs[0].gold == docs[0]["answer"]
    assert reqs[0].context.count("Question: ") == 6 and reqs[0].context.count("\n#### ") == 5


def test_mmlu_shots_are_the_first_dev_rows_of_the_same_subject_in_file_order():
    spec = tasks.get_task("mmlu")
    subjects = ["us_foreign_policy", "abstract_algebra"]
    docs, fewshot = tasks.load_task_docs(spec, shots=2, data_dir=FIXTURE_DATA, subjects=subjects)
    reqs = tasks.build_requests(spec, docs, fewshot, shots=2)
    for req, doc in zip(reqs, docs, strict=True):
        dev = [d for d in fewshot if d["subject"] == doc["subject"]][:2]
        assert req.group == doc["subject"]
        assert req.context.startswith(
            spec.description(doc) + spec.doc_to_text(dev[0]) + " " + spec.doc_to_target(dev[0])
        )


def test_fewshot_sampling_is_seeded_and_never_draws_the_evaluated_example():
    spec = tasks.get_task("commonsense_qa")
    train = spec.records("train", data_dir=FIXTURE_DATA)
    docs = train[:10]  # evaluate on the few-shot pool itself: every doc is in the pool
    first = tasks.build_requests(spec, docs, train, shots=5, seed=7, eval_split="train")
    again = tasks.build_requests(spec, docs, train, shots=5, seed=7, eval_split="train")
    other = tasks.build_requests(spec, docs, train, shots=5, seed=8, eval_split="train")
    assert [r.context for r in first] == [r.context for r in again]
    assert [r.context for r in first] != [r.context for r in other]
    for req, doc in zip(first, docs, strict=True):
        assert req.context.count(spec.doc_to_text(doc)) == 1  # only as the final question


def test_unknown_task_and_too_many_shots_are_one_line_user_errors():
    with pytest.raises(UserError, match="unknown task 'mmlu_pro'"):
        tasks.get_task("mmlu_pro")
    spec = tasks.get_task("mmlu")
    docs, fewshot = tasks.load_task_docs(spec, shots=6, data_dir=FIXTURE_DATA, subjects=["abstract_algebra"])
    with pytest.raises(
        UserError,
        match=r"6 shots requested but the mmlu few-shot split 'dev' for subject 'abstract_algebra' holds only 5",
    ) as e:
        tasks.build_requests(spec, docs, fewshot, shots=6)
    assert "\n" not in str(e.value)
    spec = tasks.get_task("gsm8k")
    docs, fewshot = tasks.load_task_docs(spec, shots=31, data_dir=FIXTURE_DATA)
    with pytest.raises(UserError, match="31 shots requested .* holds only 30"):
        tasks.build_requests(spec, docs, fewshot, shots=31)
    with pytest.raises(UserError, match="shots must be >= 0"):
        tasks.build_requests(spec, docs, fewshot, shots=-1)


def test_make_requests_is_load_then_build_with_a_per_subject_limit():
    spec, reqs = tasks.make_requests(
        "mmlu", shots=1, limit=2, data_dir=FIXTURE_DATA, subjects=["abstract_algebra", "us_foreign_policy"]
    )
    assert spec is tasks.get_task("mmlu")
    assert [(r.group, r.doc_id) for r in reqs] == [
        ("abstract_algebra", 0),
        ("abstract_algebra", 1),
        ("us_foreign_policy", 0),
        ("us_foreign_policy", 1),
    ]
    _, all_reqs = tasks.make_requests(
        "mmlu", shots=1, data_dir=FIXTURE_DATA, subjects=["abstract_algebra", "us_foreign_policy"]
    )
    assert [r.context for r in reqs] == [r.context for r in all_reqs if r.doc_id < 2]
    _, gsm = tasks.make_requests("gsm8k", limit=2, data_dir=FIXTURE_DATA)
    assert len(gsm) == 2 and gsm[0].context.count("Question: ") == 6


def test_every_task_declares_what_scoring_and_the_law_need():
    from emergence.eval.metrics import ANSWER_FILTERS, aggregate

    for spec in tasks.TASKS.values():
        aggregate(spec.metrics, [])  # every metric is one the evaluator computes (raises otherwise)
        assert (spec.answer_filter in ANSWER_FILTERS) == spec.is_generation, spec.name
        assert set(spec.chance) <= set(spec.metrics), spec.name
    assert tasks.chance_level("mmlu", "acc") == 0.25 and tasks.chance_level("cola", "mcc") == 0.0
    # a toy task's or a user's own task's chance is unknown: the law estimates it from the data
    assert tasks.chance_level("toy_mc", "acc") is None and tasks.chance_level("my_task", "acc") is None


def test_gold_and_shot_target_come_from_the_declared_answer_column():
    csqa, cola, gsm8k = (tasks.get_task(t) for t in ("commonsense_qa", "cola", "gsm8k"))
    assert csqa.doc_to_gold({"answerKey": "C"}) == 2 and csqa.doc_to_target({"answerKey": "C"}) == "C"
    # CSQA's test split is unlabeled: no gold index, and a shot of it would show its bare text
    assert csqa.doc_to_gold({"answerKey": ""}) == -1 and csqa.doc_to_target({"answerKey": ""}) == ""
    assert cola.doc_to_gold({"label": 1}) == 1 and cola.doc_to_target({"label": 1}) == "yes"
    assert gsm8k.doc_to_gold({"answer": "2 + 2 = 4\n#### 4"}) == gsm8k.doc_to_target({"answer": "2 + 2 = 4\n#### 4"})
