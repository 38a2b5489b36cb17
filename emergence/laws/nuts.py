"""NUTS for the emergence law: 4 chains from dispersed starts, with honest diagnostics.

Why these choices: chains start from the distinct optima of the multi-start MLE (then prior
draws), so r̂ can tell a posterior with several modes from one with a single mode; a dense mass matrix absorbs the remaining linear correlations (A with the
elbows, the gap with α) that no reparameterization removes; chains run in parallel over JAX's CPU
devices when there are enough of them (the CLI asks for them with
``numpyro.set_host_device_count`` before JAX starts), vectorized otherwise. r̂, bulk ESS and
divergences are always reported, and poor values become warnings in the output, never silence.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin
from numpyro.infer.hmc import hmc
from numpyro.infer.util import potential_energy

from emergence.laws.emergence_law import LawInputs, LawSpec, Priors, emergence_law_model, prior_draws

#: Thresholds under which the fit is flagged (Vehtari et al. 2021 recommendations).
R_HAT_MAX = 1.01
ESS_MIN = 400.0


@dataclass(frozen=True)
class SamplerConfig:
    """How long and how many chains to sample."""

    num_warmup: int = 1000
    num_samples: int = 1000
    num_chains: int = 4
    seed: int = 0
    chain_method: str = "auto"  # auto | parallel | vectorized | sequential
    target_accept: float = 0.95
    max_tree_depth: int = 10


@dataclass(frozen=True)
class Diagnostics:
    """Convergence summary over all latents; ``warnings`` says in words what is poor."""

    r_hat_max: float
    ess_min: float
    divergences: int
    warnings: tuple[str, ...]

    def as_dict(self) -> dict:
        return {
            "r_hat_max": self.r_hat_max,
            "ess_min": self.ess_min,
            "divergences": self.divergences,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class Posterior:
    """Latent draws grouped by chain, shape (chains, draws), plus diagnostics and sampler time."""

    samples: dict[str, np.ndarray]
    diagnostics: Diagnostics
    seconds: float
    chain_method: str

    def flat(self) -> dict[str, np.ndarray]:
        return {name: value.reshape(-1) for name, value in self.samples.items()}


def resolve_chain_method(requested: str, num_chains: int) -> str:
    """'auto' → parallel when JAX has a device per chain, else vectorized (one program, one core)."""
    if requested != "auto":
        return requested
    return "parallel" if jax.local_device_count() >= num_chains else "vectorized"


def chain_inits(
    priors: Priors, spec: LawSpec, num_chains: int, seed: int, optima: tuple[dict[str, float], ...] = ()
) -> dict[str, np.ndarray]:
    """Per-chain starts: the distinct end points of the MLE's multi-start (best first), then its other
    end points, each jittered by a tenth of its prior's scale; prior draws only when there are too few
    (all clipped to the MLE's boxes).

    Why dispersed: chains that all start in one basin agree with each other even when the posterior
    has another mode, and r̂ then certifies a fit it never tested. Why the optima rather than raw
    prior draws: a start on one of the likelihood's flat plateaus (every row at chance) can leave a
    chain stuck there for the whole warmup, which r̂ reports as disagreement but no sampler fixes.
    """
    from emergence.laws.mle import latent_bounds

    rng = np.random.default_rng(seed + 7919)
    names = spec.latents()
    distinct: list[dict[str, float]] = []
    for point in optima:
        if all(max(abs(point[n] - other[n]) for n in names) > 0.05 for other in distinct):
            distinct.append(point)
        if len(distinct) == num_chains:
            break
    # chains beyond the distinct optima start from the other multi-start end points, then priors
    starts = (distinct + [p for p in optima if p not in distinct])[:num_chains]
    draws = prior_draws(priors, spec, num_chains, seed + 7919)
    bounds = latent_bounds(spec, float(priors.B[0]))
    inits = {}
    for name in names:
        scale = getattr(priors, name)[1]
        column = [p[name] + rng.normal(0.0, 0.1 * scale) for p in starts]
        column += list(draws[name][len(column) :])
        inits[name] = np.clip(np.asarray(column), *bounds[name]).astype(np.float32)
    return inits


def padded_size(n: int) -> int:
    """Row count rounded up to a quarter-octave bucket (200 → 224, 20 000 → 20 480).

    Why: the compiled sampler depends only on shapes, so padding to a few bucket sizes lets one
    compilation (in memory, or JAX's persistent cache across processes) serve many tables.
    """
    if n <= 64:
        return 64
    step = 2 ** (int(math.log2(n)) - 2)
    return int(math.ceil(n / step) * step)


def pad_inputs(x: LawInputs, size: int) -> LawInputs:
    """Repeat the first row up to ``size`` rows with mask 0 (finite values, zero weight)."""
    n = x.loss.shape[0]

    def pad(a):
        a = jnp.asarray(a)
        if a.ndim == 0 or size == n:
            return a
        return jnp.concatenate([a, jnp.broadcast_to(a[:1], (size - n,))])

    padded = LawInputs(*(pad(a) for a in x))
    return padded._replace(mask=jnp.concatenate([jnp.ones(n), jnp.zeros(size - n)]).astype(jnp.float32))


@lru_cache(maxsize=32)
def _sampler(spec: LawSpec, config: SamplerConfig, method: str):
    """A compiled function (chain keys, chain inits, data, priors) → (draws, divergences).

    Built with NumPyro's functional NUTS (``hmc(..., algo="NUTS")``) so that the data and priors
    are *arguments* of the compiled program rather than constants baked into it, as they are with
    ``MCMC``; warmup adaptation happens inside ``sample_kernel`` for the first ``num_warmup`` steps.
    """
    model = partial(emergence_law_model, spec=spec)
    total = config.num_warmup + config.num_samples

    def one_chain(rng_key, init, x, priors):
        def potential(z):
            return potential_energy(model, (x,), {"priors": priors}, z)

        init_kernel, sample_kernel = hmc(potential_fn=potential, algo="NUTS")
        state = init_kernel(
            init,
            num_warmup=config.num_warmup,
            dense_mass=True,
            target_accept_prob=config.target_accept,
            max_tree_depth=config.max_tree_depth,
            rng_key=rng_key,
        )

        def step(state, _):
            state = sample_kernel(state)
            return state, (state.z, state.diverging)

        _, (draws, diverging) = jax.lax.scan(step, state, None, length=total)
        keep = slice(config.num_warmup, total)
        return jax.tree.map(lambda a: a[keep], draws), diverging[keep]

    if method == "parallel":
        return jax.pmap(one_chain, in_axes=(0, 0, None, None))
    batched = jax.vmap(one_chain, in_axes=(0, 0, None, None))
    if method == "vectorized":
        return jax.jit(batched)
    return jax.jit(
        lambda keys, inits, x, priors: jax.lax.map(lambda a: one_chain(*a, x, priors), (keys, inits))
    )


def run_nuts(
    x: LawInputs,
    spec: LawSpec,
    priors: Priors,
    config: SamplerConfig = SamplerConfig(),
    optima: tuple[dict[str, float], ...] = (),
) -> Posterior:
    """Sample the posterior; returns draws by chain and diagnostics (with warnings when poor)."""
    method = resolve_chain_method(config.chain_method, config.num_chains)
    # the seed only enters through the chain keys: keep it out of the cache key, or every seed
    # would compile (and keep in memory) its own copy of the same program
    sampler = _sampler(spec, replace(config, seed=0), method)
    x = pad_inputs(LawInputs(*(jnp.asarray(a, jnp.float32) for a in x)), padded_size(int(x.loss.shape[0])))
    priors_arr = Priors(*(jnp.asarray(p, jnp.float32) for p in priors))
    keys = jax.random.split(jax.random.PRNGKey(config.seed), config.num_chains)
    starts = chain_inits(priors, spec, config.num_chains, config.seed, optima)
    inits = {k: jnp.asarray(v) for k, v in starts.items()}
    start = time.perf_counter()
    draws, diverging = sampler(keys, inits, x, priors_arr)
    samples = {k: np.asarray(v, dtype=float) for k, v in draws.items()}
    seconds = time.perf_counter() - start
    return Posterior(samples, diagnose(samples, int(np.asarray(diverging).sum())), seconds, method)


def diagnose(samples: dict[str, np.ndarray], divergences: int) -> Diagnostics:
    """Worst split-r̂ and bulk ESS over latents; warnings for r̂ > 1.01, ESS < 400, any divergence."""
    r_hats, esss = [], []
    for value in samples.values():
        if value.shape[0] > 1 and value.shape[1] > 3:
            r_hats.append(float(split_gelman_rubin(value)))
        esss.append(float(effective_sample_size(value)))
    r_hat_max = max(r_hats) if r_hats else float("nan")
    ess_min = min(esss) if esss else float("nan")
    warnings = []
    if not np.isfinite(r_hat_max) or r_hat_max > R_HAT_MAX:
        warnings.append(
            f"r_hat {r_hat_max:.3f} > {R_HAT_MAX}: chains disagree; sample longer or simplify the model"
        )
    if not np.isfinite(ess_min) or ess_min < ESS_MIN:
        warnings.append(
            f"ESS {ess_min:.0f} < {ESS_MIN:.0f}: posterior summaries are noisy; draw more samples"
        )
    if divergences:
        warnings.append(f"{divergences} divergent transitions: the posterior may be biased near the elbow")
    return Diagnostics(r_hat_max, ess_min, divergences, tuple(warnings))


def host_devices(n: int) -> None:
    """Ask XLA for ``n`` CPU devices; only effective before JAX initializes its backend."""
    numpyro.set_host_device_count(n)


def enable_compile_cache(folder: str | None = None) -> str:
    """Keep compiled samplers on disk (JAX's persistent cache), so a later process skips compiling.

    Why: compiling NUTS costs seconds on a small CPU while sampling 200 points costs about one;
    data and priors are arguments of the compiled program and rows are padded to a few bucket
    sizes, so one cached program serves every table of a similar size. ``EMERGENCE_JAX_CACHE``
    overrides the folder (``~/.cache/emergence/jax`` by default); ``EMERGENCE_JAX_CACHE=off``
    disables it.
    """
    import os

    folder = folder or os.environ.get("EMERGENCE_JAX_CACHE") or os.path.expanduser("~/.cache/emergence/jax")
    if folder == "off":
        return folder
    os.makedirs(folder, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return folder
