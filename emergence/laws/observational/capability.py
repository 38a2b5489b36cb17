"""Principal capabilities: PCA of (imputed) benchmark scores, fit on training rows only.

Scores are *not* standardized (the paper's choice: benchmarks share the accuracy scale, and
standardizing would blow up near-constant ones). Components are signed so that each has positive total
loading, which makes PC1 "more capable = larger" and the fit deterministic across SVD sign flips.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emergence.errors import UserError


@dataclass(frozen=True)
class CapabilityPCA:
    """A fitted PCA: the training mean, K orthonormal components, explained-variance ratios."""

    mean: np.ndarray
    components: np.ndarray  # (K, n_benchmarks)
    explained_variance_ratio: np.ndarray
    benchmarks: tuple[str, ...]

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Project rows (complete, imputed scores) onto the K principal capabilities."""
        x = np.asarray(x, dtype=float)
        if np.isnan(x).any():
            raise ValueError("PCA input has missing values; impute first")
        return (x - self.mean) @ self.components.T

    def loadings(self) -> dict[str, dict[str, float]]:
        """Component loadings by benchmark, for metrics.json."""
        return {
            f"PC{k + 1}": {b: float(v) for b, v in zip(self.benchmarks, comp, strict=True)}
            for k, comp in enumerate(self.components)
        }


def fit_pca(x_train: np.ndarray, n_components: int, benchmarks: list[str]) -> CapabilityPCA:
    """Fit an unstandardized PCA with ``n_components`` on the training rows."""
    x = np.asarray(x_train, dtype=float)
    n, d = x.shape
    if not 1 <= n_components <= min(n, d):
        raise UserError(
            f"--pcs {n_components} is out of range: {n} training models and {d} benchmarks allow 1..{min(n, d)}"
        )
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    comps = vt[:n_components].copy()
    signs = np.where(comps.sum(axis=1) < 0, -1.0, 1.0)
    comps *= signs[:, None]
    var = s**2
    ratio = var[:n_components] / var.sum() if var.sum() > 0 else np.zeros(n_components)
    return CapabilityPCA(mean, comps, ratio, tuple(benchmarks))
