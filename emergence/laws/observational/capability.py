"""Principal capabilities, fit on training rows only, and how they grow with compute.

Missing scores are filled by the paper's iterative low-rank imputation (docs/design.md); test rows are
filled with the training fit, so no test score informs anything fitted here. The PCA is on
unstandardized scores (benchmarks share the accuracy scale; standardizing would blow up near-constant
ones), its components signed so that PC1 is "more capable = larger" whatever sign the SVD picks.

Families differ in how much capability they buy per FLOP: a per-family line PC1 = slope·log10 FLOPs +
intercept measures it. The same line for the law's linear predictor inside a reference family (Llama-2
by default) is a ruler mapping any model, open or closed, to "the compute a Llama-2 would have needed
to be this capable": the forecast plot's x axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emergence.errors import UserError
from emergence.laws.observational.law import r2


@dataclass(frozen=True)
class ImputeConfig:
    """Rank of the reconstruction, iteration cap, tolerance (z-units), clip range of filled cells."""

    rank: int = 1
    max_iter: int = 1000
    tol: float = 1e-4
    clip: tuple[float, float] = (0.0, 1.0)


def _svd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column means, singular values and right singular vectors of the centered matrix."""
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    return mean, s, vt


def _fill(z, missing, mean, comps, config: ImputeConfig, refit: bool):
    """Overwrite the missing cells of ``z`` (in place) with their low-rank reconstruction until they
    stop moving; with ``refit``, the components follow the filled matrix. Returns the final fit and
    the number of iterations."""
    n_iter = 0
    if missing.any():
        for n_iter in range(1, config.max_iter + 1):  # noqa: B007 - n_iter is reported
            recon = mean + (z - mean) @ comps.T @ comps
            delta = np.max(np.abs(recon[missing] - z[missing]))
            z[missing] = recon[missing]
            if refit:
                mean, _, vt = _svd(z)
                comps = vt[: len(comps)]
            if delta < config.tol:
                break
    return mean, comps, n_iter


@dataclass(frozen=True)
class Imputer:
    """A fitted imputer: the training scaler and the low-rank PCA of the filled training matrix."""

    config: ImputeConfig
    center: np.ndarray  # per-column training mean (original units)
    scale: np.ndarray  # per-column training std (original units)
    pca_mean: np.ndarray  # column means of the filled, z-scored training matrix
    components: np.ndarray  # (rank, n_cols) orthonormal rows
    n_iter: int

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Fill the missing cells of new rows with the training fit (observed cells are kept)."""
        x = np.asarray(x, dtype=float)
        missing = np.isnan(x)
        z = np.where(missing, 0.0, (x - self.center) / self.scale)
        _fill(z, missing, self.pca_mean, self.components, self.config, refit=False)
        return self.unscale(z, x, missing)

    def unscale(self, z: np.ndarray, x: np.ndarray, missing: np.ndarray) -> np.ndarray:
        """The observed cells of ``x`` with the filled cells of ``z`` in original units, clipped."""
        return np.where(missing, np.clip(z * self.scale + self.center, *self.config.clip), x)


def fit_imputer(
    x_train: np.ndarray, config: ImputeConfig = ImputeConfig(), columns: list[str] | None = None
) -> tuple[Imputer, np.ndarray]:
    """Fit on training rows; return the imputer and the filled training matrix."""
    x = np.asarray(x_train, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2:
        raise UserError(f"imputation needs at least 2 training rows, got {x.shape[0]}")
    missing = np.isnan(x)
    empty = np.flatnonzero(missing.all(axis=0))
    if empty.size:
        name = columns[empty[0]] if columns else f"#{empty[0]}"
        raise UserError(f"benchmark {name!r} has no value in any training row; drop it from --benchmarks")
    center = np.nanmean(x, axis=0)
    scale = np.nanstd(x, axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = np.where(missing, 0.0, (x - center) / scale)
    mean, _, vt = _svd(z)
    mean, comps, n_iter = _fill(z, missing, mean, vt[: min(config.rank, x.shape[1])], config, refit=True)
    imputer = Imputer(config, center, scale, mean, comps, n_iter)
    return imputer, imputer.unscale(z, x, missing)


@dataclass(frozen=True)
class CapabilityPCA:
    """A fitted PCA: the training mean, K orthonormal components, explained-variance ratios."""

    mean: np.ndarray
    components: np.ndarray  # (K, n_benchmarks)
    explained_variance_ratio: np.ndarray

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Project complete (imputed) score rows onto the K principal capabilities."""
        return (np.asarray(x, dtype=float) - self.mean) @ self.components.T


def fit_pca(x_train: np.ndarray, n_components: int) -> CapabilityPCA:
    """Fit an unstandardized PCA with ``n_components`` on the training rows."""
    x = np.asarray(x_train, dtype=float)
    n, d = x.shape
    if not 1 <= n_components <= min(n, d):
        allowed = f"{n} training models and {d} benchmarks allow 1..{min(n, d)}"
        raise UserError(f"--pcs {n_components} is out of range: {allowed}")
    mean, s, vt = _svd(x)
    comps = vt[:n_components] * np.where(vt[:n_components].sum(axis=1) < 0, -1.0, 1.0)[:, None]
    var = s**2
    ratio = var[:n_components] / var.sum() if var.sum() > 0 else np.zeros(n_components)
    return CapabilityPCA(mean, comps, ratio)


@dataclass(frozen=True)
class LineFit:
    """y = slope·x + intercept by ordinary least squares, with R² and the number of points."""

    slope: float
    intercept: float
    r2: float | None
    n: int


def fit_line(x: np.ndarray, y: np.ndarray) -> LineFit | None:
    """OLS line through finite points; None with fewer than 2 distinct x values."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if np.unique(x).size < 2:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    return LineFit(float(slope), float(intercept), r2(y, slope * x + intercept), int(x.size))


def family_efficiency(
    families: np.ndarray, log10_flops: np.ndarray, pc1: np.ndarray
) -> dict[str, LineFit | None]:
    """Per family: PC1 against log10 FLOPs (None where fewer than two models have FLOPs)."""
    families = np.asarray(families, dtype=object)
    return {str(f): fit_line(log10_flops[families == f], pc1[families == f]) for f in dict.fromkeys(families)}


@dataclass(frozen=True)
class EquivalentFlops:
    """The reference family's ruler: linear predictor z = slope·log10 FLOPs + intercept."""

    reference: str
    line: LineFit

    def log10_flops(self, z: np.ndarray) -> np.ndarray:
        """Invert the ruler: the log10 FLOPs at which a reference-family model reaches predictor z."""
        return (np.asarray(z, float) - self.line.intercept) / self.line.slope

    def predictor(self, log10_flops: np.ndarray) -> np.ndarray:
        return self.line.slope * np.asarray(log10_flops, float) + self.line.intercept


def fit_equivalent_flops(
    families: np.ndarray, log10_flops: np.ndarray, z: np.ndarray, reference: str
) -> EquivalentFlops | None:
    """Fit the ruler in the reference family; None when it has < 2 models with FLOPs or a flat line."""
    mask = np.asarray(families, dtype=object) == reference
    line = fit_line(log10_flops[mask], z[mask])
    return EquivalentFlops(reference, line) if line is not None and line.slope != 0 else None
