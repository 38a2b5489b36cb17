"""Benchmark records from local original-release files, hub-format files, or the hub itself.

Every loader returns plain ``dict`` records in the *hub's* column layout (the layout of cais/mmlu,
tau/commonsense_qa, nyu-mll/glue cola and openai/gsm8k). That choice is what makes prompts
harness-identical whatever the source: lm-evaluation-harness renders its templates from exactly these
columns, and its few-shot sampler excludes the evaluated example by dict equality on them.

Sources:
- local original releases under a data dir (``--data-dir`` or env ``EMERGENCE_DATA``), formats as in
  each folder's PROVENANCE.md;
- hub-format files (``.parquet`` / ``.jsonl`` / ``.json`` in the hub's columns), e.g. a
  ``datasets``-exported split;
- the hub via ``datasets.load_dataset`` (online only; never used by tests).

Malformed input raises :class:`UserError` naming the file and row (1-based line/row number).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from emergence.errors import UserError

Record = dict[str, Any]

TASKS = ("mmlu", "commonsense_qa", "cola", "gsm8k")
ENV_DATA_DIR = "EMERGENCE_DATA"
_LETTERS = ("A", "B", "C", "D")

# hub id, hub config name (MMLU: the subject, filled in per call)
HUB_IDS: dict[str, tuple[str, str | None]] = {
    "mmlu": ("cais/mmlu", None),
    "commonsense_qa": ("tau/commonsense_qa", None),
    "cola": ("nyu-mll/glue", "cola"),
    "gsm8k": ("openai/gsm8k", "main"),
}
# split name (hub naming) -> file(s) relative to the task's folder in the data dir
_LOCAL_FILES: dict[str, dict[str, tuple[str, ...]]] = {
    "commonsense_qa": {
        "train": ("commonsenseqa/train_rand_split.jsonl",),
        "validation": ("commonsenseqa/dev_rand_split.jsonl",),
        "test": ("commonsenseqa/test_rand_split_no_answers.jsonl",),
    },
    # GLUE's CoLA dev (1043) is the in-domain dev followed by the out-of-domain dev.
    "cola": {
        "train": ("cola/in_domain_train.tsv",),
        "validation": ("cola/in_domain_dev.tsv", "cola/out_of_domain_dev.tsv"),
    },
    "gsm8k": {"train": ("gsm8k/train.jsonl",), "test": ("gsm8k/test.jsonl",)},
}
_MMLU_SPLIT_DIRS = {"dev": "dev", "validation": "val", "test": "test"}


# Tasks registered from elsewhere (the toy world, emergence.data.toy.registry): name -> loader(split, data_dir).
_REGISTERED: dict[str, Callable[[str, str | os.PathLike | None], list[Record]]] = {}


def register_loader(task: str, loader: Callable[[str, str | os.PathLike | None], list[Record]]) -> None:
    """Make ``task``'s records come from ``loader(split, data_dir)`` (generated or local files)."""
    _REGISTERED[task] = loader


def registered_loaders() -> dict[str, Callable[[str, str | os.PathLike | None], list[Record]]]:
    """The registered loaders; the toy world registers itself on first use."""
    if not _REGISTERED:
        import emergence.data.toy.registry  # noqa: F401  (registers toy_mc, toy_yesno, toy_math)
    return _REGISTERED


