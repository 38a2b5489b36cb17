"""NUTS for the emergence law: ``MCMC(NUTS(model))`` over 4 chains from dispersed starts, with
honest diagnostics (r̂, bulk ESS and divergences always reported; poor values become warnings).

A dense mass matrix absorbs the linear correlations (A with the elbows, the gap with α) that no
reparameterization removes. Chains run in parallel over JAX's CPU devices when there are enough
(the CLI asks for them before JAX starts), vectorized otherwise.

Studies, backtests and calibration fit many tables in one process, so with parallel chains one
compiled sampler serves every table of a similar size: the data, the priors and a row mask are
*arguments* of the compiled program (not constants folded into it), rows are padded to a few bucket
sizes, and the ``MCMC`` object is kept per spec and sampler settings. NumPyro's own
``chain_method="parallel"`` pmaps a fresh closure over the model's arguments on every run, which
compiles again; :class:`ParallelChains` is the same pmap with those arguments passed in. (Other
chain methods sample the same posterior but still compile their initialization per table.) The
same program also lets JAX's persistent cache serve a new table in a new process. Measurements:
results/bench/law_refit.md.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace
from functools import lru_cache, partial

import jax
import numpy as np
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin
from numpyro.infer import MCMC, NUTS

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


@dataclass(frozen=True)
class Diagnostics:
    """Convergence summary over all latents; ``warnings`` says in words what is poor."""

    r_hat_max: float
    ess_min: float
    divergences: int
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Posterior:
    """Latent draws grouped by chain, shape (chains, draws), plus diagnostics and how they were drawn."""

    samples: dict[str, np.ndarray]
    diagnostics: Diagnostics
    seconds: float
    chain_method: str
    warmup: int


def chain_inits(
    priors: Priors, spec: LawSpec, num_chains: int, seed: int, optima: tuple[dict[str, float], ...] = ()
) -> dict[str, np.ndarray]:
    """Per-chain starts: the distinct end points of the MLE's multi-start (best first), then its other
    end points, jittered by a tenth of their prior's scale; prior draws when there are too few.

    Dispersed, because chains that all start in one basin agree even when the posterior has another
    mode, and r̂ then certifies a fit it never tested. From optima rather than raw prior draws,
    because a start on a flat plateau (every row at chance) can strand a chain for the whole warmup.
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
    bounds = latent_bounds(spec, priors)
    inits = {}
    for name in names:
        scale = getattr(priors, name)[1]
        column = [p[name] + rng.normal(0.0, 0.1 * scale) for p in starts]
        column += list(draws[name][len(column) :])
        inits[name] = np.clip(np.asarray(column), *bounds[name]).astype(np.float32)
    return inits


def padded_rows(n: int) -> int:
    """Row count rounded up to a quarter-octave bucket (200 → 224, 20 000 → 20 480), at least 64:
    the compiled sampler depends only on shapes, so a few buckets let one program serve many
    tables for at most a quarter more work per step."""
    if n <= 64:
        return 64
    step = 2 ** (int(math.log2(n)) - 2)
    return int(math.ceil(n / step) * step)


def pad_rows(x: LawInputs, size: int) -> tuple[LawInputs, np.ndarray]:
    """Float32 inputs with the first row repeated up to ``size`` rows (finite values), and the mask
    that keeps those copies out of the likelihood. In NumPy, so that a new table compiles nothing."""
    n = int(np.shape(x.loss)[0])

    def pad(a):
        a = np.asarray(a, np.float32)
        return a if a.ndim == 0 else np.concatenate([a, np.broadcast_to(a[:1], (size - n,))])

    return LawInputs(*(pad(a) for a in x)), np.arange(size) < n


class ParallelChains:
    """A ``chain_method`` for :class:`MCMC`: chains pmapped over devices, like NumPyro's "parallel",
    with the model's arguments as arguments of the pmapped program, so that a second run on new data
    of the same shapes reuses the compiled program instead of compiling one with the new data inlined.

    NumPyro calls it with ``functools.partial(mcmc._single_chain_mcmc, args=..., kwargs=..., ...)``;
    anything else is pmapped as given (correct, but compiled again each run).
    """

    def __init__(self) -> None:
        self._programs: dict = {}

    def __call__(self, one_chain):
        keywords = dict(getattr(one_chain, "keywords", None) or {})
        if not {"args", "kwargs"} <= keywords.keys():
            return jax.pmap(one_chain)
        args, kwargs = keywords.pop("args"), keywords.pop("kwargs")
        key = tuple(sorted(keywords.items()))  # which fields NumPyro collects
        if key not in self._programs:
            chain_fn = one_chain.func
            self._programs[key] = jax.pmap(
                lambda chain, a, k: chain_fn(chain, args=a, kwargs=k, **keywords), in_axes=(0, None, None)
            )
        program = self._programs[key]
        return lambda chain: program(chain, args, kwargs)


def _new_sampler(spec: LawSpec, config: SamplerConfig, method: str) -> MCMC:
    """The spec is bound into the model (it shapes the program); data, priors and mask are run args."""
    kernel = NUTS(
        partial(emergence_law_model, spec=spec), dense_mass=True, target_accept_prob=0.95, max_tree_depth=10
    )
    return MCMC(
        kernel,
        num_warmup=config.num_warmup,
        num_samples=config.num_samples,
        num_chains=config.num_chains,
        chain_method=ParallelChains() if method == "parallel" else method,
        progress_bar=False,
        jit_model_args=True,
    )


#: One sampler per spec and settings (the seed enters only through the chains' key, so it is not
#: part of the key). Vectorized chains are built afresh: NumPyro vmaps the kernel again on each run.
_kept_sampler = lru_cache(maxsize=8)(_new_sampler)


def run_nuts(
    x: LawInputs,
    spec: LawSpec,
    priors: Priors,
    config: SamplerConfig = SamplerConfig(),
    optima: tuple[dict[str, float], ...] = (),
) -> Posterior:
    """Sample the posterior; returns draws by chain and diagnostics (with warnings when poor)."""
    method = config.chain_method
    if method == "auto":  # parallel when JAX has a device per chain, else vectorized
        method = "parallel" if jax.local_device_count() >= config.num_chains else "vectorized"
    build = _new_sampler if method == "vectorized" else _kept_sampler
    mcmc = build(spec, replace(config, seed=0), method)
    inits = chain_inits(priors, spec, config.num_chains, config.seed, optima)
    if config.num_chains == 1:
        inits = {name: value[0] for name, value in inits.items()}
    padded, mask = pad_rows(x, padded_rows(int(np.shape(x.loss)[0])))
    priors = Priors(*(np.asarray(p, np.float32) for p in priors))  # one dtype, whatever the table gave
    start = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(config.seed), padded, priors=priors, mask=mask, init_params=inits)
    samples = {k: np.asarray(v, dtype=float) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    divergences = int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum())
    seconds = time.perf_counter() - start
    return Posterior(samples, diagnose(samples, divergences), seconds, method, config.num_warmup)


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


def enable_compile_cache(folder: str | None = None) -> str:
    """Keep compiled programs on disk (JAX's persistent cache), so a later process skips compiling
    the MLE's objective and any sampler whose program it has seen. ``EMERGENCE_JAX_CACHE`` overrides
    the folder (``~/.cache/emergence/jax`` by default); ``EMERGENCE_JAX_CACHE=off`` disables it."""
    folder = folder or os.environ.get("EMERGENCE_JAX_CACHE") or os.path.expanduser("~/.cache/emergence/jax")
    if folder == "off":
        return folder
    os.makedirs(folder, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return folder
