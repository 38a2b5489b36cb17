"""The decoder's building blocks: its norms, its 2-D linear projections and the SwiGLU activation.

Norms follow Hugging Face's numerics (fp32 inside, cast back) and keep the parameter names
``weight`` / ``bias`` that the families' key tables map to.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from emergence.models.config import LlamaConfig


class RMSNorm(nnx.Module):
    """RMSNorm computed in fp32 and cast back, as HF's LlamaRMSNorm does (matters in bf16).

    Written here rather than ``nnx.RMSNorm`` to keep HF's exact upcast order and the param name
    ``weight`` that the checkpoint tables map to."""

    def __init__(self, dim: int, eps: float, *, param_dtype: jnp.dtype, offset: float = 0.0):
        self.weight = nnx.Param(jnp.full((dim,), 1.0 - offset, param_dtype))
        self.eps = eps
        self.offset = offset  # Gemma scales by (1 + w), in fp32 before the cast back

    def __call__(self, x: jax.Array) -> jax.Array:
        dtype = x.dtype
        x32 = x.astype(jnp.float32)
        x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        if self.offset:
            return (x32 * (self.offset + self.weight[...].astype(jnp.float32))).astype(dtype)
        return self.weight[...].astype(dtype) * x32.astype(dtype)


class LayerNorm(nnx.Module):
    """LayerNorm with bias (GPT-NeoX), in fp32 and cast back; params ``weight`` and ``bias``."""

    def __init__(self, dim: int, eps: float, *, param_dtype: jnp.dtype):
        self.weight = nnx.Param(jnp.ones((dim,), param_dtype))
        self.bias = nnx.Param(jnp.zeros((dim,), param_dtype))
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        centred = x32 - jnp.mean(x32, axis=-1, keepdims=True)
        x32 = centred * jax.lax.rsqrt(jnp.mean(centred * centred, axis=-1, keepdims=True) + self.eps)
        return (x32 * self.weight[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)).astype(x.dtype)


def norm_layer(cfg: LlamaConfig, dim: int | None = None) -> RMSNorm | LayerNorm:
    """The config's norm over ``dim`` features (the hidden size by default)."""
    pdt = jnp.dtype(cfg.param_dtype)
    if cfg.norm == "layer":
        return LayerNorm(dim or cfg.hidden_size, cfg.rms_norm_eps, param_dtype=pdt)
    return RMSNorm(dim or cfg.hidden_size, cfg.rms_norm_eps, param_dtype=pdt, offset=cfg.norm_offset)


class Linear(nnx.Linear):
    """``nnx.Linear`` applied to the input flattened to ``[tokens, features]``.

    Why: with ``[B, T, d]`` inputs, the weight gradient contracts over two batch dimensions and
    XLA:CPU materializes a transposed copy of the output gradient for every projection; on the 2-D
    view every matmul is a plain row-major GEMM. Same parameters, same numbers."""

    def __call__(self, x: jax.Array) -> jax.Array:
        flat = super().__call__(x.reshape(-1, x.shape[-1]))
        return flat.reshape(*x.shape[:-1], flat.shape[-1])


def linear(din: int, dout: int, bias: bool, cfg: LlamaConfig, rngs: nnx.Rngs) -> Linear:
    return Linear(
        din,
        dout,
        use_bias=bias,
        dtype=jnp.dtype(cfg.dtype),
        param_dtype=jnp.dtype(cfg.param_dtype),
        kernel_init=nnx.initializers.normal(0.02),
        rngs=rngs,
    )


@jax.custom_vjp
def swiglu(gate: jax.Array, up: jax.Array) -> jax.Array:
    """``silu(gate) · up``, with a backward that reuses the forward's sigmoid.

    Why: differentiated as written, XLA:CPU recomputes the sigmoid over several passes of
    ``[tokens, intermediate]`` arrays; this backward makes one. The forward values are identical."""
    return jax.nn.silu(gate) * up


def _swiglu_fwd(gate, up):
    s = jax.nn.sigmoid(gate)
    return gate * s * up, (gate, up, s)


def _swiglu_bwd(residuals, dh):
    gate, up, s = residuals
    gs = gate * s
    return dh * up * (s + gs * (1 - s)), dh * gs


swiglu.defvjp(_swiglu_fwd, _swiglu_bwd)
