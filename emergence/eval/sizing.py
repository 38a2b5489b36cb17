"""How much evaluation work one device takes at once: padded tokens per scoring batch and prompts
decoded together.

These are the defaults behind ``eval.batch_tokens`` and ``eval.generation_rows`` (None). They
change how work is batched, never which tokens are scored or generated: a score moves at most by
float rounding, so they are not part of a sweep cell's key.

* **CPU:** 2,048 tokens, 16 rows, one token per host round trip, as before. The parity fixtures
  and the harness-agreement runs were made with these numbers, so a CPU run stays bit-identical;
  a CPU gains nothing from bigger batches (its GEMMs already run near peak), and a round trip to
  the host costs it nothing, the host being the device.
* **Accelerator:** a small batch leaves it idle: decoding reads every weight once per step
  whatever the row count, and each batch pays a dispatch and a host round trip. So the budgets
  grow with the memory the loaded weights leave free, ``memory_stats()``'s ``bytes_limit -
  bytes_in_use``; half of it is given to evaluation, the rest left to the runtime and its
  temporaries. Generation rows are as many as fit with each row's KV cache at full width (prompt
  plus new tokens), a power of two up to 256; scoring tokens are as many as fit at an
  fp32 estimate of one token's widest activations (hidden states, the MLP's two intermediates and
  a row of attention scores per head at the model's full width), a power of two between 2,048 and
  65,536. A backend that reports no memory keeps the CPU numbers. (Decoding also runs several
  steps on the device per host round trip: :func:`emergence.models.generate.decode_sync_every`.)
"""

from __future__ import annotations

import jax

from emergence.models.config import LlamaConfig

CPU_BATCH_TOKENS = 2048
CPU_GENERATION_ROWS = 16


def free_device_bytes() -> int | None:
    """Bytes the first device has free now, or None on the CPU or a backend that does not say."""
    if jax.default_backend() == "cpu":
        return None
    stats = jax.devices()[0].memory_stats() or {}
    if "bytes_limit" not in stats:
        return None
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))


def _pow2_at_most(n: float, low: int, high: int) -> int:
    n = int(max(low, min(high, n)))
    return 1 << (n.bit_length() - 1)


def scoring_batch_tokens(config: LlamaConfig, width: int, free: int | None = None) -> int:
    """Padded tokens per scoring batch for rows up to ``width`` tokens (module docstring)."""
    free = free_device_bytes() if free is None else free
    if not free:
        return CPU_BATCH_TOKENS
    per_token = 4 * (
        2 * config.hidden_size + 2 * config.intermediate_size + config.num_attention_heads * width
    )
    return _pow2_at_most(free / 2 / per_token, CPU_BATCH_TOKENS, 65536)


def generation_rows(config: LlamaConfig, width: int, free: int | None = None) -> int:
    """Prompts decoded together when each row's cache holds ``width`` tokens (module docstring)."""
    free = free_device_bytes() if free is None else free
    if not free:
        return CPU_GENERATION_ROWS
    itemsize = jax.numpy.dtype(config.dtype).itemsize
    per_row = 2 * config.num_hidden_layers * config.num_key_value_heads * config.head_dim * width * itemsize
    return _pow2_at_most(free / 2 / per_row, 1, 256)
