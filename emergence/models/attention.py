"""Attention for the LLaMA decoder: grouped-query heads, padding masks, a shared prompt prefix.

Two implementations of one contract (``q [B, T, H, D]``, ``k, v [B, KV, S, D]``, ``mask [B, T, S]``
→ ``[B, T, H, D]``): the hand-blocked einsum path, tuned for CPU caches and the CPU default, and
``jax.nn.dot_product_attention`` (XLA or cuDNN) for accelerators. The config's ``attention`` setting
chooses (:func:`attention_implementation`); tests/models/test_attention.py holds them equal.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from emergence.models.config import LlamaConfig

#: Queries per block when a long input attends causally to itself: training and scoring rows, and
#: (row by row) prefills (``scripts/bench_train.py``, ``scripts/bench_eval.py``).
QUERY_BLOCK = 128
PREFILL_QUERY_BLOCK = 256


def attention_implementation(config: LlamaConfig, dtype: jnp.dtype, head_dim: int) -> str:
    """``blocked``, ``xla`` or ``cudnn``: the config's choice, ``auto`` resolved by the backend
    tracing the forward, and ``cudnn`` only where cuDNN's fused kernel takes the shapes (half
    precision, head size a multiple of 8 up to 128); XLA's fused path serves the rest."""
    choice = config.attention
    if choice == "auto":
        choice = {"cpu": "blocked", "gpu": "cudnn"}.get(jax.default_backend(), "xla")
    if choice == "cudnn" and not (dtype in (jnp.bfloat16, jnp.float16) and head_dim % 8 == 0 and head_dim <= 128):
        return "xla"
    return choice


def fused_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    mask: jax.Array,
    prefix: tuple[jax.Array, ...] | None,
    implementation: str,
    scale: float | None = None,
) -> jax.Array:
    """:func:`grouped_attention`'s contract through ``jax.nn.dot_product_attention`` (GQA native):
    the accelerators' path, where XLA or cuDNN fuse the softmax instead of our CPU-cache blocking.
    A shared ``prefix`` is broadcast to the rows and put before their keys."""
    k, v = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)  # [B, S, KV, D]
    if prefix is not None:
        pk, pv, pvalid = prefix  # [KV, P, D], [KV, P, D], [P]
        (b, t), (kv, p, d) = q.shape[:2], pk.shape
        rows = (b, p, kv, d)
        k = jnp.concatenate([jnp.broadcast_to(pk.transpose(1, 0, 2).astype(k.dtype), rows), k], axis=1)
        v = jnp.concatenate([jnp.broadcast_to(pv.transpose(1, 0, 2).astype(v.dtype), rows), v], axis=1)
        mask = jnp.concatenate([jnp.broadcast_to(pvalid, (b, t, p)), mask], axis=2)
    return jax.nn.dot_product_attention(q, k, v, mask=mask[:, None], scale=scale, implementation=implementation)


def attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    mask: jax.Array,
    prefix: tuple[jax.Array, ...] | None = None,
    *,
    aligned: bool = False,
    rowwise: bool = False,
    implementation: str = "blocked",
    scale: float | None = None,
) -> jax.Array:
    """:func:`grouped_attention`, in blocks of :data:`QUERY_BLOCK` queries when ``aligned``
    (:data:`PREFILL_QUERY_BLOCK` when ``rowwise``); :func:`fused_attention` for the ``xla`` and
    ``cudnn`` implementations.

    ``aligned``: key slot i holds query i, so by causality a block of queries needs only the keys
    up to its own end: less score work, and each block's scores stay in cache through the softmax.
    ``rowwise`` (prefill, forward only) also runs one batch row at a time (``lax.map``), so a long
    prompt's block scores fit the CPU's last-level cache; under differentiation the loop costs
    more than it saves, so training does not use it. ``scale`` multiplies the scores (default
    ``head_dim ** -0.5``)."""
    if implementation != "blocked":  # cuDNN's fused kernel takes whole sequences, not decoding steps
        return fused_attention(q, k, v, mask, prefix, "xla" if implementation == "cudnn" and not aligned else implementation, scale)
    t = q.shape[1]
    size = PREFILL_QUERY_BLOCK if rowwise else QUERY_BLOCK
    if not aligned or t <= size or k.shape[2] != t:
        return grouped_attention(q, k, v, mask, prefix, scale)

    def blocked(q, k, v, mask):
        blocks = []
        for start in range(0, t, size):
            end = min(start + size, t)
            blocks.append(
                grouped_attention(q[:, start:end], k[:, :, :end], v[:, :, :end], mask[:, start:end, :end], prefix, scale)
            )
        return jnp.concatenate(blocks, axis=1)

    if not rowwise or q.shape[0] == 1:
        return blocked(q, k, v, mask)
    return jax.lax.map(lambda row: blocked(*(x[None] for x in row))[0], (q, k, v, mask))


