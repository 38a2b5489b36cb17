"""Model families' compute efficiency, and every model's 'reference-family-equivalent FLOPs'.

Within one family (same data, same recipe) capability grows log-linearly with compute, but families
differ in how much capability they buy per FLOP. A per-family line PC1 = slope·log10 FLOPs + intercept
measures that efficiency. Conversely, regressing the fitted linear predictor on log10 FLOPs inside a
reference family (Llama-2 by default) gives a ruler that maps *any* model, open or closed, to "the
compute a Llama-2 would have needed to be this capable": the x axis of the forecast plot.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from emergence.laws.observational.sigmoid import r2


@dataclass(frozen=True)
class LineFit:
    """y = slope·x + intercept by ordinary least squares, with R² and the number of points."""

    slope: float
    intercept: float
    r2: float | None
    n: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


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
