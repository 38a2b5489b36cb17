"""Fit an observational scaling law end to end and write metrics.json.

Pipeline (docs/design.md, "Observational scaling law"): load and clean the table → transform the target
(scale, chance) → split train/test → impute and PCA *on training rows only* → floored-sigmoid fit on K
principal capabilities → the same sigmoid on ln FLOPs and ln params as baselines → per-family compute
efficiency and reference-family-equivalent FLOPs → optionally NUTS with predictive intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from emergence.errors import UserError
from emergence.laws.observational import data as obs_data
from emergence.laws.observational.bayes import BayesConfig, BayesFit, fit_bayes
from emergence.laws.observational.capability import CapabilityPCA, fit_pca
from emergence.laws.observational.families import (
    EquivalentFlops,
    family_efficiency,
    fit_equivalent_flops,
)
from emergence.laws.observational.holdout import DEFAULT_CUTOFF_FLOPS, split_by_cutoff, split_top_fraction
from emergence.laws.observational.impute import ImputeConfig, fit_imputer
from emergence.laws.observational.sigmoid import SigmoidConfig, SigmoidFit, fit_sigmoid, mse, r2

DEFAULT_REFERENCE_FAMILY = "Llama-2"


@dataclass(frozen=True)
class ObsConfig:
    """Everything one fit depends on; same config → same numbers."""

    data: str | None  # None: the shipped base-model table (data.DEFAULT_TABLE)
    target: str
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
    impute: ImputeConfig = ImputeConfig()
    bayes: BayesConfig | None = None


@dataclass
class ObsResult:
    """The fit, the per-model table behind the plots, and the JSON-ready metrics."""

    metrics: dict
    models: pd.DataFrame
    fit: SigmoidFit
    pca: CapabilityPCA
    equivalent: EquivalentFlops | None
    notes: list[str] = field(default_factory=list)


def _check_reference_family(config: ObsConfig, table: obs_data.ObsTable) -> None:
    """A reference family the table does not have is a typo, not a note among a hundred: refuse it.
    (The default, Llama-2, may be absent from a user's own table: then the fit says so in a note.
    A family present but filtered out by --families is a note too.)"""
    if obs_data.FAMILY_COL not in table.frame or config.reference_family == DEFAULT_REFERENCE_FAMILY:
        return
    known = sorted({str(f) for f in table.frame[obs_data.FAMILY_COL].dropna()})
    if config.reference_family not in known:
        raise UserError(
            f"--reference-family {config.reference_family!r}: no such family in {table.source} "
            f"(families: {', '.join(known)})"
        )


def _prepare(config: ObsConfig) -> tuple[obs_data.ObsTable, list[str], np.ndarray]:
    """Load, filter and parse; return the table, the benchmarks and the transformed target."""
    if config.cutoff is not None and config.holdout_top is not None:
        raise UserError("give either --cutoff or --holdout-top, not both")
    table = obs_data.load_table(config.data, config.join)
    _check_reference_family(config, table)
    obs_data.select_models(table, config.families, config.exclude_models)
    columns = list(table.frame.columns)
    if config.target not in columns:
        raise UserError(f"{table.source}: missing target column {config.target!r}")
    benchmarks = list(config.benchmarks) or obs_data.default_benchmarks(columns, config.target)
    for bench in benchmarks:
        if bench not in columns:
            raise UserError(f"{table.source}: missing benchmark column {bench!r}")
    if config.target in benchmarks:
        raise UserError(f"target {config.target!r} cannot also be a predictor (--benchmarks)")
    if not benchmarks:
        raise UserError(f"{table.source}: no benchmark columns to build capabilities from; use --benchmarks")
    obs_data.parse_numeric_columns(table, [config.target, *benchmarks])
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
    for model in table.frame.loc[~keep, obs_data.MODEL_COL]:
        table.notes.append(f"dropped model {model!r}: no value for target {config.target!r}")
    for model in table.frame.loc[keep & no_scores, obs_data.MODEL_COL]:
        table.notes.append(f"dropped model {model!r}: no benchmark scores")
    keep &= ~no_scores
    table.frame = table.frame.loc[keep].reset_index(drop=True)
    return table, benchmarks, y[keep]


def _split(config: ObsConfig, table: obs_data.ObsTable, y: np.ndarray) -> tuple[np.ndarray, dict]:
    if config.holdout_top is not None:
        return split_top_fraction(y, config.holdout_top), {"holdout_top": config.holdout_top}
    if table.flops_col is None:
        raise UserError(f"{table.source}: a FLOPs cutoff needs a 'FLOPs' column; or use --holdout-top")
    cutoff = DEFAULT_CUTOFF_FLOPS if config.cutoff is None else config.cutoff
    return split_by_cutoff(table.flops(), cutoff), {"cutoff_flops": cutoff}


def _baseline(x: np.ndarray, y: np.ndarray, train: np.ndarray, cfg: SigmoidConfig, label: str) -> dict:
    """The same sigmoid on one scale variable; rows where it is unknown are left out and counted."""
    ok = np.isfinite(x)
    tr, te = train & ok, ~train & ok
    out: dict = {"x": label, "n_train": int(tr.sum()), "n_test": int(te.sum()), "mse_test": None}
    if tr.sum() < 3:
        out["note"] = "fewer than 3 training models with this variable"
        return out
    fit = fit_sigmoid(x[tr], y[tr], cfg)
    pred = fit.predict(x[:, None])
    out.update(
        mse_train=mse(y[tr], pred[tr]),
        mse_test=mse(y[te], pred[te]),
        r2_test=r2(y[te], pred[te]),
        params=fit.as_dict([label]),
    )
    return out


def _log(values: np.ndarray, base: float = math.e) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(values) / math.log(base)
    return np.where(np.isfinite(out), out, np.nan)


def run_fit(config: ObsConfig) -> ObsResult:
    """Fit the law described by ``config``; pure computation, nothing written."""
    table, benchmarks, y = _prepare(config)
    train, split_info = _split(config, table, y)
    if train.sum() < 2 or (~train).sum() < 1:
        raise UserError(
            f"the split leaves {int(train.sum())} training and {int((~train).sum())} test models; "
            "adjust --cutoff/--holdout-top or the model filters"
        )
    scores = table.frame[benchmarks].to_numpy(float)
    imputer, train_scores = fit_imputer(scores[train], config.impute, benchmarks)
    filled = np.empty_like(scores)
    filled[train] = train_scores
    filled[~train] = imputer.transform(scores[~train])
    pca = fit_pca(filled[train], config.pcs, benchmarks)
    pcs = pca.transform(filled)
    fit = fit_sigmoid(pcs[train], y[train], config.sigmoid)
    pred = fit.predict(pcs)
    z = fit.linear(pcs)

    flops = table.flops()
    log10_flops = _log(flops, 10)
    frame = table.frame
    families = (
        frame[obs_data.FAMILY_COL].to_numpy(object)
        if obs_data.FAMILY_COL in frame
        else np.array(["?"] * len(frame), dtype=object)
    )
    equivalent = fit_equivalent_flops(families, log10_flops, z, config.reference_family)
    if equivalent is None:
        table.notes.append(
            f"no equivalent FLOPs: reference family {config.reference_family!r} has < 2 models with FLOPs"
        )
    efficiency = family_efficiency(families, log10_flops, pcs[:, 0])
    pc_names = [f"PC{k + 1}" for k in range(config.pcs)]
    models = pd.DataFrame(
        {
            "model": frame[obs_data.MODEL_COL].to_numpy(),
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
    bayes_metrics = None
    if config.bayes is not None:
        bfit = fit_bayes(pcs[train], y[train], pcs, config.bayes)
        models["bayes_mean"], models["bayes_lower"], models["bayes_upper"] = bfit.mean, bfit.lower, bfit.upper
        bayes_metrics = _bayes_metrics(bfit, y, train)

    metrics = {
        "target": config.target,
        "source": table.source,
        "benchmarks": benchmarks,
        "target_transform": {"scale": config.scale, "chance": config.chance},
        "split": split_info,
        "n_models": int(len(frame)),
        "n_families": int(len(set(families.tolist()))),
        "n_train": int(train.sum()),
        "n_test": int((~train).sum()),
        "mse_train": mse(y[train], pred[train]),
        "mse_test": mse(y[~train], pred[~train]),
        "r2_test": r2(y[~train], pred[~train]),
        "params": fit.as_dict(pc_names),
        "pca": {
            "explained_variance_ratio": [float(v) for v in pca.explained_variance_ratio],
            "loadings": pca.loadings(),
            "imputation_iterations": imputer.n_iter,
            "missing_cells": int(np.isnan(scores).sum()),
        },
        "baselines": {
            "log_flops": _baseline(_log(flops / 1e21), y, train, config.sigmoid, "ln(FLOPs/1e21)"),
            "log_params": _baseline(_log(table.params_b()), y, train, config.sigmoid, "ln(params/1e9)"),
        },
        "families": {k: (v.as_dict() if v else None) for k, v in efficiency.items()},
        "equivalent_flops": (
            {"reference_family": equivalent.reference, **equivalent.line.as_dict()} if equivalent else None
        ),
        "bayes": bayes_metrics,
        "notes": table.notes,
        "predictions": _json_records(models),
    }
    return ObsResult(_clean(metrics), models, fit, pca, equivalent, table.notes)


def _bayes_metrics(bfit: BayesFit, y: np.ndarray, train: np.ndarray) -> dict:
    return {
        "level": bfit.level,
        "coverage_test": bfit.coverage(y, ~train),
        "coverage_train": bfit.coverage(y, train),
        "mse_test_posterior_mean": mse(y[~train], bfit.mean[~train]),
        "mean_interval_width_test": float(np.mean(bfit.upper[~train] - bfit.lower[~train])),
        "params": bfit.params,
        "diagnostics": bfit.diagnostics,
    }


def run_families(
    data: str | None,
    join: str | None = None,
    benchmarks: tuple[str, ...] = (),
    families: tuple[str, ...] = (),
    exclude_models: tuple[str, ...] = (),
) -> tuple[dict, list[str]]:
    """Per-family compute efficiency on all rows (no target, no split): PC1 vs log10 FLOPs."""
    table = obs_data.load_table(data, join)
    obs_data.select_models(table, families, exclude_models)
    chosen = list(benchmarks) or obs_data.default_benchmarks(list(table.frame.columns), "")
    for bench in chosen:
        if bench not in table.frame:
            raise UserError(f"{table.source}: missing benchmark column {bench!r}")
    if obs_data.FAMILY_COL not in table.frame or table.flops_col is None:
        raise UserError(f"{table.source}: needs {obs_data.FAMILY_COL!r} and FLOPs columns")
    obs_data.parse_numeric_columns(table, chosen)
    scores = table.frame[chosen].to_numpy(float)
    keep = ~np.isnan(scores).all(axis=1)
    table.frame, scores = table.frame.loc[keep].reset_index(drop=True), scores[keep]
    _, filled = fit_imputer(scores, ImputeConfig(), chosen)
    pc1 = fit_pca(filled, 1, chosen).transform(filled)[:, 0]
    fams = table.frame[obs_data.FAMILY_COL].to_numpy(object)
    eff = family_efficiency(fams, _log(table.flops(), 10), pc1)
    return {k: (v.as_dict() if v else None) for k, v in eff.items()}, table.notes


def _json_records(models: pd.DataFrame) -> list[dict]:
    return [
        {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        for row in models.to_dict(orient="records")
    ]


def _clean(obj):
    """Make a structure strict-JSON: NaN/inf → None, numpy scalars → Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