def check_task(task: str) -> str:
    if task not in TASKS and task not in registered_loaders():
        known = [*TASKS, *registered_loaders()]
        raise UserError(f"unknown task {task!r}; known tasks: {', '.join(known)}")
    return task


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The benchmarks folder: the explicit argument, else ``$EMERGENCE_DATA``; never a guessed path."""
    if data_dir is None:
        data_dir = os.environ.get(ENV_DATA_DIR) or None
    if data_dir is None:
        raise UserError(
            f"no benchmark data dir: pass --data-dir or set {ENV_DATA_DIR} to a folder of the original "
            "releases (mmlu/, commonsenseqa/, cola/, gsm8k/)"
        )
    path = Path(data_dir)
    if not path.is_dir():
        raise UserError(f"benchmark data dir not found: {path}")
    return path


# ----------------------------------------------------------------------------- local originals


def mmlu_subjects(data_dir: str | os.PathLike | None = None, split: str = "test") -> list[str]:
    """Subjects present for ``split`` in the local MMLU release, sorted (file names ``<subject>_<split>.csv``)."""
    folder = resolve_data_dir(data_dir) / "mmlu" / _mmlu_split_dir(split)
    if not folder.is_dir():
        raise UserError(f"MMLU split folder not found: {folder}")
    suffix = f"_{_mmlu_split_dir(split)}.csv"
    return sorted(p.name[: -len(suffix)] for p in folder.glob(f"*{suffix}"))


def _mmlu_split_dir(split: str) -> str:
    if split not in _MMLU_SPLIT_DIRS:
        raise UserError(f"unknown MMLU split {split!r}; known: {', '.join(_MMLU_SPLIT_DIRS)}")
    return _MMLU_SPLIT_DIRS[split]


def read_mmlu_csv(path: Path, subject: str) -> list[Record]:
    """One header-less MMLU CSV (question, A, B, C, D, answer letter) as cais/mmlu records."""
    records = []
    with _open(path, newline="") as f:
        for row_no, row in enumerate(csv.reader(f), start=1):
            if len(row) != 6:
                raise UserError(f"{path}: row {row_no}: expected 6 columns, found {len(row)}")
            if row[5] not in _LETTERS:
                raise UserError(f"{path}: row {row_no}: answer {row[5]!r} is not one of A, B, C, D")
            records.append(_mmlu_record(row[0], subject, row[1:5], _LETTERS.index(row[5])))
    return records


def _mmlu_record(question: str, subject: str, choices: list[str], answer: int) -> Record:
    return {"question": question, "subject": subject, "choices": choices, "answer": answer}


def load_mmlu_local(
    split: str, data_dir: str | os.PathLike | None = None, subjects: Iterable[str] | None = None
) -> list[Record]:
    """MMLU records for ``split`` (dev / validation / test), subjects in sorted order, rows in file order."""
    root = resolve_data_dir(data_dir)
    folder = _mmlu_split_dir(split)
    subjects = list(subjects) if subjects is not None else mmlu_subjects(root, split)
    records = []
    for subject in subjects:
        path = root / "mmlu" / folder / f"{subject}_{folder}.csv"
        if not path.is_file():
            raise UserError(f"unknown MMLU subject {subject!r}: {path} not found")
        records += read_mmlu_csv(path, subject)
    return records


def read_csqa_jsonl(path: Path) -> list[Record]:
    """Original CommonsenseQA jsonl → tau/commonsense_qa records (test rows get answerKey "")."""
    records = []
    for row_no, row in _jsonl_rows(path):
        try:
            q = row["question"]
            choices = q["choices"]
            labels, texts = [str(c["label"]) for c in choices], [str(c["text"]) for c in choices]
            record = _csqa_record(
                row["id"], q["stem"], q.get("question_concept", ""), labels, texts, row.get("answerKey")
            )
        except (KeyError, TypeError) as e:
            raise UserError(f"{path}: row {row_no}: missing field {e}") from None
        _check_csqa(record, path, row_no)
        records.append(record)
    return records


def _csqa_record(id_: Any, stem: Any, concept: Any, labels: list[str], texts: list[str], key: Any) -> Record:
    return {
        "id": str(id_),
        "question": str(stem),
        "question_concept": str(concept),
        "choices": {"label": labels, "text": texts},
        "answerKey": str(key or ""),
    }


def _check_csqa(record: Record, path: Path | str, row_no: int) -> None:
    if record["choices"]["label"] != ["A", "B", "C", "D", "E"]:
        raise UserError(
            f"{path}: row {row_no}: expected choice labels A-E, found {record['choices']['label']}"
        )
    if record["answerKey"] not in ("", "A", "B", "C", "D", "E"):
        raise UserError(f"{path}: row {row_no}: answerKey {record['answerKey']!r} is not one of A-E")


def read_cola_tsv(path: Path, start_idx: int = 0) -> list[Record]:
    """Raw CoLA tsv (source, label, original mark, sentence; no header) → glue/cola records."""
    records = []
    with _open(path, newline="") as f:
        for row_no, line in enumerate(f, start=1):
            cols = line.rstrip("\r\n").split("\t")
            if len(cols) != 4:
                raise UserError(f"{path}: row {row_no}: expected 4 tab-separated columns, found {len(cols)}")
            if cols[1] not in ("0", "1"):
                raise UserError(f"{path}: row {row_no}: label {cols[1]!r} is not 0 or 1")
            records.append({"sentence": cols[3], "label": int(cols[1]), "idx": start_idx + len(records)})
    return records


def read_gsm8k_jsonl(path: Path) -> list[Record]:
    """GSM8K jsonl ({question, answer}) → openai/gsm8k records."""
    return [_gsm8k_record(row, path, row_no) for row_no, row in _jsonl_rows(path)]


def _gsm8k_record(row: Any, path: Path | str, row_no: int) -> Record:
    if (
        not isinstance(row, dict)
        or not isinstance(row.get("question"), str)
        or not isinstance(row.get("answer"), str)
    ):
        raise UserError(f"{path}: row {row_no}: expected string fields 'question' and 'answer'")
    return {"question": row["question"], "answer": row["answer"]}


def load_local(
    task: str, split: str, data_dir: str | os.PathLike | None = None, subjects: Iterable[str] | None = None
) -> list[Record]:
    """Records of ``task``/``split`` from the original release files under the data dir."""
    check_task(task)
    if task == "mmlu":
        return load_mmlu_local(split, data_dir, subjects)
    root = resolve_data_dir(data_dir)
    files = _LOCAL_FILES[task]
    if split not in files:
        raise UserError(f"task {task} has no local split {split!r}; known: {', '.join(files)}")
    records: list[Record] = []
    for rel in files[split]:
        path = root / rel
        if not path.is_file():
            raise UserError(f"{task} file not found: {path}")
        if task == "commonsense_qa":
            records += read_csqa_jsonl(path)
        elif task == "cola":
            records += read_cola_tsv(path, start_idx=len(records))
        else:
            records += read_gsm8k_jsonl(path)
    return records


def load_train(task: str, data_dir: str | os.PathLike | None = None) -> tuple[list[Record], str]:
    """Training records for finetuning, and a one-line note of what was used.

    MMLU has no training split in the local release (its ``auxiliary_train`` was left out); when an
    ``mmlu/auxiliary_train`` folder is present its CSVs are used, otherwise dev + validation of all
    subjects (the few-shot pool and the model-selection split; the test split is never trained on).
    """
    check_task(task)
    if task in _REGISTERED:
        return _REGISTERED[task]("train", data_dir), f"{task} train split"
    if task != "mmlu":
        return load_local(task, "train", data_dir), f"{task} train split"
    root = resolve_data_dir(data_dir)
    aux = root / "mmlu" / "auxiliary_train"
    if aux.is_dir():
        records = []
        for path in sorted(aux.glob("*.csv")):
            records += read_mmlu_csv(path, subject="")
        return records, "mmlu auxiliary_train"
    records = load_mmlu_local("dev", root) + load_mmlu_local("validation", root)
    return records, "mmlu dev + validation (no auxiliary_train in the data dir)"


# ----------------------------------------------------------------------------- hub layout


def normalize_hub_record(task: str, row: dict[str, Any], where: str = "<hub>", row_no: int = 0) -> Record:
    """A record in the hub's columns, with array-likes turned into lists and extra columns dropped."""
    check_task(task)
    try:
        if task == "mmlu":
            choices = [str(c) for c in _as_list(row["choices"])]
            if len(choices) != 4:
                raise UserError(f"{where}: row {row_no}: expected 4 choices, found {len(choices)}")
            answer = int(row["answer"])
            if not 0 <= answer < 4:
                raise UserError(f"{where}: row {row_no}: answer {answer} is not in 0..3")
            return _mmlu_record(str(row["question"]), str(row["subject"]), choices, answer)
        if task == "commonsense_qa":
            ch = row["choices"]
            labels, texts = ([str(x) for x in _as_list(ch[k])] for k in ("label", "text"))
            record = _csqa_record(
                row["id"],
                row["question"],
                row.get("question_concept", ""),
                labels,
                texts,
                row.get("answerKey"),
            )
            _check_csqa(record, where, row_no)
            return record
        if task == "cola":
            label = int(row["label"])
            if label not in (0, 1):
                raise UserError(f"{where}: row {row_no}: label {label} is not 0 or 1")
            return {"sentence": str(row["sentence"]), "label": label, "idx": int(row["idx"])}
        return _gsm8k_record(dict(row), where, row_no)
    except KeyError as e:
        raise UserError(f"{where}: row {row_no}: missing column {e}") from None
    except (TypeError, ValueError) as e:
        raise UserError(f"{where}: row {row_no}: bad value ({e})") from None


