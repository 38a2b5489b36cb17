"""Hand-written pieces of the LLaMA layers agree with the plain expressions they replace."""

import jax
import jax.numpy as jnp
import numpy as np

from emergence.models.llama import swiglu


def test_swiglu_has_the_values_and_gradients_of_silu_times_up():
    rng = np.random.default_rng(0)
    gate, up, dh = (jnp.asarray(rng.standard_normal((32, 24)) * 3, jnp.float32) for _ in range(3))

    def plain(g, u):
        return jnp.sum(jax.nn.silu(g) * u * dh)

    def ours(g, u):
        return jnp.sum(swiglu(g, u) * dh)

    np.testing.assert_array_equal(jax.jit(swiglu)(gate, up), jax.jit(lambda g, u: jax.nn.silu(g) * u)(gate, up))
    for a, b in zip(jax.grad(ours, (0, 1))(gate, up), jax.grad(plain, (0, 1))(gate, up), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
