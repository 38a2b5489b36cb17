"""Does a toy checkpoint know `toy_mc`'s answer, and can it give the letter? Before and while finetuning.

`toy_mc` asks for a person's colour or pet as a letter. A checkpoint can fail it for two reasons:
it does not know the value, or it knows the value and cannot map it to its letter. Finetuning can
only teach the second. This probe scores, after the same 0-shot letter prompt, the four *values*
(" red", " blue", ...: the knowledge) and the four *letters* (the task), on the people of the
`train` split (what finetuning sees) and of the `test` split (what the task scores). With
`--finetune-steps` it finetunes the checkpoint on `toy_mc` as a sweep cell would and probes again
every `--every` steps (docs/toy-world.md, probe 10).

    .venv/bin/python scripts/toy_mc_recall.py runs/demo/ladder d64-l3/step_000800 d96-l3/step_001000
    .venv/bin/python scripts/toy_mc_recall.py runs/demo/ladder d64-l3/step_000800 \\
        --finetune-steps 120 --every 40 --budget 128 --lr 3e-4
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
from pathlib import Path

from emergence.data.tasks import Request
from emergence.data.templates import LETTERS
from emergence.data.toy import formats, store
from emergence.data.toy.tasks import mc_item
from emergence.data.toy.world import build_world
from emergence.eval.loglikelihood import score_requests
from emergence.models.registry import load_model
from emergence.train.config import FinetuneConfig, LoraConfig, OptimConfig
from emergence.train.finetune import run_finetune


def requests(world, split: str, answer: str) -> list[Request]:
    """The 0-shot letter prompt of every (person, task relation) of a split, scored on its options'
    values (``answer="value"``) or on their letters (``"letter"``); the gold index is the same."""
    rng = random.Random(0)  # draws option orders only in a world with shuffle_options
    out = []
    for entity in world.by_split[split]:
        for rel in world.config.task_relations:
            doc = mc_item(world, rng, rel, entity)
            words = doc["choices"] if answer == "value" else LETTERS[: len(doc["choices"])]
            out.append(
                Request(
                    "toy_mc_recall",
                    len(out),
                    formats.mc_text(doc),
                    doc["answer"],
                    tuple(f" {w}" for w in words),
                )
            )
    return out


def probe(loaded, world) -> dict[str, float]:
    """Accuracy of the value and of the letter on the train and test people."""
    accuracy = {}
    for split in ("train", "test"):
        for answer in ("value", "letter"):
            reqs = requests(world, split, answer)
            scores = score_requests(loaded.model, loaded.tokenizer, reqs)
            right = sum(
                max(range(4), key=lambda i: s.loglikelihoods[i]) == r.gold
                for s, r in zip(scores, reqs, strict=True)
            )
            accuracy[f"{split} {answer}"] = right / len(reqs)
    return accuracy


def shown(accuracy: dict[str, float]) -> str:
    return " | ".join(f"{key} {value:.2f}" for key, value in accuracy.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ladder", help="a pretrained ladder folder (holds world/)")
    parser.add_argument(
        "checkpoints", nargs="+", help="checkpoint folders inside the ladder, e.g. d64-l3/step_000800"
    )
    parser.add_argument(
        "--finetune-steps", type=int, default=0, help="finetune on toy_mc for this many steps (0: probe only)"
    )
    parser.add_argument("--every", type=int, default=40, help="probe every N finetuning steps")
    parser.add_argument("--budget", type=int, default=128)
    parser.add_argument("--subset-seed", type=int, default=0)
    parser.add_argument("--method", choices=("full", "lora"), default="full")
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument(
        "--lora-targets", nargs="+", default=None, help="LoRA target patterns (default: every projection)"
    )
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    ladder = Path(args.ladder)
    world = build_world(store.read_config(ladder / "world"))
    for name in args.checkpoints:
        base = load_model(str(ladder / name))
        if not args.finetune_steps:
            print(f"{name}: {shown(probe(base, world))}", flush=True)
            continue
        lora = LoraConfig(
            args.rank, 2.0 * args.rank, **({"targets": tuple(args.lora_targets)} if args.lora_targets else {})
        )
        cfg = FinetuneConfig(
            model=str(ladder / name),
            task="toy_mc",
            budget=args.budget,
            subset_seed=args.subset_seed,
            method=args.method,
            lora=lora,
            optim=OptimConfig(lr=args.lr),
            batch_size=args.batch_size,
            steps=args.finetune_steps,
            max_seq_len=128,
            data_dir=str(ladder / "world"),
            save_every=10**9,
            log_every=10**9,
        )
        out = Path(tempfile.mkdtemp(prefix="toy_mc_recall."))
        try:
            run_finetune(
                cfg,
                out / "run",
                loaded=base,
                evaluator=lambda loaded: probe(loaded, world),
                eval_every=args.every,
                on_eval=lambda line, name=name: print(f"{name} step {line['step']}: {shown(line['eval'])}"),
            )
        finally:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
