"""FitSettings: the one declaration of the law fit's settings, read like every config."""

from __future__ import annotations

import inspect

from emergence.laws.emergence_law import LawSpec
from emergence.laws.fit_config import FitSettings
from emergence.laws.mle import fit_mle
from emergence.laws.nuts import SamplerConfig


def test_defaults_are_the_engines_own():
    """The CLI's and the demo's fit is the engine's default fit, so moving the settings changed no number."""
    settings = FitSettings()
    assert settings.spec() == LawSpec()
    assert settings.sampler() == SamplerConfig()
    assert settings.starts == inspect.signature(fit_mle).parameters["n_starts"].default


def test_settings_reach_the_law_and_the_sampler():
    settings = FitSettings(
        form="power", delta=False, loss_floor=1.5, e0_margin=0.5, samples=7, chains=2, seed=3
    )
    assert settings.spec() == LawSpec(form="power", use_delta=False, loss_floor=1.5, e0_margin=0.5)
    sampler = settings.sampler()
    assert (sampler.num_samples, sampler.num_chains, sampler.seed) == (7, 2, 3)
