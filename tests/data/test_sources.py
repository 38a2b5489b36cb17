"""Benchmark sources: original release files and hub-format files give the same records and prompts.

The hub-format files are written here, row by row, in the hub's column layout (cais/mmlu,
tau/commonsense_qa, nyu-mll/glue cola, openai/gsm8k) from the raw fixture files, so the test does
not go through the loader it checks.
"""

import csv
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emergence.data import sources, tasks
from emergence.errors import UserError

FIXTURE_DATA = Path(__file__).parents[1] / "fixtures" / "benchmarks"
REAL_DATA = Path(os.environ[sources.ENV_DATA_DIR]) if os.environ.get(sources.ENV_DATA_DIR) else None


# ----------------------------------------------------------------------------- hub rows, by hand


def _hub_rows(task: str, split: str) -> list[dict]:
    if task == "mmlu":
        folder = {"dev": "dev", "validation": "val", "test": "test"}[split]
        rows = []
        for subject in ("abstract_algebra", "us_foreign_policy"):
            with open(
                FIXTURE_DATA / "mmlu" / folder / f"{subject}_{folder}.csv", newline="", encoding="utf-8"
            ) as f:
                for q, a, b, c, d, ans in csv.reader(f):
                    rows.append(
                        {
                            "question": q,
                            "subject": subject,
                            "choices": [a, b, c, d],
                            "answer": "ABCD".index(ans),
                        }
                    )
        return rows
    if task == "commonsense_qa":
        name = {"train": "train_rand_split", "validation": "dev_rand_split"}[split]
        raw = [
            json.loads(x) for x in (FIXTURE_DATA / "commonsenseqa" / f"{name}.jsonl").read_text().splitlines()
        ]
        return [
            {
                "id": r["id"],
                "question": r["question"]["stem"],
                "question_concept": r["question"]["question_concept"],
                "choices": {
                    "label": [c["label"] for c in r["question"]["choices"]],
                    "text": [c["text"] for c in r["question"]["choices"]],
                },
                "answerKey": r["answerKey"],
            }
            for r in raw
        ]
    if task == "cola":
        files = {
            "train": ["in_domain_train.tsv"],
            "validation": ["in_domain_dev.tsv", "out_of_domain_dev.tsv"],
        }[split]
        lines = [line for name in files for line in (FIXTURE_DATA / "cola" / name).read_text().splitlines()]
        return [
            {"sentence": line.split("\t")[3], "label": int(line.split("\t")[1]), "idx": i}
            for i, line in enumerate(lines)
        ]
    raw = (FIXTURE_DATA / "gsm8k" / f"{split}.jsonl").read_text().splitlines()
    return [json.loads(x) for x in raw]


def _write(rows: list[dict], path: Path) -> None:
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


SPLITS = {
    "mmlu": ("test", "dev"),
    "commonsense_qa": ("validation", "train"),
    "cola": ("validation", "train"),
    "gsm8k": ("test", "train"),
}


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
@pytest.mark.parametrize("task", list(SPLITS))
def test_hub_format_files_give_the_same_records_and_prompts(task, suffix, tmp_path):
    for split in SPLITS[task]:
        _write(_hub_rows(task, split), tmp_path / f"{split}{suffix}")
    subjects = ["abstract_algebra", "us_foreign_policy"] if task == "mmlu" else None
    for split in SPLITS[task]:
        local = tasks.get_task(task).records(split, data_dir=FIXTURE_DATA, subjects=subjects)
        hub = tasks.get_task(task).records(split, source=tmp_path, subjects=subjects)
        assert hub == local and len(local) > 0
    spec = tasks.get_task(task)
    prompts = []
    for kwargs in ({"data_dir": FIXTURE_DATA}, {"source": tmp_path}):
        docs, fewshot = tasks.load_task_docs(spec, shots=2, subjects=subjects, **kwargs)
        prompts.append(
            [(r.context, r.continuations, r.gold) for r in tasks.build_requests(spec, docs, fewshot, shots=2)]
        )
    assert prompts[0] == prompts[1]