def load_hub_file(task: str, path: str | os.PathLike) -> list[Record]:
    """Records from a hub-format file: ``.parquet`` or ``.jsonl``/``.json`` (one object per line)."""
    check_task(task)
    path = Path(path)
    if not path.is_file():
        raise UserError(f"hub-format file not found: {path}")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows = list(enumerate(pq.read_table(path).to_pylist(), start=1))
        except Exception as e:  # pyarrow raises several types for a corrupt file
            raise UserError(f"{path}: not a readable parquet file ({type(e).__name__})") from None
    elif path.suffix in (".jsonl", ".json"):
        rows = list(_jsonl_rows(path))
    else:
        raise UserError(f"{path}: unsupported hub-format file type {path.suffix!r} (use .parquet or .jsonl)")
    return [normalize_hub_record(task, row, str(path), row_no) for row_no, row in rows]


def load_hub(task: str, split: str, subject: str | None = None) -> list[Record]:
    """Records straight from the hub through ``datasets`` (needs network; MMLU: one subject or "all")."""
    import datasets  # heavy; only on this path

    check_task(task)
    hub_id, config = HUB_IDS[task]
    if task == "mmlu":
        config = subject or "all"
    try:
        ds = datasets.load_dataset(hub_id, config, split=split)
    except Exception as e:  # network, unknown split, offline mode ...
        raise UserError(
            f"could not load {hub_id} ({config}) split {split!r} from the hub: {type(e).__name__}"
        ) from None
    return [normalize_hub_record(task, row, hub_id, i) for i, row in enumerate(ds, start=1)]


