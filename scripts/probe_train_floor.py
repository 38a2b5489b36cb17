"""How fast can a LoRA step be? A SmolLM2 training step with nothing trainable but the first layer's
input norm, against the LoRA step of ``make bench-train``.

Training only ``layers[0].input_norm.weight`` makes XLA run the forward pass and the whole backward
pass through the activations (every layer's input gradient), with no weight-gradient GEMMs and no
adapters: the work a LoRA step cannot avoid. The gap between the two is what the adapters cost.
The model, rows, shapes and optimizer are ``scripts/bench_train.py``'s (seq 256, batch 8, fp32, AdamW).

    .venv/bin/python scripts/bench_train.py --steps 3       # writes build/bench_train/ first
    .venv/bin/python scripts/probe_train_floor.py floor      # then each side in its own process
    .venv/bin/python scripts/probe_train_floor.py lora

Prints the wall time of steps 0-3 (step 0 compiles).
"""

from __future__ import annotations

import sys
import time

import jax
from bench_train import WORK, ours_model, ours_trainer
from flax import nnx


class FloorParam(nnx.Param):
    """The one trainable array of the floor run."""


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "floor"
    model, trainable = ours_model("lora" if mode == "lora" else "full", WORK / "smollm2-hf")
    if mode != "lora":
        norm = model.layers[0].input_norm
        norm.weight = FloorParam(norm.weight[...])
        trainable = FloorParam
    trainer, batches = ours_trainer(model, trainable, WORK / "rows.npy")
    for step, batch in enumerate(batches):
        start = time.perf_counter()
        jax.block_until_ready(trainer.step(batch, step)["loss"])
        print(f"{mode} step {step}: {time.perf_counter() - start:.2f} s", flush=True)


if __name__ == "__main__":
    main()
