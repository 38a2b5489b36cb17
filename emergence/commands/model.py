"""`emergence info` and `emergence generate`: look at a model, and make it talk."""

from __future__ import annotations

import sys

import typer

from emergence.commands.shared import DTYPE, MODEL


def info(
    model: str = MODEL,
    dtype: str = DTYPE,
) -> None:
    """Print the architecture, parameter count, vocabulary and dtype of a model."""
    from emergence.models.registry import load_model

    loaded = load_model(model, dtype=dtype)
    cfg, meta = loaded.config, loaded.meta
    rows = {
        "name": meta.name,
        "source": meta.source,
        "format": meta.format,
        "architecture": cfg.architecture,
        "params": f"{meta.params:,}",
        "layers": cfg.num_hidden_layers,
        "hidden": cfg.hidden_size,
        "heads": f"{cfg.num_attention_heads} (kv {cfg.num_key_value_heads}, head_dim {cfg.head_dim})",
        "mlp": cfg.intermediate_size,
        "vocab": f"{cfg.vocab_size} (tokenizer {loaded.tokenizer.vocab_size})",
        "context": cfg.max_position_embeddings,
        "rope": f"theta={cfg.rope_theta:g}" + (f", {cfg.rope_scaling.rope_type} x{cfg.rope_scaling.factor:g}" if cfg.rope_scaling else ""),
        "tied_embeddings": cfg.tie_word_embeddings,
        "dtype": f"{cfg.dtype} (params {cfg.param_dtype})",
        "tokens_seen": meta.tokens if meta.tokens is not None else "unknown",
        "flops": f"{meta.flops:.3g}" if meta.flops is not None else "unknown",
    }
    width = max(map(len, rows))
    for key, value in rows.items():
        print(f"{key:<{width}}  {value}")


def generate(
    model: str = MODEL,
    prompt: str = typer.Option(..., "--prompt", "-p", help="text to complete"),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", "-n", min=1),
    stop: list[str] = typer.Option([], "--stop", help="stop sequence (repeatable)"),
    dtype: str = DTYPE,
) -> None:
    """Greedy completion with the KV cache; prints the completion only, tokens/s on stderr."""
    from emergence.models.generate import greedy_generate
    from emergence.models.registry import load_model

    loaded = load_model(model, dtype=dtype)
    stats: dict = {}
    ids = loaded.tokenizer.encode(prompt)
    (result,) = greedy_generate(
        loaded.model, loaded.tokenizer, [ids], max_new_tokens=max_new_tokens, stop=stop, batch_size=1, stats=stats
    )
    print(result.text)
    rate = stats["new_tokens"] / stats["seconds"] if stats["seconds"] else 0.0
    print(f"{stats['new_tokens']} tokens in {stats['seconds']:.2f}s ({rate:.1f} tokens/s, incl. compile)", file=sys.stderr)


def register(app: typer.Typer) -> None:
    app.command("info")(info)
    app.command("generate")(generate)