# ----------------------------------------------------------------------------- one entry point


def load_split(
    task: str,
    split: str,
    *,
    source: str | os.PathLike = "local",
    data_dir: str | os.PathLike | None = None,
    subjects: Iterable[str] | None = None,
) -> list[Record]:
    """Records of one split, whatever the source; the same records for the same data.

    ``source``: ``"local"`` (original release files under the data dir), ``"hub"`` (``datasets``,
    online), or a folder of hub-format files named ``<split>.parquet`` or ``<split>.jsonl``.
    MMLU records come grouped by subject in ``subjects`` order (default: all, sorted), rows in file order.
    """
    check_task(task)
    if task in _REGISTERED:
        return _REGISTERED[task](split, data_dir)
    subjects = list(subjects) if subjects is not None else None
    if source == "local":
        return load_local(task, split, data_dir, subjects)
    if source == "hub":
        if task != "mmlu":
            return load_hub(task, split)
        if subjects is None:
            return _group_by_subject(load_hub(task, split, "all"), None)
        return [r for s in subjects for r in load_hub(task, split, s)]
    folder = Path(source)
    if not folder.is_dir():
        raise UserError(f"data source {str(source)!r} is neither 'local', 'hub' nor a folder")
    for suffix in (".parquet", ".jsonl"):
        path = folder / f"{split}{suffix}"
        if path.is_file():
            records = load_hub_file(task, path)
            return _group_by_subject(records, subjects) if task == "mmlu" else records
    raise UserError(f"no {split}.parquet or {split}.jsonl in {folder}")


def _group_by_subject(records: list[Record], subjects: list[str] | None) -> list[Record]:
    by_subject: dict[str, list[Record]] = {}
    for r in records:
        by_subject.setdefault(r["subject"], []).append(r)
    order = subjects if subjects is not None else sorted(by_subject)
    unknown = [s for s in order if s not in by_subject]
    if unknown:
        raise UserError(f"unknown MMLU subject {unknown[0]!r}: no rows for it in this source")
    return [r for s in order for r in by_subject[s]]


# ----------------------------------------------------------------------------- helpers


def _open(path: Path, newline: str | None = None):
    try:
        return open(path, encoding="utf-8", newline=newline)
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None


def _jsonl_rows(path: Path) -> Iterable[tuple[int, Any]]:
    with _open(path) as f:
        for row_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield row_no, json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}: row {row_no}: invalid JSON ({e.msg})") from None


def _as_list(value: Any) -> list[Any]:
    return list(value.tolist() if hasattr(value, "tolist") else value)