def grouped_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    mask: jax.Array,
    prefix: tuple[jax.Array, ...] | None = None,
    scale: float | None = None,
) -> jax.Array:
    """Grouped-query attention: ``q [B, T, H, D]``, ``k, v [B, KV, S, D]``, ``mask [B, T, S]`` → ``[B, T, H, D]``.

    Why by hand: the queries of each KV head are laid out as one ``[G·T, D]`` matrix, so the scores
    and the weighted sum are one batched GEMM per (batch, KV head), where
    ``jax.nn.dot_product_attention`` vmaps over the groups. Softmax runs in fp32.

    ``prefix = (keys [KV, P, D], values [KV, P, D], valid [P])`` is a prompt prefix shared by every
    row (a few-shot block), attended before each row's own keys and read once for the whole batch.
    """
    b, t, h, d = q.shape
    kv = k.shape[1]
    g = h // kv
    # the scale goes on the queries ([T, D]) and the normalization on the output ([T, D]): neither
    # costs a pass over the [T, S] scores
    qh = (q * jnp.asarray(d**-0.5 if scale is None else scale, q.dtype)).reshape(b, t, kv, g, d).transpose(0, 2, 3, 1, 4).reshape(b, kv, g * t, d)
    scores = jnp.einsum("bkqd,bksd->bkqs", qh, k, preferred_element_type=jnp.float32)
    s = scores.shape[-1]  # the mask broadcasts over the groups: no tiled copy of it per layer
    scores = jnp.where(mask[:, None, None], scores.reshape(b, kv, g, t, s), -1e30).reshape(b, kv, g * t, s)
    top = jnp.max(scores, axis=-1, keepdims=True)
    if prefix is not None:
        pk, pv, pvalid = prefix
        shared = jnp.einsum("bkqd,kpd->bkqp", qh, pk.astype(q.dtype), preferred_element_type=jnp.float32)
        shared = jnp.where(pvalid, shared, -1e30)
        top = jnp.maximum(top, jnp.max(shared, axis=-1, keepdims=True))
    # the output does not depend on the shift (its gradient through ``top`` is exactly zero), and
    # differentiating the max would cost three more passes over the scores in the backward pass
    top = jax.lax.stop_gradient(top)
    weights = jnp.exp(scores - top)  # unnormalized softmax, fp32
    total = jnp.sum(weights, axis=-1, keepdims=True)
    out = jnp.einsum("bkqs,bksd->bkqd", weights.astype(v.dtype), v, preferred_element_type=jnp.float32)
    if prefix is not None:
        shared = jnp.exp(shared - top)
        total = total + jnp.sum(shared, axis=-1, keepdims=True)
        out = out + jnp.einsum("bkqp,kpd->bkqd", shared.astype(v.dtype), pv.astype(v.dtype), preferred_element_type=jnp.float32)
    out = (out / total).astype(v.dtype)
    return out.reshape(b, kv, g, t, d).transpose(0, 3, 1, 2, 4).reshape(b, t, h, d)
