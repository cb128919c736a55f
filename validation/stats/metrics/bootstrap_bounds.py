"""Bootstrap interval bounds from replicate values: percentile, BCa (Efron 1987) and its
jackknife acceleration, with the exact leave-one-out values the acceleration needs for a
proportion (closed form) and an AUC (DeLong's structural components). Pure numpy/scipy;
`bootstrap.py` produces the replicates.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special, stats

from ._base import z_critical


def percentile_bounds(replicates: Any, *, level: float = 0.95) -> tuple[float, float]:
    """The ``(1 - level)/2`` and ``(1 + level)/2`` quantiles (linear interpolation)."""
    z_critical(level)
    alpha = (1.0 - level) / 2.0
    lower, upper = np.quantile(np.asarray(replicates, dtype=float), [alpha, 1.0 - alpha])
    return float(lower), float(upper)


def bca_bounds(
    estimate: float, replicates: Any, acceleration: float, *, level: float = 0.95
) -> tuple[float, float]:
    """Efron's (1987) bias-corrected and accelerated bounds, computed as in
    ``scipy.stats.bootstrap(method="BCa")``.

    ``z0 = Phi^-1(fraction of replicates below the estimate, ties counted half)``, and the
    bounds are the replicate quantiles at ``Phi(z0 + (z0 + z) / (1 - a (z0 + z)))`` for
    ``z = Phi^-1(alpha/2)`` and ``Phi^-1(1 - alpha/2)``. NaN bounds when the estimate lies
    outside the replicates' range (a degenerate distribution).
    """
    z_critical(level)
    values = np.asarray(replicates, dtype=float)
    below = np.count_nonzero(values < estimate) + np.count_nonzero(values <= estimate)
    z0 = special.ndtri(below / (2.0 * values.size))
    z_alpha = special.ndtri((1.0 - level) / 2.0)
    probabilities = []
    for z in (z_alpha, -z_alpha):
        shifted = z0 + z
        probabilities.append(special.ndtr(z0 + shifted / (1.0 - acceleration * shifted)))
    if np.isnan(probabilities).any():
        return math.nan, math.nan
    lower, upper = np.quantile(values, probabilities)
    return float(lower), float(upper)


def jackknife_acceleration(leave_one_out: Any, strata: Any = None) -> float:
    """BCa acceleration from leave-one-out values, summed over the strata of a stratified
    bootstrap: ``a = sum_j n_j^-3 sum_i U_ji^3 / (6 (sum_j n_j^-2 sum_i U_ji^2)^1.5)`` with
    ``U_ji = (n_j - 1)(mean_j - theta_(ji))`` (Efron & Tibshirani 1993, ch. 14; the
    multi-sample form of ``scipy.stats.bootstrap``). 0 when the jackknife does not vary.
    """
    values = np.asarray(leave_one_out, dtype=float)
    codes = np.zeros(values.size, dtype=np.int64) if strata is None else np.asarray(strata)
    _, first, codes = np.unique(codes, return_index=True, return_inverse=True)
    sizes = np.bincount(codes).astype(float)
    # Centring on one member per stratum makes a constant stratum's U exactly 0, so rounding
    # in the mean cannot pass for variation.
    centred = values - values[first][codes]
    u = (sizes - 1.0)[codes] * ((np.bincount(codes, centred) / sizes)[codes] - centred)
    numerator = np.sum(np.bincount(codes, u**3) / sizes**3)
    denominator = np.sum(np.bincount(codes, u**2) / sizes**2)
    return 0.0 if denominator == 0 else float(numerator / (6.0 * denominator**1.5))


def ratio_leave_one_out(
    in_numerator: np.ndarray, in_denominator: np.ndarray, estimate: float
) -> np.ndarray:
    total_numerator, total_denominator = in_numerator.sum(), in_denominator.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        loo = (total_numerator - in_numerator) / (total_denominator - in_denominator)
    loo[~np.isfinite(loo)] = estimate
    return loo


def auc_leave_one_out(
    y: np.ndarray, scores: np.ndarray, mask: np.ndarray, auc: float
) -> np.ndarray:
    """Exact leave-one-out AUCs from DeLong's structural components (Sun & Xu midranks)."""
    loo = np.full(y.size, auc)
    positives, negatives = np.flatnonzero(mask & (y == 1)), np.flatnonzero(mask & (y == 0))
    m, k = positives.size, negatives.size
    ranks = stats.rankdata(np.r_[scores[positives], scores[negatives]])
    v10 = (ranks[:m] - stats.rankdata(scores[positives])) / k
    v01 = 1.0 - (ranks[m:] - stats.rankdata(scores[negatives])) / m
    if m > 1:
        loo[positives] = (m * auc - v10) / (m - 1)
    if k > 1:
        loo[negatives] = (k * auc - v01) / (k - 1)
    return loo
