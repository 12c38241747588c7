"""Population stability index (PSI): how far a distribution moved from a reference.

PSI = sum over bins of (a - e) * ln(a / e), with e and a the shares of the reference
(expected) and the current (actual) values in each bin. Bins are quantiles of the
reference, so each holds about the same share of it; missing values get a bin of their
own, so a feature that starts arriving null drifts too. Usual reading: below 0.1 stable,
0.1 to 0.25 a moderate shift, above 0.25 a major one.
"""

from __future__ import annotations

import numpy as np

EPSILON = 1e-4  # floor of a bin's share: an empty bin would make ln(a / e) infinite


def quantile_edges(reference: np.ndarray, n_bins: int) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (fewer when values repeat).

    Args:
        reference: Reference values; NaN are ignored.
        n_bins: Bins wanted; a feature with few distinct values gets fewer.

    Raises:
        ValueError: When ``n_bins`` is below 2.
    """
    if n_bins < 2:
        raise ValueError(f"PSI needs at least 2 bins, got n_bins={n_bins}")
    values = np.asarray(reference, dtype=np.float64)
    finite = values[~np.isnan(values)]
    if not len(finite):
        return np.empty(0)
    quantiles = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    # Edges are values of the reference: a feature with few values keeps them whole.
    return np.unique(np.quantile(finite, quantiles, method="inverted_cdf"))


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin: ``len(edges) + 1`` value bins (left-closed), then one for NaN."""
    values = np.asarray(values, dtype=np.float64)
    index = np.searchsorted(edges, values, side="right")
    index[np.isnan(values)] = len(edges) + 1
    return np.bincount(index, minlength=len(edges) + 2)


def psi(expected: np.ndarray, actual: np.ndarray, epsilon: float = EPSILON) -> float:
    """PSI of two count (or share) vectors over the same bins.

    Raises:
        ValueError: When the vectors differ in length or one of them is all zeros.
    """
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    if expected.shape != actual.shape:
        raise ValueError(
            f"PSI needs counts over the same bins, got {expected.shape} and {actual.shape}"
        )
    if expected.sum() <= 0 or actual.sum() <= 0:
        raise ValueError("PSI of an empty distribution is undefined: both need values")
    e = np.maximum(expected / expected.sum(), epsilon)
    a = np.maximum(actual / actual.sum(), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_between(
    reference: np.ndarray, current: np.ndarray, n_bins: int, epsilon: float = EPSILON
) -> float:
    """PSI of ``current`` against ``reference``, over quantile bins of the reference."""
    edges = quantile_edges(reference, n_bins)
    return psi(bin_counts(reference, edges), bin_counts(current, edges), epsilon)


def coarsen(reference: np.ndarray, n_bins: int) -> np.ndarray:
    """Map fine histogram bins to about ``n_bins`` equal-share bins of the reference.

    Returns:
        For each fine bin, the index of its coarse bin (bins keep their order).
    """
    counts = np.asarray(reference, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return np.zeros(len(counts), dtype=np.int64)
    middle = (np.cumsum(counts) - counts / 2) / total  # share of the reference below each bin
    return np.minimum((middle * n_bins).astype(np.int64), n_bins - 1)


def psi_of_histograms(
    reference: np.ndarray, current: np.ndarray, n_bins: int, epsilon: float = EPSILON
) -> float:
    """PSI of two fine histograms (same bins), regrouped into reference quantile bins."""
    groups = coarsen(reference, n_bins)
    size = int(groups.max()) + 1 if len(groups) else 0
    return psi(
        np.bincount(groups, weights=reference, minlength=size),
        np.bincount(groups, weights=current, minlength=size),
        epsilon,
    )
