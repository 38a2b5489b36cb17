"""Fit an observational scaling law end to end (the method: docs/design.md, "Observational scaling law").

The split mimics forecasting: train on small models, test on the ones that came later. A compute cutoff
trains on the models with FLOPs ≤ cutoff (unknown FLOPs cannot be placed below it, so they go to test);
for closed models without FLOPs, the top fraction by the target itself is held out.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, is_dataclass, replace

import numpy as np
import pandas as pd

from emergence.errors import UserError
from emergence.fileio import finite_or_null
from emergence.laws.observational import capability, law
from emergence.laws.observational import data as obs_data
from emergence.laws.observational.data import FAMILY_COL, MODEL_COL, SIZE_COL, ObsTable
from emergence.laws.observational.law import BayesConfig, SigmoidConfig, mse, r2

DEFAULT_REFERENCE_FAMILY = "Llama-2"
DEFAULT_CUTOFF_FLOPS = 84e21  # Llama-2-7B's training compute: the paper's default cutoff


@dataclass(frozen=True)
class ObsConfig:
    """Everything one fit depends on; same config → same numbers. (`run_families` reads only the
    table, its filters and the predictors: it has no target.)"""

    data: str | None = None  # None: the shipped base-model table (data.DEFAULT_TABLE)
    target: str = ""
    join: str | None = None
    scale: float | None = None  # divide the raw target by this (e.g. 10 for a 0–10 score)
    chance: float | None = None  # then map chance→0, 1→1: (y − chance)/(1 − chance)
    pcs: int = 3
    cutoff: float | None = None  # FLOPs; the default split when holdout_top is not given
    holdout_top: float | None = None
    benchmarks: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    exclude_models: tuple[str, ...] = ()
    reference_family: str = DEFAULT_REFERENCE_FAMILY
    sigmoid: SigmoidConfig = SigmoidConfig()
    impute: capability.ImputeConfig = capability.ImputeConfig()
    bayes: BayesConfig | None = None


@dataclass(frozen=True)
class ObsResult:
    """The JSON-ready metrics, the per-model table behind the plots, the fit and its compute ruler."""

    metrics: dict
    models: pd.DataFrame
    fit: law.SigmoidFit
    equivalent: capability.EquivalentFlops | None


def split_by_cutoff(flops: np.ndarray, cutoff: float) -> np.ndarray:
    """Boolean train mask: FLOPs known and ≤ cutoff (with a relative tolerance for unit rounding)."""
    if not cutoff > 0:
        raise UserError(f"--cutoff must be positive FLOPs, got {cutoff}")
    flops = np.asarray(flops, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(flops) & (flops <= cutoff * (1 + 1e-9))


def split_top_fraction(target: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean train mask: all but the top ``floor(fraction·n)`` models by target (at least one)."""
    if not 0 < fraction < 1:
        raise UserError(f"--holdout-top must be in (0, 1), got {fraction}")
    target = np.asarray(target, dtype=float)
    n_test = max(1, math.floor(fraction * target.size + 1e-9))
    train = np.ones(target.size, dtype=bool)
    train[np.argsort(-target, kind="stable")[:n_test]] = False
    return train


def _load(config: ObsConfig) -> tuple[ObsTable, list[str]]:
    """Load and filter the table, check the target (if any) and predictor columns, parse them.

    A reference family the table lacks is a typo, not a note among a hundred: refused. The default
    (Llama-2) may be absent from a user's own table, and a family filtered out by --families is only
    noted by the fit."""
    table = obs_data.load_table(config.data, config.join)
    target, reference = config.target, config.reference_family
    if reference != DEFAULT_REFERENCE_FAMILY and FAMILY_COL in table.frame:
        known = sorted(set(table.frame[FAMILY_COL]))
        if reference not in known:
            raise UserError(
                f"--reference-family {reference!r}: no such family in {table.source} "
                f"(families: {', '.join(known)})"
            )
    obs_data.select_models(table, config.families, config.exclude_models)
    if target and target not in table.frame:
        raise UserError(f"{table.source}: missing target column {target!r}")
    chosen = obs_data.benchmark_columns(table, config.benchmarks, target)
    obs_data.parse_numeric_columns(table, [target, *chosen] if target else chosen)
    return table, chosen


