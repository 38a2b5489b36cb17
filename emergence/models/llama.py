"""The decoder in Flax NNX: RMSNorm, RoPE, grouped-query attention, SwiGLU, KV cache, and the few
options other families need (:mod:`emergence.models.families`), resolved when the forward is traced
so that a LLaMA runs exactly the ops it always ran.

One forward serves training, scoring and decoding. Padding is a ``valid`` mask; positions default to
the running count of valid tokens, so a left-padded row gets the logits it would get alone. A
:class:`KVCache` is a plain pytree that jitted steps take and return.

Why our own module: transformers 5 dropped its Flax models, and the numerics must follow Hugging
Face's PyTorch ``LlamaForCausalLM`` to 1e-4 (RMSNorm in fp32, RoPE "rotate half", fp32 softmax),
which the parity tests check against fixtures made by transformers itself (one per family).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from emergence.models.attention import attention, attention_implementation
from emergence.models.config import LlamaConfig, rope_inverse_frequencies
from emergence.models.layers import linear, norm_layer, swiglu


class KVCache(NamedTuple):
    """Keys/values per layer ``[B, KV, S, D]``, which slots hold a real token, their positions,
    the next slot to write (``index``) and each row's next position (``next_pos``).

    Heads-major, so a decoding step's attention reads the cache as it lies (no per-step copy)."""

    keys: tuple[jax.Array, ...]
    values: tuple[jax.Array, ...]
    valid: jax.Array  # [B, S] bool
    positions: jax.Array  # [B, S] int32
    index: jax.Array  # [] int32
    next_pos: jax.Array  # [B] int32

    @classmethod
    def empty(cls, config: LlamaConfig, batch: int, size: int) -> KVCache:
        dtype = jnp.dtype(config.dtype)
        shape = (batch, config.num_key_value_heads, size, config.head_dim)
        layers = config.num_hidden_layers
        return cls(
            keys=tuple(jnp.zeros(shape, dtype) for _ in range(layers)),
            values=tuple(jnp.zeros(shape, dtype) for _ in range(layers)),
            valid=jnp.zeros((batch, size), bool),
            positions=jnp.zeros((batch, size), jnp.int32),
            index=jnp.zeros((), jnp.int32),
            next_pos=jnp.zeros((batch,), jnp.int32),
        )


def apply_rope(x: jax.Array, positions: jax.Array, inv_freq: jax.Array) -> jax.Array:
    """Rotate ``x [B, T, H, D]`` by ``positions [B, T]`` with HF's rotate-half convention; with
    fewer frequencies than ``D/2`` only the leading dimensions turn (partial rotary, GPT-NeoX)."""
    rotary = 2 * inv_freq.shape[-1]
    if rotary < x.shape[-1]:
        return jnp.concatenate([apply_rope(x[..., :rotary], positions, inv_freq), x[..., rotary:]], axis=-1)
    angles = positions.astype(jnp.float32)[..., None] * inv_freq  # [B, T, D/2]
    angles = jnp.concatenate([angles, angles], axis=-1)[:, :, None, :]
    cos, sin = jnp.cos(angles).astype(x.dtype), jnp.sin(angles).astype(x.dtype)
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin


