"""Iterative low-rank PCA imputation of missing benchmark scores, fit on training rows only.

Public models are not all evaluated on every benchmark. Following the paper, we z-score each benchmark
by the *training* rows, fill the gaps with the mean, then repeatedly reconstruct the matrix from its
leading principal component(s) and overwrite only the missing cells until they stop moving. Test rows
are filled with the training fit (its scaler and components), so no test score ever informs the
training features: changing a test row cannot change anything fitted here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emergence.errors import UserError


@dataclass(frozen=True)
class ImputeConfig:
    """How to impute: rank of the reconstruction, iteration cap, tolerance (z-units), clip range."""

    rank: int = 1
    max_iter: int = 1000
    tol: float = 1e-4
    clip: tuple[float, float] | None = (0.0, 1.0)


@dataclass(frozen=True)
class Imputer:
    """A fitted imputer: the training scaler and the low-rank PCA of the filled training matrix."""

    config: ImputeConfig
    center: np.ndarray  # per-column training mean (original units)
    scale: np.ndarray  # per-column training std (original units)
    pca_mean: np.ndarray  # column means of the filled, z-scored training matrix
    components: np.ndarray  # (rank, n_cols) orthonormal rows
    n_iter: int

    def _reconstruct(self, z: np.ndarray) -> np.ndarray:
        centered = z - self.pca_mean
        return self.pca_mean + centered @ self.components.T @ self.components

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Fill the missing cells of new rows with the training fit (observed cells are kept)."""
        x = np.asarray(x, dtype=float)
        missing = np.isnan(x)
        z = np.where(missing, 0.0, (x - self.center) / self.scale)
        if missing.any():
            for _ in range(self.config.max_iter):
                recon = self._reconstruct(z)
                delta = np.max(np.abs(recon[missing] - z[missing]))
                z[missing] = recon[missing]
                if delta < self.config.tol:
                    break
        return self._finish(z, x, missing)

    def _finish(self, z: np.ndarray, x: np.ndarray, missing: np.ndarray) -> np.ndarray:
        out = np.where(missing, z * self.scale + self.center, x)
        if self.config.clip is not None:
            out = np.where(missing, np.clip(out, *self.config.clip), out)
        return out


def _leading_components(z: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    mean = z.mean(axis=0)
    _, _, vt = np.linalg.svd(z - mean, full_matrices=False)
    return mean, vt[:rank]


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
    rank = min(config.rank, x.shape[1])
    center = np.nanmean(x, axis=0)
    scale = np.nanstd(x, axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = np.where(missing, 0.0, (x - center) / scale)
    pca_mean, comps = _leading_components(z, rank)
    n_iter = 0
    if missing.any():
        for n_iter in range(1, config.max_iter + 1):  # noqa: B007 - n_iter is reported
            recon = pca_mean + (z - pca_mean) @ comps.T @ comps
            delta = np.max(np.abs(recon[missing] - z[missing]))
            z[missing] = recon[missing]
            pca_mean, comps = _leading_components(z, rank)
            if delta < config.tol:
                break
    imputer = Imputer(config, center, scale, pca_mean, comps, n_iter)
    return imputer, imputer._finish(z, x, missing)
