"""Benchmark records from local original-release files, hub-format files, or the hub itself.

Every loader returns plain ``dict`` records in the *hub's* column layout (cais/mmlu,
tau/commonsense_qa, nyu-mll/glue cola, openai/gsm8k): lm-evaluation-harness renders its templates
from exactly these columns, and excludes the evaluated example from its shots by dict equality on
them, so prompts are harness-identical whatever the source. A :class:`Release` says where one
benchmark's records are; the readers below turn one file or hub row into records, and malformed
input raises :class:`UserError` naming the file and (1-based) row.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emergence.data.templates import LETTERS, Record
from emergence.errors import UserError

ENV_DATA_DIR = "EMERGENCE_DATA"


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


@dataclass(frozen=True)
class Release:
    """Where one benchmark's records come from: its original files under the data dir, its hub
    dataset, and how a file or a hub row becomes records in the hub's columns.

    A release with a ``group_key`` (MMLU: ``subject``) comes in groups: a file name holding
    ``{group}`` is read once per group, and the hub holds one config per group (``all``: every one).
    Records come grouped in the order asked for (default: every group, sorted), rows in file order.
    """

    hub_id: str
    hub_config: str | None
    files: dict[str, tuple[str, ...]]  # split (hub naming) -> files under the data dir, read in order
    read: Callable[[Path, int, str], list[Record]]  # (file, records before it, group) -> records
    from_hub: Callable[[Any, str, int], Record]  # (hub row, where, row number) -> checked record
    group_key: str | None = None
    train_splits: tuple[str, ...] = ("train",)  # what finetuning trains on (never the test split)
    extra_train: str | None = None  # a glob of training files used instead when present

    def load(
        self,
        task: str,
        split: str,
        *,
        source: str | os.PathLike = "local",
        data_dir: str | os.PathLike | None = None,
        groups: Iterable[str] | None = None,
    ) -> list[Record]:
        """Records of one split from ``source``: ``"local"`` (original release files under the data
        dir), ``"hub"`` (``datasets``, online), or a folder of ``<split>.parquet`` / ``<split>.jsonl``."""
        groups = list(groups) if groups is not None else None
        if source == "local":
            return self._local(task, split, resolve_data_dir(data_dir), groups)
        if source == "hub":
            if self.group_key is None:
                return self._hub(split)
            if groups is None:
                return self._grouped(task, self._hub(split, "all"), None)
            return [r for g in groups for r in self._hub(split, g)]
        folder = Path(source)
        if not folder.is_dir():
            raise UserError(f"data source {str(source)!r} is neither 'local', 'hub' nor a folder")
        for suffix in (".parquet", ".jsonl"):
            path = folder / f"{split}{suffix}"
            if path.is_file():
                records = self.load_hub_file(path)
                return self._grouped(task, records, groups) if self.group_key else records
        raise UserError(f"no {split}.parquet or {split}.jsonl in {folder}")

    def train(self, task: str, data_dir: str | os.PathLike | None = None) -> tuple[list[Record], str]:
        """Training records for finetuning, and a one-line note of what was used. MMLU has no local
        training split: the CSVs of ``extra_train`` when present, else dev + validation of every
        subject (never the test split)."""
        root = resolve_data_dir(data_dir)
        extra = sorted(root.glob(self.extra_train)) if self.extra_train else []
        extra_name = Path(self.extra_train or "").parent.name
        if extra:
            return [r for path in extra for r in self.read(path, 0, "")], f"{task} {extra_name}"
        records = [r for split in self.train_splits for r in self._local(task, split, root, None)]
        note = " + ".join(self.train_splits) + (" split" if len(self.train_splits) == 1 else "")
        return records, f"{task} {note}" + (f" (no {extra_name} in the data dir)" if self.extra_train else "")

    def groups(self, split: str, data_dir: str | os.PathLike | None = None) -> list[str]:
        """The groups (MMLU subjects) of ``split`` in the local release, sorted (from the file names)."""
        head, tail = self.files[split][0].split("{group}")
        folder = resolve_data_dir(data_dir) / head
        if not folder.is_dir():
            raise UserError(f"split folder not found: {folder}")
        return sorted(p.name[: -len(tail)] for p in folder.glob(f"*{tail}"))

    def load_hub_file(self, path: str | os.PathLike) -> list[Record]:
        """Records from a hub-format file: ``.parquet`` or ``.jsonl``/``.json`` (one object per line)."""
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
            rows = list(jsonl_rows(path))
        else:
            raise UserError(
                f"{path}: unsupported hub-format file type {path.suffix!r} (use .parquet or .jsonl)"
            )
        return [self._from_hub(row, str(path), row_no) for row_no, row in rows]

    def _local(self, task: str, split: str, root: Path, groups: Sequence[str] | None) -> list[Record]:
        if split not in self.files:
            raise UserError(f"task {task} has no local split {split!r}; known: {', '.join(self.files)}")
        records: list[Record] = []
        for name in self.files[split]:
            in_groups = "{group}" in name
            for group in (groups if groups is not None else self.groups(split, root)) if in_groups else ("",):
                path = root / name.format(group=group)
                if not path.is_file() and in_groups:
                    raise UserError(f"unknown {task} {self.group_key} {group!r}: {path} not found")
                if not path.is_file():
                    raise UserError(f"{task} file not found: {path}")
                records += self.read(path, len(records), group)
        return records

    def _hub(self, split: str, group: str | None = None) -> list[Record]:
        """Records straight from the hub through ``datasets`` (needs network)."""
        import datasets  # heavy; only on this path

        config = group if self.group_key else self.hub_config
        try:
            ds = datasets.load_dataset(self.hub_id, config, split=split)
        except Exception as e:  # network, unknown split, offline mode ...
            raise UserError(
                f"could not load {self.hub_id} ({config}) split {split!r} from the hub: {type(e).__name__}"
            ) from None
        return [self._from_hub(row, self.hub_id, i) for i, row in enumerate(ds, start=1)]

    def _from_hub(self, row: Any, where: str, row_no: int) -> Record:
        try:
            return self.from_hub(row, where, row_no)
        except KeyError as e:
            raise UserError(f"{where}: row {row_no}: missing column {e}") from None
        except (TypeError, ValueError) as e:
            raise UserError(f"{where}: row {row_no}: bad value ({e})") from None

    def _grouped(self, task: str, records: list[Record], groups: list[str] | None) -> list[Record]:
        by_group: dict[str, list[Record]] = {}
        for r in records:
            by_group.setdefault(r[self.group_key], []).append(r)
        order = groups if groups is not None else sorted(by_group)
        unknown = [g for g in order if g not in by_group]
        if unknown:
            raise UserError(f"unknown {task} {self.group_key} {unknown[0]!r}: no rows for it in this source")
        return [r for g in order for r in by_group[g]]


# ----------------------------------------------------------------------------- one row -> one record


def mmlu_row(row: Any, where: str, row_no: int) -> Record:
    """A cais/mmlu row (question, subject, choices, answer index), checked."""
    choices = [str(c) for c in _as_list(row["choices"])]
    if len(choices) != 4:
        raise UserError(f"{where}: row {row_no}: expected 4 choices, found {len(choices)}")
    answer = int(row["answer"])
    if not 0 <= answer < 4:
        raise UserError(f"{where}: row {row_no}: answer {answer} is not in 0..3")
    question, subject = str(row["question"]), str(row["subject"])
    return {"question": question, "subject": subject, "choices": choices, "answer": answer}


def csqa_row(row: Any, where: str, row_no: int) -> Record:
    """A tau/commonsense_qa row, checked (test rows have answerKey "")."""
    labels, texts = ([str(x) for x in _as_list(row["choices"][k])] for k in ("label", "text"))
    if labels != ["A", "B", "C", "D", "E"]:
        raise UserError(f"{where}: row {row_no}: expected choice labels A-E, found {labels}")
    key = str(row.get("answerKey") or "")
    if key not in ("", "A", "B", "C", "D", "E"):
        raise UserError(f"{where}: row {row_no}: answerKey {key!r} is not one of A-E")
    return {
        "id": str(row["id"]),
        "question": str(row["question"]),
        "question_concept": str(row.get("question_concept", "")),
        "choices": {"label": labels, "text": texts},
        "answerKey": key,
    }


def cola_row(row: Any, where: str, row_no: int) -> Record:
    """A glue/cola row (sentence, label 0/1, idx), checked."""
    label = int(row["label"])
    if label not in (0, 1):
        raise UserError(f"{where}: row {row_no}: label {label} is not 0 or 1")
    return {"sentence": str(row["sentence"]), "label": label, "idx": int(row["idx"])}


def gsm8k_row(row: Any, where: str, row_no: int) -> Record:
    """An openai/gsm8k row (question, answer), checked."""
    if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in ("question", "answer")):
        raise UserError(f"{where}: row {row_no}: expected string fields 'question' and 'answer'")
    return {"question": row["question"], "answer": row["answer"]}


# ----------------------------------------------------------------------------- original release files


def read_mmlu_csv(path: Path, start: int = 0, subject: str = "") -> list[Record]:
    """One header-less MMLU CSV (question, A, B, C, D, answer letter) as cais/mmlu records."""
    records = []
    with _open(path, newline="") as f:
        for row_no, row in enumerate(csv.reader(f), start=1):
            if len(row) != 6:
                raise UserError(f"{path}: row {row_no}: expected 6 columns, found {len(row)}")
            if row[5] not in LETTERS[:4]:
                raise UserError(f"{path}: row {row_no}: answer {row[5]!r} is not one of A, B, C, D")
            hub = dict(question=row[0], subject=subject, choices=row[1:5], answer=LETTERS.index(row[5]))
            records.append(mmlu_row(hub, str(path), row_no))
    return records


def read_csqa_jsonl(path: Path, start: int = 0, group: str = "") -> list[Record]:
    """Original CommonsenseQA jsonl → tau/commonsense_qa records (test rows get answerKey "")."""
    records = []
    for row_no, row in jsonl_rows(path):
        try:
            q = row["question"]
            hub = {
                "id": row["id"],
                "question": q["stem"],
                "question_concept": q.get("question_concept", ""),
                "choices": {k: [c[k] for c in q["choices"]] for k in ("label", "text")},
                "answerKey": row.get("answerKey"),
            }
        except (KeyError, TypeError) as e:
            raise UserError(f"{path}: row {row_no}: missing field {e}") from None
        records.append(csqa_row(hub, str(path), row_no))
    return records


def read_cola_tsv(path: Path, start: int = 0, group: str = "") -> list[Record]:
    """Raw CoLA tsv (source, label, original mark, sentence; no header) → glue/cola records, numbered
    from ``start`` (GLUE's validation is the in-domain dev followed by the out-of-domain dev)."""
    records = []
    with _open(path, newline="") as f:
        for row_no, line in enumerate(f, start=1):
            cols = line.rstrip("\r\n").split("\t")
            if len(cols) != 4:
                raise UserError(f"{path}: row {row_no}: expected 4 tab-separated columns, found {len(cols)}")
            if cols[1] not in ("0", "1"):
                raise UserError(f"{path}: row {row_no}: label {cols[1]!r} is not 0 or 1")
            records.append({"sentence": cols[3], "label": int(cols[1]), "idx": start + len(records)})
    return records


def read_gsm8k_jsonl(path: Path, start: int = 0, group: str = "") -> list[Record]:
    """GSM8K jsonl ({question, answer}) → openai/gsm8k records."""
    return [gsm8k_row(row, str(path), row_no) for row_no, row in jsonl_rows(path)]


def _open(path: Path, newline: str | None = None):
    try:
        return open(path, encoding="utf-8", newline=newline)
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None


def jsonl_rows(path: Path) -> Iterable[tuple[int, Any]]:
    """(line number, parsed object) of each non-blank line; a line that does not parse is a UserError."""
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