class Attention(nnx.Module):
    def __init__(self, cfg: LlamaConfig, rngs: nnx.Rngs):
        d, hd = cfg.hidden_size, cfg.head_dim
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, hd
        self.q_proj = linear(d, self.num_heads * hd, cfg.qkv_bias, cfg, rngs)
        self.k_proj = linear(d, self.num_kv_heads * hd, cfg.qkv_bias, cfg, rngs)
        self.v_proj = linear(d, self.num_kv_heads * hd, cfg.qkv_bias, cfg, rngs)
        self.o_proj = linear(self.num_heads * hd, d, cfg.o_bias, cfg, rngs)
        self.qk_norm = cfg.qk_norm
        if cfg.qk_norm != "none":  # per head (Qwen3, Gemma 3) or over the whole projection (OLMo-2)
            full = cfg.qk_norm == "full"
            self.q_norm = norm_layer(cfg, self.num_heads * hd if full else hd)
            self.k_norm = norm_layer(cfg, self.num_kv_heads * hd if full else hd)
        self.scale = None if cfg.query_pre_attn_scalar is None else cfg.query_pre_attn_scalar**-0.5

    def __call__(
        self,
        x: jax.Array,
        positions: jax.Array,
        mask: jax.Array,
        inv_freq: jax.Array,
        layer_cache: tuple[jax.Array, jax.Array, KVCache] | None,
        prefix: tuple[jax.Array, ...] | None = None,
        aligned: bool = False,
        implementation: str = "blocked",
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array] | None]:
        b, t, _ = x.shape
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        if self.qk_norm == "full":
            q, k = self.q_norm(q), self.k_norm(k)
        q = q.reshape(b, t, self.num_heads, self.head_dim)
        k = k.reshape(b, t, self.num_kv_heads, self.head_dim)
        v = v.reshape(b, t, self.num_kv_heads, self.head_dim)
        if self.qk_norm == "head":
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rope(q, positions, inv_freq), apply_rope(k, positions, inv_freq)
        k, v = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)  # [B, KV, T, D]
        new_kv = None
        if layer_cache is not None:
            cache_k, cache_v, cache = layer_cache
            k = jax.lax.dynamic_update_slice_in_dim(cache_k, k.astype(cache_k.dtype), cache.index, axis=2)
            v = jax.lax.dynamic_update_slice_in_dim(cache_v, v.astype(cache_v.dtype), cache.index, axis=2)
            new_kv = (k, v)
        out = attention(
            q,
            k.astype(q.dtype),
            v.astype(q.dtype),
            mask,
            prefix,
            aligned=aligned,
            rowwise=layer_cache is not None,
            implementation=implementation,
            scale=self.scale,
        )
        return self.o_proj(out.reshape(b, t, self.num_heads * self.head_dim)), new_kv


