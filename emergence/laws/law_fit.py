"""One emergence-law fit, end to end: checks, MLE, NUTS, summary, and the fit directory it leaves
behind (``fit.json`` + ``samples.npz``, written and read only here).

The CLI, backtests, the demo and the calibration all run this one sequence, so they share its
warnings about data that cannot identify the law; the warnings travel with the fit into fit.json,
so a narrow-looking interval is never reported without them.
"""

from __future__ import annotations

import time
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from emergence.errors import UserError
from emergence.fileio import atomic_write, read_json_object, write_json
from emergence.laws.baselines import baseline_predictions, budget_elbows
from emergence.laws.emergence_law import (
    Geometry,
    LawSpec,
    default_priors,
    derived,
    geometry,
    law_inputs,
)
from emergence.laws.fit_config import FitSettings
from emergence.laws.mle import MLEResult, fit_mle
from emergence.laws.nuts import Posterior, run_nuts
from emergence.laws.predict import quantiles
from emergence.laws.scaling import ComputeLaw, fit_ladder
from emergence.laws.table import LawData

FIT_JSON = "fit.json"
SAMPLES = "samples.npz"

#: A posterior 90% interval wider than this (nats) is flagged: the data barely constrain E(D0).
WIDE_INTERVAL_NATS = 0.5


@dataclass(frozen=True)
class LawFit:
    """A fitted emergence law: MLE, posterior (when sampled), and what to be wary of."""

    data: LawData
    spec: LawSpec
    geo: Geometry
    mle: MLEResult
    posterior: Posterior | None
    seconds: float
    warnings: tuple[str, ...]

    @property
    def mle_params(self) -> dict[str, float]:
        return {k: float(v) for k, v in derived(self.mle.theta, self.geo).items()}

    def draws(self) -> dict[str, np.ndarray] | None:
        """Posterior draws of the paper's parameters and E(D0), shape (chains, draws)."""
        if self.posterior is None:
            return None
        return derived(self.posterior.samples, self.geo)

    def e0_draws(self) -> np.ndarray | None:
        draws = self.draws()
        return None if draws is None else draws["e0"].reshape(-1)

    def emergence(self) -> dict[str, float]:
        """The headline numbers: MLE and posterior 5/50/95% of E(D0), in nats."""
        draws = self.e0_draws()
        return {"mle": self.mle_params["e0"], **quantiles(draws if draws is not None else [])}

    def baselines(self) -> dict[str, float]:
        """The naive forecasts of E(D0) from the same rows (emergence.laws.baselines)."""
        return baseline_predictions(self.data, self.spec.form)

    def summary(self) -> dict:
        """The body of fit.json (without timing and file names, which the caller adds). Losses are in
        nats/token unless ``loss_unit`` says otherwise (absent for nats, so earlier fits read the same)."""
        draws = self.draws()
        params = {
            name: {"mle": value, **(quantiles(draws[name]) if draws is not None else {})}
            for name, value in self.mle_params.items()
        }
        diagnostics = (
            asdict(self.posterior.diagnostics)
            if self.posterior is not None
            else {"r_hat_max": None, "ess_min": None, "divergences": None, "warnings": []}
        )
        return {
            "task": self.data.task,
            "metric": self.data.metric,
            "source": self.data.source,
            "n_rows": int(self.data.loss.size),
            "d0": self.data.d0,
            "chance": self.data.chance,
            "form": self.spec.form,
            "likelihood": self.spec.likelihood,
            "delta": self.spec.use_delta,
            "sharpness": self.spec.sharpness,
            "chance_sampled": self.spec.sample_chance,
            "e0_support": [self.geo.e0_lo, self.geo.e0_hi],
            "few_shot_emergence": self.emergence(),
            "baselines": self.baselines(),
            "params": params,
            "mle": {
                "nll": self.mle.nll,
                "starts": self.mle.n_starts,
                "converged": self.mle.n_converged,
                "at_bound": list(self.mle.at_bound),
            },
            "diagnostics": diagnostics,
            "sampler": None
            if self.posterior is None
            else {
                "chains": self.posterior.samples["e0_pos"].shape[0],
                "samples": self.posterior.samples["e0_pos"].shape[1],
                "warmup": self.posterior.warmup,
                "chain_method": self.posterior.chain_method,
                "seconds": self.posterior.seconds,
            },
            "notes": list(self.data.notes),
            "warnings": list(self.warnings),
            "seconds": self.seconds,
        } | ({} if self.data.loss_unit == "nats-per-token" else {"loss_unit": self.data.loss_unit})


