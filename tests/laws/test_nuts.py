"""The sampler serves many tables with one compiled program, without changing what it samples.

Studies, backtests and calibration fit many tables in one process; compiling NUTS again for each
would cost more than sampling it. So rows are padded to a few bucket sizes with a mask, and data
and priors are arguments of the compiled program. These tests say what that must not break: the
padded rows add nothing to the posterior, a kept sampler gives the same draws as a fresh one, and
a second table of a similar size compiles nothing.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from numpyro.infer.util import log_density

from emergence.laws.emergence_law import (
    LawSpec,
    default_priors,
    emergence_law_model,
    geometry,
    law_inputs,
    prior_draws,
)
from emergence.laws.law_fit import input_warnings
from emergence.laws.nuts import SamplerConfig, pad_rows, padded_rows, run_nuts
from emergence.laws.simulate import Design, draw_truth, simulate
from emergence.laws.table import select

SHORT = SamplerConfig(num_warmup=60, num_samples=40, seed=3)


def problem(n_sizes: int, seed: int, likelihood: str = "normal"):
    """A simulated table with ``n_sizes`` checkpoints: its inputs, spec and priors."""
    design = Design(sizes=tuple(np.geomspace(20e6, 4e8, n_sizes)), steps_per_size=1)
    data = select(simulate(draw_truth(design, np.random.default_rng(seed)), design, seed=seed), design.task)
    spec, _ = input_warnings(data, LawSpec(likelihood=likelihood))
    geo = geometry(data, spec)
    return law_inputs(data, geo), spec, default_priors(data, spec)


def test_padded_row_counts_are_few_buckets_with_little_waste():
    for n in (1, 64, 65, 200, 204, 216, 2000, 20_000):
        assert padded_rows(n) >= n
        assert padded_rows(n) <= max(64, 1.25 * n)
    assert padded_rows(204) == padded_rows(216) == 224  # one more checkpoint, the same program
    assert len({padded_rows(n) for n in range(257, 4097)}) == 16  # four per octave


@pytest.mark.parametrize("likelihood", ["normal", "binomial"])
def test_masked_padding_rows_add_nothing_to_the_log_density(likelihood):
    x, spec, priors = problem(8, seed=1, likelihood=likelihood)
    padded, mask = pad_rows(x, padded_rows(x.loss.size) + 17)
    assert padded.loss.size > x.loss.size and mask.sum() == x.loss.size
    draws = prior_draws(priors, spec, 5, seed=0, spread=0.5)
    for i in range(5):
        theta = {name: np.float32(value[i]) for name, value in draws.items()}
        plain, _ = log_density(emergence_law_model, (pad_rows(x, x.loss.size)[0], spec, priors), {}, theta)
        masked, _ = log_density(emergence_law_model, (padded, spec, priors), {"mask": mask}, theta)
        np.testing.assert_allclose(float(masked), float(plain), rtol=1e-5)


def test_a_kept_sampler_draws_what_a_fresh_one_draws():
    first, spec, priors = problem(8, seed=1)
    other, other_spec, other_priors = problem(9, seed=2)
    assert other_spec == spec and other_priors != priors
    before = run_nuts(first, spec, priors, SHORT)
    run_nuts(other, other_spec, other_priors, SHORT)  # another table through the same program
    again = run_nuts(first, spec, priors, SHORT)
    for name, value in before.samples.items():
        np.testing.assert_array_equal(again.samples[name], value)


def test_a_second_table_of_a_similar_size_compiles_nothing():
    first, spec, priors = problem(17, seed=4)
    second, second_spec, second_priors = problem(18, seed=5)  # 12 more rows, the same bucket
    assert padded_rows(first.loss.size) == padded_rows(second.loss.size)
    compiled = []

    def listen(event: str, seconds: float, **_) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            compiled.append(seconds)

    run_nuts(first, spec, priors, SHORT)
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        posterior = run_nuts(second, second_spec, second_priors, SHORT)
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert compiled == []
    assert np.isfinite(posterior.samples["e0_pos"]).all()