def _prepare(config: ObsConfig) -> tuple[ObsTable, list[str], np.ndarray]:
    """Load, filter and parse; return the table, the benchmarks and the transformed target."""
    if config.cutoff is not None and config.holdout_top is not None:
        raise UserError("give either --cutoff or --holdout-top, not both")
    if not config.target:
        raise UserError("a fit needs a target column (--target)")
    table, benchmarks = _load(config)
    obs_data.check_quirks(table)
    y = table.frame[config.target].to_numpy(float)
    if config.scale is not None:
        if not config.scale > 0:
            raise UserError(f"--scale must be positive, got {config.scale}")
        y = y / config.scale
    if config.chance is not None:
        if not 0 <= config.chance < 1:
            raise UserError(f"--chance must be in [0, 1), got {config.chance}")
        y = (y - config.chance) / (1.0 - config.chance)
    keep = np.isfinite(y)
    if not keep.any():
        raise UserError(f"{table.source}: target column {config.target!r} has no values in the selected rows")
    no_scores = table.frame[benchmarks].isna().all(axis=1).to_numpy()
    for model in table.frame.loc[~keep, MODEL_COL]:
        table.notes.append(f"dropped model {model!r}: no value for target {config.target!r}")
    for model in table.frame.loc[keep & no_scores, MODEL_COL]:
        table.notes.append(f"dropped model {model!r}: no benchmark scores")
    keep &= ~no_scores
    table.frame = table.frame.loc[keep].reset_index(drop=True)
    return table, benchmarks, y[keep]


def _split(config: ObsConfig, table: ObsTable, y: np.ndarray) -> tuple[np.ndarray, dict]:
    if config.holdout_top is not None:
        train, info = split_top_fraction(y, config.holdout_top), {"holdout_top": config.holdout_top}
    elif table.flops_col is None:
        raise UserError(f"{table.source}: a FLOPs cutoff needs a 'FLOPs' column; or use --holdout-top")
    else:
        cutoff = DEFAULT_CUTOFF_FLOPS if config.cutoff is None else config.cutoff
        train, info = split_by_cutoff(table.flops(), cutoff), {"cutoff_flops": cutoff}
    if train.sum() < 2 or (~train).sum() < 1:
        raise UserError(
            f"the split leaves {int(train.sum())} training and {int((~train).sum())} test models; "
            "adjust --cutoff/--holdout-top or the model filters"
        )
    return train, info


def _baseline(x: np.ndarray, y: np.ndarray, train: np.ndarray, cfg: SigmoidConfig, label: str) -> dict:
    """The same sigmoid on one scale variable; rows where it is unknown are left out and counted."""
    tr, te = train & np.isfinite(x), ~train & np.isfinite(x)
    out: dict = {"x": label, "n_train": int(tr.sum()), "n_test": int(te.sum()), "mse_test": None}
    if tr.sum() < 3:
        return {**out, "note": "fewer than 3 training models with this variable"}
    fit = law.fit_sigmoid(x[tr], y[tr], cfg)
    pred = fit.predict(x[:, None])
    return {**out, "mse_train": mse(y[tr], pred[tr]), "mse_test": mse(y[te], pred[te]),
            "r2_test": r2(y[te], pred[te]), "params": fit.as_dict([label])}  # fmt: skip


def _log(values: np.ndarray, base: float = math.e) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(values) / math.log(base)
    return np.where(np.isfinite(out), out, np.nan)