def input_warnings(data: LawData, spec: LawSpec) -> tuple[LawSpec, list[str]]:
    """Degenerate-input checks; may switch Δ off (it is unidentified without few-shot rows)."""
    warnings = []
    spec = replace(spec, sample_chance=not data.chance_known)  # B is sampled only when chance is unknown
    if not data.fewshot.any():
        warnings.append(
            "no few-shot (budget 0) rows: E(D0) rests on extrapolation alone; fitted without delta"
        )
        spec = replace(spec, use_delta=False)
    if spec.likelihood == "binomial" and not np.isfinite([data.n_eval, data.n_correct]).all():
        raise UserError(f"{data.source}: likelihood binomial needs n_eval and n_correct on every row")
    risen = len(budget_elbows(data))
    if risen < 2:
        warnings.append(
            f"only {risen} finetuning budget(s) rise clearly above chance: the data barely identify how "
            "E(D) moves with D, so E(D0) comes mostly from the priors"
        )
    return spec, warnings


def fit_law(data: LawData, settings: FitSettings = FitSettings()) -> LawFit:
    """Fit one task/metric slice: MLE (multi-start), then NUTS started from it."""
    start = time.perf_counter()
    spec, warnings = input_warnings(data, settings.spec())
    geo = geometry(data, spec)
    x = law_inputs(data, geo)
    priors = default_priors(data, spec)
    mle = fit_mle(x, spec, priors, n_starts=settings.starts, seed=settings.seed)
    if mle.at_bound:
        names = ["E(D0) (the edge of its support)" if n == "e0_pos" else n for n in mle.at_bound]
        warnings.append(f"MLE on a bound for {', '.join(names)}: the point estimate is not identified")
    posterior = None
    if settings.sample:
        posterior = run_nuts(x, spec, priors, settings.sampler(), mle.optima)
        warnings.extend(posterior.diagnostics.warnings)
        e0 = quantiles(derived(posterior.samples, geo)["e0"])
        if e0["q95"] - e0["q05"] > WIDE_INTERVAL_NATS:
            warnings.append(
                f"wide 90% interval for E(D0) ({e0['q05']:.2f}–{e0['q95']:.2f} nats): "
                "the data constrain it weakly"
            )
    return LawFit(
        data=data,
        spec=spec,
        geo=geo,
        mle=mle,
        posterior=posterior,
        seconds=time.perf_counter() - start,
        warnings=tuple(warnings),
    )


def write_fit_dir(
    folder: str | Path, fit: LawFit, *, truth: float | None, files: dict[str, str], extra: dict | None = None
) -> tuple[dict, ComputeLaw | None]:
    """Write a fit directory: the posterior draws (samples.npz), then fit.json, last, so a folder with
    a fit.json holds a whole fit. fit.json is :meth:`LawFit.summary` plus the loss-vs-compute law over
    the fitted rows (or a note why there is none), the known truth, the folder's ``files`` (plots) and
    ``extra`` entries. Returns the summary and the compute law."""
    folder = Path(folder)
    summary = fit.summary()
    try:
        law = fit_ladder(fit.data)
        summary["compute_law"] = asdict(law)
    except UserError as err:
        law = None
        summary["compute_law"] = None
        summary["notes"].append(f"no loss-vs-compute law: {err}")
    drawn = {"samples": SAMPLES} if fit.posterior is not None else {}
    summary.update(truth_e0=truth, files={**drawn, **files}, **(extra or {}))
    folder.mkdir(parents=True, exist_ok=True)
    if fit.posterior is not None:
        arrays = {f"latent_{k}": v for k, v in fit.posterior.samples.items()}
        arrays.update({k: np.asarray(v, dtype=float) for k, v in fit.draws().items()})
        atomic_write(folder / SAMPLES, lambda handle: np.savez(handle, **arrays), binary=True)
    write_json(folder / FIT_JSON, summary, strict=True)
    return summary, law


@dataclass(frozen=True)
class FitDir:
    """What a forecast needs from a fit directory."""

    summary: dict
    e0_draws: np.ndarray
    compute_law: ComputeLaw | None


def read_fit_dir(path: str | Path) -> FitDir:
    """Read a folder written by :func:`write_fit_dir` (or its fit.json); a missing or damaged file is a
    UserError naming it."""
    path = Path(path)
    folder = path.parent if path.name == FIT_JSON else path
    if not (folder / FIT_JSON).is_file():
        raise UserError(f"no {FIT_JSON} in {folder} (run `emergence fit ... --out {folder}` first)")
    summary = read_json_object(folder / FIT_JSON, "fit summary")
    if not (folder / SAMPLES).is_file():
        raise UserError(f"no {SAMPLES} in {folder}: forecasts need the posterior draws")
    try:
        law = ComputeLaw(**summary["compute_law"]) if summary.get("compute_law") else None
        summary["task"] = str(summary["task"])
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"fit summary {folder / FIT_JSON}: missing or malformed field ({err})") from None
    try:
        with np.load(folder / SAMPLES, allow_pickle=False) as archive:  # safe load: no pickle
            draws = np.asarray(archive["e0"], dtype=float).reshape(-1)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise UserError(f"{folder / SAMPLES}: cannot read the posterior draws ({err}; truncated?)") from None
    if draws.size == 0 or not np.isfinite(draws).any():
        raise UserError(f"{folder / SAMPLES}: no finite E(D0) draws")
    return FitDir(summary, draws, law)
