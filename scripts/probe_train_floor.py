"""How fast can a LoRA step be? A SmolLM2 training step with nothing trainable but the first layer's
input norm, against the LoRA step of ``make bench-train``.

Training only ``layers[0].input_norm.weight`` makes XLA run the forward pass and the whole backward
pass through the activations (every layer's input gradient), with no weight-gradient GEMMs and no
adapters: the work a LoRA step cannot avoid. The gap between the two is what the adapters cost.
Same rows, shapes and optimizer as ``scripts/bench_train.py`` (seq 256, batch 8, fp32, AdamW).

    .venv/bin/python scripts/bench_train.py --steps 3       # writes build/bench_train/ first
    .venv/bin/python scripts/probe_train_floor.py floor      # then each side in its own process
    .venv/bin/python scripts/probe_train_floor.py lora

Prints the wall time of steps 0-3 (step 0 compiles).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from emergence.models.registry import load_model
from emergence.train.config import LoraConfig, MeshConfig, OptimConfig
from emergence.train.examples import Example, make_batch
from emergence.train.lora import apply_lora
from emergence.train.mesh import build_mesh
from emergence.train.trainer import Trainer

WORK = Path(__file__).resolve().parents[1] / "build" / "bench_train"


class FloorParam(nnx.Param):
    """The one trainable array of the floor run."""


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "floor"
    rows = np.load(WORK / "rows.npy", allow_pickle=False)
    model = load_model(str(WORK / "smollm2-hf")).model
    if mode == "lora":
        model = apply_lora(model, LoraConfig(rank=8, alpha=16.0))
        trainable = nnx.LoRAParam
    else:
        norm = model.layers[0].input_norm
        norm.weight = FloorParam(norm.weight[...])
        trainable = FloorParam
    optim = OptimConfig(lr=1e-4, schedule="constant", warmup_ratio=0.0)
    trainer = Trainer(model, trainable, optim, len(rows), mesh=build_mesh(MeshConfig()))
    for step, step_rows in enumerate(rows):
        batch = make_batch([Example(r, 32) for r in step_rows], 1, len(step_rows))
        start = time.perf_counter()
        jax.block_until_ready(trainer.step(batch, step)["loss"])
        print(f"{mode} step {step}: {time.perf_counter() - start:.2f} s", flush=True)


if __name__ == "__main__":
    main()
