"""The emergence-law fit's settings, declared once (:class:`FitSettings`).

They are the ``fit:`` section of ``emergence fit --config`` and of a demo config, and what the
``fit.*`` overrides of ``emergence fit | backtest`` set, all read by :func:`emergence.config.load_config`:
a new setting is one field here. This module imports no JAX, so the CLI reads the settings (the chain
count among them) before JAX chooses its devices.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from emergence.errors import UserError

CHAIN_METHODS = ("auto", "parallel", "vectorized", "sequential")


@dataclass(frozen=True)
class FitSettings:
    """Everything that decides a fit besides the data and the task's own facts (its metric and chance
    level). A field named like one of :class:`~emergence.laws.emergence_law.LawSpec`'s reaches the law."""

    form: str = "log-power"  # how E(D) grows with the budget D: log-power | power
    likelihood: str = "normal"  # normal | binomial (needs n_eval and n_correct on every row)
    delta: bool = True  # the few-shot offset Δ (LawSpec's use_delta)
    d0: float | None = None  # few-shot extrapolation limit D0 (default: the few-shot rows' shots, min 2)
    loss_floor: float = 0.0  # the task's irreducible loss (nats): E(D0) lies above it
    e0_margin: float = 0.75  # E(D0) lies at most this many nats below the strongest checkpoint
    sample: bool = True  # False: the MLE only (fast backtests; no intervals, no samples.npz)
    samples: int = 1000  # NUTS draws per chain
    warmup: int = 1000  # NUTS warmup steps per chain
    chains: int = 4  # NUTS chains, one CPU device each, so they run in parallel
    chain_method: str = "auto"  # auto | parallel | vectorized | sequential
    starts: int = 16  # MLE starts drawn from the priors; the best one is the headline
    seed: int = 0  # MLE starts and NUTS: the same seed gives the same numbers
    # the loss axis: nats-per-token (the table's pretrain_loss) or bits-per-byte (pretrain_bits_per_byte,
    # comparable across tokenizers); loss_floor, e0_margin and E(D0) are then in that unit
    loss_unit: str = "nats-per-token"

    def __post_init__(self) -> None:
        self.spec()  # the law's own checks: form, likelihood, loss_floor, e0_margin
        for name, least in {"samples": 1, "chains": 1, "starts": 1, "warmup": 0, "seed": 0}.items():
            if getattr(self, name) < least:
                raise UserError(f"{name} must be >= {least}, got {getattr(self, name)}")
        if self.chain_method not in CHAIN_METHODS:
            choices = ", ".join(CHAIN_METHODS)
            raise UserError(f"chain_method must be one of {choices}, got {self.chain_method}")
        from emergence.results_table import LOSS_COLUMNS

        if self.loss_unit not in LOSS_COLUMNS:
            raise UserError(f"loss_unit must be one of {', '.join(LOSS_COLUMNS)}, got {self.loss_unit}")
        if self.d0 is not None and not self.d0 >= 2:
            raise UserError(f"d0 must be at least 2, got {self.d0}")

    def spec(self):
        """The law variant (:class:`LawSpec`): every LawSpec field this class also names, and ``delta``."""
        from emergence.laws.emergence_law import LawSpec

        shared = {f.name for f in fields(LawSpec)} & {f.name for f in fields(self)}
        return LawSpec(use_delta=self.delta, **{name: getattr(self, name) for name in shared})

    def sampler(self):
        """How NUTS samples (:class:`~emergence.laws.nuts.SamplerConfig`)."""
        from emergence.laws.nuts import SamplerConfig

        return SamplerConfig(num_warmup=self.warmup, num_samples=self.samples, num_chains=self.chains,
                             seed=self.seed, chain_method=self.chain_method)  # fmt: skip


@dataclass(frozen=True)
class FitFile:
    """What ``emergence fit --config`` and its overrides set: a ``fit:`` section (a demo config's, less
    ``protocols``)."""

    fit: FitSettings = field(default_factory=FitSettings)
