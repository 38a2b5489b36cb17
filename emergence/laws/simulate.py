"""Draw results tables from the emergence law with known parameters.

The law's claims (recovery, calibrated intervals, backtest success) can only be checked where the
truth is known. A design imitates a real sweep (a Chinchilla-style ladder, several finetuning
budgets and subset seeds, binomial evaluation noise), with the few-shot elbow ``lead`` nats ahead of
a chosen checkpoint, so a table may hold no few-shot emergence at all, the researcher's real
situation. ``draw_prior_truth`` draws the parameters from the fit's own priors instead, for
simulation-based calibration.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from emergence.errors import UserError
from emergence.fileio import read_json, write_json
from emergence.results_table import RESULT_COLUMNS, write_results


@dataclass(frozen=True)
class Design:
    """Which cells a simulated sweep has."""

    sizes: tuple[float, ...] = (20e6, 60e6, 150e6, 400e6)
    steps_per_size: int = 3  # intermediate checkpoints per size (the last at 20 tokens/param)
    budgets: tuple[int, ...] = (64, 256, 1024, 4096, 16384)
    seeds: tuple[int, ...] = (0, 1)
    shots: int = 5
    d0: float | None = None  # the few-shot point's data amount, as the fit's `d0` (default: shots, min 2)
    n_eval: int = 1000
    n_emerged: int = 2  # at most this many checkpoints past the few-shot elbow
    lead: tuple[float, float] = (0.05, 0.5)  # E(D0) this many nats below the (n_emerged+1)-th strongest
    losses: tuple[float, ...] = ()  # explicit checkpoint losses (a real sweep's ladder) instead of sizes
    chance: float = 0.25
    task: str = "synthetic"

    def __post_init__(self) -> None:
        if not len(self.budgets) >= 1 or self.steps_per_size < 1 or not (self.sizes or self.losses):
            raise UserError("simulation design needs sizes (or losses), steps_per_size >= 1 and budgets")
        if not 0 <= self.lead[0] <= self.lead[1]:
            raise UserError(f"simulation lead must be 0 <= low <= high nats (got {self.lead})")


@dataclass(frozen=True)
class Truth:
    """Known law parameters (paper symbols) of a simulated table."""

    A: float
    B: float
    delta: float
    k: float
    alpha: float
    C: float
    d0: float
    form: str = "log-power"
    sharpness: float = 200.0
    finetune_sd: float = 0.01  # per-finetune scatter around the law

    def elbow(self, budget: np.ndarray | float) -> np.ndarray:
        budget = np.asarray(budget, dtype=float)
        d = np.where(budget == 0, self.d0, budget)
        g = np.log(d) if self.form == "log-power" else d
        return self.k * g**self.alpha + self.C

    @property
    def e0(self) -> float:
        return float(self.elbow(0.0))


def fewshot_d0(design: Design) -> float:
    """D0 of a design, resolved as the fit resolves it: its explicit ``d0``, else the shot count."""
    from emergence.laws.table import resolve_d0

    return resolve_d0(design.d0, np.asarray([design.shots], dtype=float))[0]


def ladder(design: Design) -> pd.DataFrame:
    """Checkpoints of the ladder with params, tokens, FLOPs and a Chinchilla-style pretraining loss
    (or the design's explicit losses, with compute that grows as the loss falls)."""
    rows = []
    for i, loss in enumerate(sorted(design.losses, reverse=True)):
        flops = 1e15 * 2.0**i
        rows.append((f"sim-{i:02d}", 1e6, flops / 6e6, flops, loss))
    for params in design.sizes:
        final_tokens = 20.0 * params
        for step in range(1, design.steps_per_size + 1):
            tokens = final_tokens * step / design.steps_per_size
            loss = 1.69 + 406.4 / params**0.34 + 410.7 / tokens**0.28
            rows.append((f"sim-{params / 1e6:.0f}m-step{step}", params, tokens, 6.0 * params * tokens, loss))
    return pd.DataFrame(rows, columns=["checkpoint", "params", "tokens", "flops", "pretrain_loss"])


def draw_truth(design: Design, rng: np.random.Generator, form: str = "log-power") -> Truth:
    """A realistic truth for a design: the few-shot elbow ``lead`` nats ahead of the checkpoint with
    ``n_emerged`` stronger ones (so at most ``n_emerged`` checkpoints have emerged few-shot)."""
    losses = np.sort(ladder(design)["pretrain_loss"].to_numpy())
    n = min(max(design.n_emerged, 0), losses.size - 1)
    # never at or below a zero loss: a ladder already near the floor leaves less room ahead
    e0 = losses[n] - rng.uniform(design.lead[0], min(design.lead[1], 0.9 * losses[n]))
    e_max = np.quantile(losses, rng.uniform(0.55, 0.85))
    alpha = float(rng.uniform(0.7, 2.0) if form == "log-power" else rng.uniform(0.15, 0.5))
    d0 = fewshot_d0(design)
    g = (lambda d: math.log(d)) if form == "log-power" else (lambda d: float(d))
    k = (e_max - e0) / (g(max(design.budgets)) ** alpha - g(d0) ** alpha)
    # A keeps the strongest finetuned checkpoint below the metric's maximum (where the law caps Perf)
    headroom = rng.uniform(0.35, 0.65)
    return Truth(
        A=float(headroom / (e_max - losses[0])),
        B=design.chance,
        delta=float(rng.normal(0.0, 0.02)),
        k=float(k),
        alpha=alpha,
        C=float(e0 - k * g(d0) ** alpha),
        d0=d0,
        form=form,
    )


def draw_prior_truth(design: Design, rng: np.random.Generator, form: str = "log-power") -> Truth:
    """A truth drawn from the law's own priors on this design (simulation-based calibration).

    The priors depend on the data's scale only (loss range, chance, metric maximum), so they are
    taken from the design's ladder; B is the design's chance level, as the fit assumes.
    """
    from emergence.laws.emergence_law import LawSpec, default_priors, derived, geometry, prior_draws
    from emergence.laws.table import select

    spec = LawSpec(form=form)
    skeleton = select(
        simulate(Truth(0.0, design.chance, 0.0, 0.0, 1.0, 0.0, 2.0), design, 0),
        design.task,
        chance=design.chance,
        d0=design.d0,
    )
    geo = geometry(skeleton, spec)
    theta = {
        k: float(v[0])
        for k, v in prior_draws(default_priors(skeleton, spec), spec, 1, int(rng.integers(2**31))).items()
    }
    p = derived(theta, geo)
    law = {name: float(p[name]) for name in ("A", "k", "alpha", "C")}
    return Truth(**law, B=design.chance, delta=float(p.get("delta", 0.0)), d0=float(skeleton.d0), form=form)


def simulate(truth: Truth, design: Design, seed: int) -> pd.DataFrame:
    """One results table (docs/design.md "Results row" columns plus `acc`) drawn from the law."""
    rng = np.random.default_rng(seed)
    rows = []
    for _, ckpt in ladder(design).iterrows():
        for budget in (0, *design.budgets):
            for subset_seed in design.seeds:
                e = float(truth.elbow(budget))
                x = truth.sharpness * (e - ckpt.pretrain_loss)
                mean = truth.B + truth.A * np.logaddexp(0.0, x) / truth.sharpness
                if budget == 0:
                    mean += truth.delta
                else:
                    mean += rng.normal(0.0, truth.finetune_sd)
                p = float(np.clip(mean, 0.0, 1.0))  # the metric's maximum caps the rise
                n_correct = int(rng.binomial(design.n_eval, p))
                cell = f"{ckpt.checkpoint}|{design.task}|{budget}|{subset_seed}|{seed}"
                rows.append(
                    {
                        **ckpt.to_dict(),
                        "task": design.task,
                        "shots": design.shots if budget == 0 else 0,
                        "budget": budget,
                        "subset_seed": subset_seed,
                        "method": "none" if budget == 0 else "lora",
                        "n_eval": design.n_eval,
                        "n_correct": n_correct,
                        "seconds": np.nan,
                        "config_hash": hashlib.sha256(cell.encode()).hexdigest()[:16],
                        "code_version": "simulated",
                        "acc": n_correct / design.n_eval,
                    }
                )
    frame = pd.DataFrame(rows)
    return frame[[*RESULT_COLUMNS, "acc"]]


def truth_record(truth: Truth, design: Design, seed: int) -> dict:
    """What the sidecar `<table>.truth.json` holds: the parameters and the true E(D0)."""
    return {"truth": asdict(truth), "e0": truth.e0, "design": asdict(design), "seed": seed}


def write_table(frame: pd.DataFrame, path: str | Path, truth: dict | None = None) -> Path:
    """Write CSV or Parquet atomically; the truth (if given) goes next to it as `<name>.truth.json`."""
    path = write_results(frame, path)
    if truth is not None:
        write_json(truth_path(path), truth, strict=True)
    return path


def truth_path(table: str | Path) -> Path:
    """Sidecar path of a simulated table's truth."""
    table = Path(table)
    return table.with_name(table.stem + ".truth.json")


def read_truth(table: str | Path) -> dict | None:
    """The sidecar truth of a simulated table, if there is one."""
    path = truth_path(table)
    return read_json(path, "simulated truth") if path.is_file() else None
