"""How much of a scoring forward pass is GEMM? SmolLM2 on one packed evaluation batch, with parts removed.

The evaluator scores CommonsenseQA and CoLA as packed rows (``emergence/eval/packing.py``): for
CommonsenseQA 0-shot, batches of 16 rows × 128 tokens, two or three prompts to a row. This times the
jitted forward pass (final hidden states) of such a batch as it is, and with parts of every layer
replaced by something that costs nothing but keeps every projection's GEMM alive:

    full        the model as it is
    no-attn     attention (scores, softmax, weighted sum) replaced by the queries
    gemm-only   also no RoPE, RMSNorm reduced to its scale, SwiGLU to a sum: what is left is the
                seven projections of each layer and the residual adds

``full / gemm-only`` bounds what any change outside the GEMMs could gain on this CPU: the peer
ratio of ``make bench-eval`` times it is the most the evaluator could reach there.

    .venv/bin/python scripts/probe_forward_parts.py [--rows 16] [--width 128] [--segment 43] [--rounds 6]

Prints each variant's fastest and median time over interleaved rounds, and the GEMMs' rate.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import emergence.models.llama as llama
from emergence.models.registry import load_model


def keep_alive(*arrays: jax.Array) -> jax.Array:
    """A zero that depends on ``arrays``, so XLA keeps the GEMMs that produce them."""
    return sum(jnp.mean(a) for a in arrays) * 0.0


VARIANTS = {
    "full": {},
    "no-attn": {"attention": lambda q, k, v, mask, prefix=None, **_: q + keep_alive(k, v)},
    "gemm-only": {
        "attention": lambda q, k, v, mask, prefix=None, **_: q + keep_alive(k, v),
        "apply_rope": lambda x, positions, inv_freq: x,
        "swiglu": lambda gate, up: gate + up,
        "norm": lambda self, x: x * self.weight[...],
    },
}


def compile_variant(graph, variant: dict, inputs: tuple):
    """The forward pass compiled with ``variant``'s replacements patched into the model module while
    it is traced; the module is restored afterwards."""
    saved = {name: getattr(llama, name) for name in ("attention", "apply_rope", "swiglu")}
    saved_norm = llama.RMSNorm.__call__

    def forward(state, tokens, valid, positions, segments):
        model = nnx.merge(graph, state)
        hidden, _ = model.hidden_states(tokens, valid=valid, positions=positions, segments=segments)
        return jnp.sum(hidden[:, -1])

    for name, fn in saved.items():
        setattr(llama, name, variant.get(name, fn))
    llama.RMSNorm.__call__ = variant.get("norm", saved_norm)
    try:
        return jax.jit(forward).lower(*inputs).compile()
    finally:
        for name, fn in saved.items():
            setattr(llama, name, fn)
        llama.RMSNorm.__call__ = saved_norm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--segment", type=int, default=43, help="tokens per packed prompt")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()

    loaded = load_model(args.model)
    graph, state = nnx.split(loaded.model)
    rng = np.random.default_rng(0)
    shape = (args.rows, args.width)
    tokens = jnp.asarray(rng.integers(0, loaded.config.vocab_size, shape), jnp.int32)
    slot = np.arange(args.width)
    segments = jnp.asarray(np.broadcast_to(slot // args.segment, shape), jnp.int32)
    positions = jnp.asarray(np.broadcast_to(slot % args.segment, shape), jnp.int32)
    inputs = (state, tokens, jnp.ones(shape, bool), positions, segments)
    compiled = {name: compile_variant(graph, variant, inputs) for name, variant in VARIANTS.items()}
    times: dict[str, list[float]] = {name: [] for name in compiled}
    for _ in range(args.rounds):
        for name, fn in compiled.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(*inputs))
            times[name].append(time.perf_counter() - start)

    c = loaded.config
    per_layer = c.hidden_size * (2 * c.num_attention_heads + 2 * c.num_key_value_heads) * c.head_dim
    per_layer += 3 * c.hidden_size * c.intermediate_size
    flops = 2 * per_layer * c.num_hidden_layers * args.rows * args.width
    print(f"{args.model}: {args.rows} x {args.width} tokens, prompts of {args.segment}; {args.rounds} rounds")
    for name, ts in times.items():
        print(f"  {name:<10} fastest {min(ts):6.3f} s  median {np.median(ts):6.3f} s  "
              f"({flops / min(ts) / 1e9:5.0f} GFLOP/s of projection GEMMs)")
    print(f"  full / gemm-only: {min(times['full']) / min(times['gemm-only']):.2f}")


if __name__ == "__main__":
    main()