def test_hub_file_rows_are_checked_and_extra_columns_dropped(tmp_path):
    path = tmp_path / "test.jsonl"
    _write([{"question": "2+2?", "answer": "#### 4", "extra": 1}], path)
    assert tasks.get_task("gsm8k").loader.load_hub_file(path) == [{"question": "2+2?", "answer": "#### 4"}]
    _write(
        [
            {"question": "q", "subject": "s", "choices": ["a", "b", "c", "d"], "answer": 1},
            {"question": "q", "subject": "s", "choices": ["a"], "answer": 0},
        ],
        path,
    )
    with pytest.raises(UserError, match=r"test.jsonl: row 2: expected 4 choices, found 1"):
        tasks.get_task("mmlu").loader.load_hub_file(path)
    (tmp_path / "x.csv").write_text("question,answer\n", encoding="utf-8")
    with pytest.raises(UserError, match="unsupported hub-format file type '.csv'"):
        tasks.get_task("gsm8k").loader.load_hub_file(tmp_path / "x.csv")


# ----------------------------------------------------------------------------- local originals


def test_cola_validation_is_in_domain_dev_then_out_of_domain_dev():
    records = tasks.get_task("cola").records("validation", data_dir=FIXTURE_DATA)
    assert [r["idx"] for r in records] == list(range(5))
    assert records[0]["sentence"] == "The sailors rode the breeze clear of the rocks."
    assert records[3]["sentence"] == "Somebody just left - guess who."  # first out-of-domain row


def test_mmlu_records_are_grouped_by_subject_in_the_requested_order():
    records = tasks.get_task("mmlu").records(
        "test", data_dir=FIXTURE_DATA, subjects=["us_foreign_policy", "abstract_algebra"]
    )
    assert [r["subject"] for r in records] == ["us_foreign_policy"] * 4 + ["abstract_algebra"] * 4
    assert records[4]["choices"] == ["0", "4", "2", "6"] and records[4]["answer"] == 1
    assert tasks.get_task("mmlu").loader.groups("dev", FIXTURE_DATA) == [
        "abstract_algebra",
        "high_school_european_history",
        "us_foreign_policy",
    ]


def test_training_splits_for_finetuning():
    records, note = tasks.get_task("commonsense_qa").train_records(FIXTURE_DATA)
    assert len(records) == 60 and note == "commonsense_qa train split"
    records, note = tasks.get_task("mmlu").train_records(FIXTURE_DATA)
    assert len(records) == 3 * 5 + 3 * 3 and "dev + validation" in note


@pytest.mark.skipif(REAL_DATA is None, reason="full benchmark files not found: set EMERGENCE_DATA")
def test_real_data_has_the_documented_row_counts():
    counts = {
        ("mmlu", "test"): 14042,
        ("mmlu", "dev"): 285,
        ("mmlu", "validation"): 1531,
        ("commonsense_qa", "train"): 9741,
        ("commonsense_qa", "validation"): 1221,
        ("cola", "train"): 8551,
        ("cola", "validation"): 1043,
        ("gsm8k", "train"): 7473,
        ("gsm8k", "test"): 1319,
    }
    for (task, split), n in counts.items():
        assert len(tasks.get_task(task).records(split, data_dir=REAL_DATA)) == n, (task, split)


# ----------------------------------------------------------------------------- bad inputs


def test_unknown_task_is_a_user_error():
    with pytest.raises(
        UserError, match="unknown task 'squad'; known tasks: mmlu, commonsense_qa, cola, gsm8k, toy_mc"
    ):
        tasks.get_task("squad")