def run_fit(config: ObsConfig) -> ObsResult:
    """Fit the law described by ``config``; pure computation, nothing written."""
    table, benchmarks, y = _prepare(config)
    train, split_info = _split(config, table, y)
    scores = table.frame[benchmarks].to_numpy(float)
    imputer, filled_train = capability.fit_imputer(scores[train], config.impute, benchmarks)
    filled = np.empty_like(scores)
    filled[train], filled[~train] = filled_train, imputer.transform(scores[~train])
    pca = capability.fit_pca(filled[train], config.pcs)
    pcs = pca.transform(filled)
    fit = law.fit_sigmoid(pcs[train], y[train], config.sigmoid)
    pred, z = fit.predict(pcs), fit.linear(pcs)

    frame, flops = table.frame, table.flops()
    sizes = frame[SIZE_COL].to_numpy(float) if SIZE_COL in frame else np.full(len(frame), np.nan)
    log10_flops = _log(flops, 10)
    families = frame[FAMILY_COL].to_numpy(object) if FAMILY_COL in frame else np.full(len(frame), "?", object)
    equivalent = capability.fit_equivalent_flops(families, log10_flops, z, config.reference_family)
    if equivalent is None:
        table.notes.append(
            f"no equivalent FLOPs: reference family {config.reference_family!r} has < 2 models with FLOPs"
        )
    pc_names = [f"PC{k + 1}" for k in range(config.pcs)]
    models = pd.DataFrame(
        {
            "model": frame[MODEL_COL].to_numpy(),
            "family": families,
            "split": np.where(train, "train", "test"),
            "actual": y,
            "predicted": pred,
            "linear_predictor": z,
            "log10_flops": log10_flops,
            "equivalent_log10_flops": equivalent.log10_flops(z) if equivalent else np.nan,
            **{name: pcs[:, k] for k, name in enumerate(pc_names)},
        }
    )
    bayes = None
    if config.bayes is not None:
        bfit = law.fit_bayes(pcs[train], y[train], pcs, config.bayes, config.sigmoid)
        models["bayes_mean"], models["bayes_lower"], models["bayes_upper"] = bfit.mean, bfit.lower, bfit.upper
        bayes = {
            "level": bfit.level,
            "coverage_test": bfit.coverage(y, ~train),
            "coverage_train": bfit.coverage(y, train),
            "mse_test_posterior_mean": mse(y[~train], bfit.mean[~train]),
            "mean_interval_width_test": float(np.mean(bfit.upper[~train] - bfit.lower[~train])),
            "params": bfit.params,
            "diagnostics": bfit.diagnostics,
        }
    metrics = {
        "target": config.target,
        "source": table.source,
        "benchmarks": benchmarks,
        "target_transform": {"scale": config.scale, "chance": config.chance},
        "split": split_info,
        "n_models": len(frame),
        "n_families": len(set(families)),
        "n_train": int(train.sum()),
        "n_test": int((~train).sum()),
        "mse_train": mse(y[train], pred[train]),
        "mse_test": mse(y[~train], pred[~train]),
        "r2_test": r2(y[~train], pred[~train]),
        "params": fit.as_dict(pc_names),
        "pca": {
            "explained_variance_ratio": pca.explained_variance_ratio,
            "loadings": {
                f"PC{k + 1}": dict(zip(benchmarks, comp, strict=True)) for k, comp in enumerate(pca.components)
            },
            "imputation_iterations": imputer.n_iter,
            "missing_cells": int(np.isnan(scores).sum()),
        },
        "baselines": {
            "log_flops": _baseline(_log(flops / 1e21), y, train, config.sigmoid, "ln(FLOPs/1e21)"),
            "log_params": _baseline(_log(sizes), y, train, config.sigmoid, "ln(params/1e9)"),
        },
        "families": capability.family_efficiency(families, log10_flops, pcs[:, 0]),
        "equivalent_flops": (
            {"reference_family": equivalent.reference, **asdict(equivalent.line)} if equivalent else None
        ),
        "bayes": bayes,
        "notes": table.notes,
        "predictions": models.to_dict(orient="records"),
    }
    return ObsResult(_clean(metrics), models, fit, equivalent)


def run_families(config: ObsConfig) -> tuple[dict[str, capability.LineFit | None], list[str]]:
    """Per-family compute efficiency on all rows (no target, no split): PC1 against log10 FLOPs."""
    table, chosen = _load(replace(config, target=""))
    if FAMILY_COL not in table.frame or table.flops_col is None:
        raise UserError(f"{table.source}: needs {FAMILY_COL!r} and FLOPs columns")
    scores = table.frame[chosen].to_numpy(float)
    keep = ~np.isnan(scores).all(axis=1)
    _, filled = capability.fit_imputer(scores[keep], columns=chosen)
    pc1 = capability.fit_pca(filled, 1).transform(filled)[:, 0]
    fams = table.frame[FAMILY_COL].to_numpy(object)[keep]
    return capability.family_efficiency(fams, _log(table.flops(), 10)[keep], pc1), table.notes


def _clean(metrics: dict) -> dict:
    """Strict JSON: numpy values and dataclasses become Python, NaN and infinities become None."""

    def plain(obj):
        return asdict(obj) if is_dataclass(obj) else obj.tolist()  # numpy arrays and scalars

    return finite_or_null(json.loads(json.dumps(metrics, default=plain)))
