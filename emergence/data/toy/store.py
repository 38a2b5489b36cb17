"""Toy world files on disk: generated once from the config, then read like any local dataset.

A toy directory holds::

    world.json                  the config and every entity (for readers; loading needs only the config)
    tasks/<task>/<split>.jsonl  the task records
    tokenizer.json              the BPE trained on the corpus
    corpus_train.npy            the pretraining token stream (documents separated by <|endoftext|>)
    corpus_heldout.npy          held-out documents of the same mix (pretraining loss)
    heldout.jsonl               those documents as text, for ``emergence.eval.pretrain_loss``

Tasks and corpus are generated separately and lazily (evaluating a toy task needs only the task
files), each file atomically. The default directory is ``$EMERGENCE_TOY_DIR`` or
``~/.cache/emergence/toy/<key>``, where the key names the config, so two configs never share files.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emergence.config import from_dict
from emergence.data.sources import jsonl_rows
from emergence.data.toy import corpus, tokenizer
from emergence.data.toy.tasks import TOY_TASKS, task_docs
from emergence.data.toy.world import SPLITS, WorldConfig, build_world
from emergence.errors import UserError
from emergence.fileio import atomic_write, read_json_object, write_text

WORLD_FILE = "world.json"
TOKENIZER_FILE = "tokenizer.json"
TRAIN_TOKENS = "corpus_train.npy"
HELDOUT_TOKENS = "corpus_heldout.npy"
HELDOUT_TEXT = "heldout.jsonl"  # the same held-out documents as text ({"text": ...} per line)
ENV_TOY_DIR = "EMERGENCE_TOY_DIR"
FORMAT_VERSION = 1


def default_dir(config: WorldConfig) -> Path:
    raw = json.dumps({"v": FORMAT_VERSION, **config.to_dict()}, sort_keys=True)
    root = os.environ.get(ENV_TOY_DIR) or Path.home() / ".cache" / "emergence" / "toy"
    return Path(root) / f"seed{config.seed}-{hashlib.sha256(raw.encode()).hexdigest()[:10]}"


def is_toy_dir(path: str | os.PathLike | None) -> bool:
    return path is not None and (Path(path) / WORLD_FILE).is_file()


def read_config(directory: str | os.PathLike) -> WorldConfig:
    path = Path(directory) / WORLD_FILE
    raw = read_json_object(path, "toy world file")
    return from_dict(WorldConfig, raw.get("config") or {}, source=str(path))


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, text)


def _write_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda handle: np.save(handle, array, allow_pickle=False), binary=True)


def ensure_tasks(config: WorldConfig, directory: str | os.PathLike | None = None) -> Path:
    """The toy directory with world.json and every task split written (generated if missing)."""
    out = Path(directory) if directory is not None else default_dir(config)
    if is_toy_dir(out):
        existing = read_config(out)
        if existing != config:
            raise UserError(f"{out}: holds a toy world with another config; choose another directory")
        if all((out / "tasks" / t / f"{s}.jsonl").is_file() for t in TOY_TASKS for s in SPLITS):
            return out
    world = build_world(config)
    for task in TOY_TASKS:
        for split in SPLITS:
            text = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in task_docs(world, task, split))
            _write_text(out / "tasks" / task / f"{split}.jsonl", text)
    entities = [{"name": e.name, **e.attrs, "coins": e.coins, "split": e.split} for e in world.entities]
    _write_text(out / WORLD_FILE, json.dumps({"config": config.to_dict(), "entities": entities}, indent=1))
    return out


def ensure_corpus(config: WorldConfig, directory: str | os.PathLike | None = None) -> Path:
    """Also the tokenizer and the tokenized corpus (generated if missing)."""
    out = ensure_tasks(config, directory)
    if all((out / f).is_file() for f in (TOKENIZER_FILE, TRAIN_TOKENS, HELDOUT_TOKENS, HELDOUT_TEXT)):
        return out
    world = build_world(config)
    n_train = max(1, config.corpus_tokens_hint // corpus.AVG_TOKENS_PER_DOC)
    train_docs = list(corpus.documents(world, n_train, "train"))
    backend = tokenizer.train_bpe(train_docs[:20_000], config.vocab_size)
    tok = tokenizer.wrap(backend)
    eos = tok.eos_token_ids[0]
    heldout = list(corpus.documents(world, config.heldout_docs, "heldout"))
    _write_text(out / HELDOUT_TEXT, "".join(json.dumps({"text": d}) + "\n" for d in heldout))
    for docs, name in ((train_docs, TRAIN_TOKENS), (heldout, HELDOUT_TOKENS)):
        ids = [i for enc in tok.encode_batch(docs) for i in (*enc, eos)]
        _write_npy(out / name, np.asarray(ids, np.int32))
    _write_text(out / TOKENIZER_FILE, backend.to_str())  # last: its presence marks a complete corpus
    return out


def load_tokens(directory: str | os.PathLike, name: str) -> np.ndarray:
    return np.load(Path(directory) / name, allow_pickle=False)


@dataclass(frozen=True)
class ToyWorld:
    """A toy task's loader (what :class:`~emergence.data.sources.Release` is for a real task): its
    records come from the toy directory ``data_dir``, else from the default world, generated on first
    use. ``source`` does not apply: a toy world is generated, never downloaded."""

    group_key: str | None = None

    def load(self, task: str, split: str, *, source=None, data_dir=None, groups=None) -> list[dict]:
        if split not in SPLITS:
            raise UserError(f"toy task {task} has no split {split!r}; known: {', '.join(SPLITS)}")
        if is_toy_dir(data_dir):
            directory = Path(data_dir)
            if not (directory / "tasks" / task / f"{split}.jsonl").is_file():  # complete it from its own config
                ensure_tasks(read_config(directory), directory)
        else:
            directory = ensure_tasks(WorldConfig())
        return [row for _, row in jsonl_rows(directory / "tasks" / task / f"{split}.jsonl")]

    def train(self, task: str, data_dir: str | os.PathLike | None = None) -> tuple[list[dict], str]:
        return self.load(task, "train", data_dir=data_dir), f"{task} train split"