def test_missing_data_dir_is_a_user_error(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="benchmark data dir not found: .*nowhere"):
        tasks.get_task("gsm8k").records("test", data_dir=tmp_path / "nowhere")
    monkeypatch.delenv(sources.ENV_DATA_DIR, raising=False)
    with pytest.raises(UserError, match="pass --data-dir or set EMERGENCE_DATA"):
        tasks.get_task("gsm8k").records("test")
    monkeypatch.setenv(sources.ENV_DATA_DIR, str(FIXTURE_DATA))
    assert len(tasks.get_task("gsm8k").records("test")) == 3
    with pytest.raises(UserError, match=r"gsm8k file not found: .*gsm8k/test.jsonl"):
        tasks.get_task("gsm8k").records("test", data_dir=tmp_path)


def test_unknown_split_and_subject_are_user_errors():
    with pytest.raises(UserError, match="task cola has no local split 'test'"):
        tasks.get_task("cola").records("test", data_dir=FIXTURE_DATA)
    with pytest.raises(UserError, match="unknown mmlu subject 'astrology'"):
        tasks.get_task("mmlu").records("test", data_dir=FIXTURE_DATA, subjects=["astrology"])


@pytest.mark.parametrize(
    ("task", "rel", "content", "message"),
    [
        (
            "mmlu",
            "mmlu/test/abstract_algebra_test.csv",
            "q,a,b,c,d,A\nq,a,b,c,d,B\nq,a,b,c,D\n",
            r"row 3: expected 6 columns, found 5",
        ),
        (
            "mmlu",
            "mmlu/test/abstract_algebra_test.csv",
            "q,a,b,c,d,A\nq,a,b,c,d,F\n",
            r"row 2: answer 'F' is not one of A, B, C, D",
        ),
        (
            "commonsense_qa",
            "commonsenseqa/dev_rand_split.jsonl",
            '{"id": 1}\n',
            r"row 1: missing field 'question'",
        ),
        ("commonsense_qa", "commonsenseqa/dev_rand_split.jsonl", "\n{not json\n", r"row 2: invalid JSON"),
        (
            "cola",
            "cola/in_domain_dev.tsv",
            "gj04\t1\t\tFine.\ngj04\tyes\t\tBad.\n",
            r"row 2: label 'yes' is not 0 or 1",
        ),
        (
            "cola",
            "cola/in_domain_dev.tsv",
            "gj04\t1\tFine.\n",
            r"row 1: expected 4 tab-separated columns, found 3",
        ),
        (
            "gsm8k",
            "gsm8k/test.jsonl",
            '{"question": "q", "answer": "#### 1"}\n{"question": "q"}\n',
            r"row 2: expected string fields",
        ),
    ],
)
def test_malformed_rows_name_the_file_and_row(task, rel, content, message, tmp_path):
    path = tmp_path / rel
    path.parent.mkdir(parents=True)
    path.write_text(content, encoding="utf-8")
    (tmp_path / "cola" / "out_of_domain_dev.tsv").parent.mkdir(exist_ok=True)
    (tmp_path / "cola" / "out_of_domain_dev.tsv").write_text("", encoding="utf-8")
    split = {"mmlu": "test", "commonsense_qa": "validation", "cola": "validation", "gsm8k": "test"}[task]
    with pytest.raises(UserError, match=message) as e:
        tasks.get_task(task).records(
            split, data_dir=tmp_path, subjects=["abstract_algebra"] if task == "mmlu" else None
        )
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_hub_source_fails_cleanly_when_offline():
    # conftest sets HF_DATASETS_OFFLINE=1: the hub is unreachable, which must be one user-facing line
    with pytest.raises(UserError, match=r"could not load openai/gsm8k \(main\) split 'test' from the hub"):
        tasks.get_task("gsm8k").records("test", source="hub")


def test_source_that_is_not_a_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="neither 'local', 'hub' nor a folder"):
        tasks.get_task("gsm8k").records("test", source=str(tmp_path / "missing"))
    with pytest.raises(UserError, match="no test.parquet or test.jsonl in"):
        tasks.get_task("gsm8k").records("test", source=tmp_path)