class MLP(nnx.Module):
    def __init__(self, cfg: LlamaConfig, rngs: nnx.Rngs):
        d, f = cfg.hidden_size, cfg.intermediate_size
        self.gated, self.activation = cfg.gated_mlp, cfg.activation
        if cfg.gated_mlp:  # plain (GPT-NeoX): down(act(up x))
            self.gate_proj = linear(d, f, cfg.mlp_bias, cfg, rngs)
        self.up_proj = linear(d, f, cfg.mlp_bias, cfg, rngs)
        self.down_proj = linear(f, d, cfg.mlp_bias, cfg, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.gated and self.activation == "silu":
            return self.down_proj(swiglu(self.gate_proj(x), self.up_proj(x)))
        act = jax.nn.silu if self.activation == "silu" else functools.partial(jax.nn.gelu, approximate=self.activation == "gelu_tanh")
        if self.gated:
            return self.down_proj(act(self.gate_proj(x)) * self.up_proj(x))
        return self.down_proj(act(self.up_proj(x)))


class Block(nnx.Module):
    """One decoder layer. ``input_norm`` and ``post_attn_norm`` normalize the attention's and the
    MLP's inputs (``sublayer_norms`` ``pre`` or ``both``); ``attn_out_norm`` and ``mlp_out_norm``
    their outputs (``post`` or ``both``); ``parallel_residual`` adds both sublayers of one input."""

    def __init__(self, cfg: LlamaConfig, rngs: nnx.Rngs):
        self.pre, self.post = cfg.sublayer_norms != "post", cfg.sublayer_norms != "pre"
        self.parallel = cfg.parallel_residual
        if self.pre:
            self.input_norm = norm_layer(cfg)
        self.attn = Attention(cfg, rngs)
        if self.post:
            self.attn_out_norm = norm_layer(cfg)
        if self.pre:
            self.post_attn_norm = norm_layer(cfg)
        self.mlp = MLP(cfg, rngs)
        if self.post:
            self.mlp_out_norm = norm_layer(cfg)

    def __call__(self, x, positions, mask, inv_freq, layer_cache, prefix=None, aligned=False, implementation="blocked"):
        h, new_kv = self.attn(self.input_norm(x) if self.pre else x, positions, mask, inv_freq, layer_cache, prefix, aligned, implementation)
        if self.post:
            h = self.attn_out_norm(h)
        if self.parallel:  # GPT-NeoX: mlp_out + attn_out + x, in its order
            return self.mlp(self.post_attn_norm(x)) + h + x, new_kv
        x = x + h
        m = self.mlp(self.post_attn_norm(x) if self.pre else x)
        if self.post:
            m = self.mlp_out_norm(m)
        return x + m, new_kv


def _remat(run_block, policy: str):
    """``run_block`` as the config's :data:`~emergence.models.config.REMAT_POLICIES` asks.

    ``block`` keeps only each block's input for the backward pass and recomputes the rest (the
    least memory: one ``[tokens, hidden]`` array per layer). ``dots`` also keeps the outputs of the
    projection matmuls, which are the expensive part to recompute, and recomputes attention, norms
    and activations; our projections run on 2-D ``[tokens, features]`` views (:class:`Linear`), so
    ``dots_with_no_batch_dims_saveable`` selects exactly them and never the ``[T, S]`` attention
    scores, whose matmuls carry batch dimensions."""
    if policy == "none":
        return run_block
    saveable = jax.checkpoint_policies.dots_with_no_batch_dims_saveable if policy == "dots" else None

    def rematerialized(layer: Block, *args):
        # a pure function of the block's state (not nnx.remat): the trainer merges its model inside
        # plain jax transforms, whose variables nnx.remat would try to update from another trace
        graphdef, state = nnx.split(layer)
        pure = jax.checkpoint(lambda s, *a: run_block(nnx.merge(graphdef, s), *a), policy=saveable)
        return pure(state, *args)

    return rematerialized


class Llama(nnx.Module):
    """A causal LM of any supported family (:mod:`emergence.models.families`). ``model(tokens)``
    returns ``(logits [B, T, V] fp32, cache)``."""

    def __init__(self, cfg: LlamaConfig, *, rngs: nnx.Rngs):
        self.config = cfg
        self.embed = nnx.Embed(
            cfg.vocab_size,
            cfg.hidden_size,
            dtype=jnp.dtype(cfg.dtype),
            param_dtype=jnp.dtype(cfg.param_dtype),
            embedding_init=nnx.initializers.normal(0.02),
            rngs=rngs,
        )
        self.layers = nnx.List([Block(cfg, rngs) for _ in range(cfg.num_hidden_layers)])
        self.norm = norm_layer(cfg)
        self.lm_head = None if cfg.tie_word_embeddings else linear(cfg.hidden_size, cfg.vocab_size, False, cfg, rngs)
        self.inv_freq = nnx.Variable(jnp.asarray(rope_inverse_frequencies(cfg), jnp.float32))
        if cfg.local_rope_theta is not None:  # Gemma 3's sliding layers turn at their own base
            self.local_inv_freq = nnx.Variable(jnp.asarray(rope_inverse_frequencies(cfg, local=True), jnp.float32))

    def hidden_states(
        self,
        tokens: jax.Array,
        *,
        valid: jax.Array | None = None,
        positions: jax.Array | None = None,
        segments: jax.Array | None = None,
        cache: KVCache | None = None,
        prefix: KVCache | None = None,
        fresh_cache: bool = False,
    ) -> tuple[jax.Array, KVCache | None]:
        """Final-norm hidden states ``[B, T, d]`` (logits are taken from these only where needed).

        ``segments [B, T]`` packs several sequences into one row: a token attends only to earlier
        tokens of its own segment (no cache). ``prefix`` (a batch-1 cache holding a prompt prefix
        common to all rows) is attended by every row before its own tokens and never written; the
        rows' ``cache`` positions must start after it. ``fresh_cache`` promises an empty cache
        exactly as wide as ``tokens`` (a prefill), so long inputs attend in causal blocks."""
        b, t = tokens.shape
        valid = jnp.ones((b, t), bool) if valid is None else valid.astype(bool)
        if positions is None:
            running = jnp.cumsum(valid, axis=1, dtype=jnp.int32) - 1
            offset = cache.next_pos[:, None] if cache is not None else 0
            positions = jnp.maximum(running, 0) + offset
        if cache is None:
            key_valid, key_pos, key_slot, query_slot = valid, positions, jnp.arange(t), jnp.arange(t)
        else:
            cache = cache._replace(
                valid=jax.lax.dynamic_update_slice_in_dim(cache.valid, valid, cache.index, axis=1),
                positions=jax.lax.dynamic_update_slice_in_dim(cache.positions, positions.astype(jnp.int32), cache.index, axis=1),
            )
            key_valid, key_pos = cache.valid, cache.positions
            key_slot, query_slot = jnp.arange(key_valid.shape[1]), cache.index + jnp.arange(t)
        mask = (key_slot[None, :] <= query_slot[:, None])[None] & key_valid[:, None, :]  # [B, T, S]
        if segments is not None:
            if cache is not None:
                raise ValueError("packed segments cannot be combined with a KV cache")
            mask &= segments[:, :, None] == segments[:, None, :]
        cfg = self.config
        sliding = cfg.sliding_layers()
        masks = (mask,) * len(sliding)
        if any(sliding):
            if prefix is not None:
                raise ValueError("a shared prefix is not supported with sliding-window attention")
            window = mask & ((positions[:, :, None] - key_pos[:, None, :]) < cfg.sliding_window)
            masks = tuple(window if slides else mask for slides in sliding)
        x = self.embed(tokens)
        if cfg.embedding_scale:  # Gemma: sqrt(hidden), rounded to the compute dtype first
            x = x * jnp.asarray(cfg.hidden_size**0.5, x.dtype)
        inv_freqs = (self.inv_freq[...],) * len(sliding)
        if cfg.local_rope_theta is not None:
            local = self.local_inv_freq[...]
            inv_freqs = tuple(local if slides else freq for slides, freq in zip(sliding, inv_freqs, strict=True))
        aligned = cache is None or (fresh_cache and cache.keys[0].shape[2] == t)  # key slot i = query i
        new_keys, new_values = [], []
        implementation = attention_implementation(cfg, jnp.dtype(cfg.dtype), cfg.head_dim)
        run_block = _remat(lambda layer, *args: layer(*args, aligned, implementation), cfg.remat)
        for i, layer in enumerate(self.layers):
            layer_cache = None if cache is None else (cache.keys[i], cache.values[i], cache)
            shared = None if prefix is None else (prefix.keys[i][0], prefix.values[i][0], prefix.valid[0])
            x, new_kv = run_block(layer, x, positions, masks[i], inv_freqs[i], layer_cache, shared)
            if new_kv is not None:
                new_keys.append(new_kv[0])
                new_values.append(new_kv[1])
        if cache is not None:
            cache = cache._replace(
                keys=tuple(new_keys),
                values=tuple(new_values),
                index=cache.index + t,
                next_pos=cache.next_pos + jnp.sum(valid, axis=1, dtype=jnp.int32),
            )
        return self.norm(x), cache

    def logits(self, hidden: jax.Array) -> jax.Array:
        """Project hidden states to fp32 vocabulary logits (tied or separate head)."""
        if self.lm_head is None:
            out = self.embed.attend(hidden)
        else:
            out = self.lm_head(hidden)
        return out.astype(jnp.float32)

    def token_nll(self, hidden: jax.Array, targets: jax.Array) -> jax.Array:
        """``-log p(targets)`` in fp32 from the hidden states that predict them (``[..., d]`` → ``[...]``):
        the training loss and the pretraining loss both sum these."""
        logits = self.logits(hidden)
        gold = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
        return jax.nn.logsumexp(logits, axis=-1) - gold

    def __call__(
        self,
        tokens: jax.Array,
        *,
        valid: jax.Array | None = None,
        positions: jax.Array | None = None,
        segments: jax.Array | None = None,
        cache: KVCache | None = None,
    ) -> tuple[jax.Array, KVCache | None]:
        hidden, cache = self.hidden_states(tokens, valid=valid, positions=positions, segments=segments, cache=cache)
        return self.logits(hidden), cache
