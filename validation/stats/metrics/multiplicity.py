"""Multiple-comparison adjustment of p-values, and the two-proportion z-test that gives the
subgroup disparities (TPR and FPR differences) a p-value to adjust.

The protocol names the method for exploratory subgroups: Holm (family-wise error rate) or
Benjamini-Hochberg (false discovery rate). Missing p-values (NaN, e.g. a disparity that is
undefined because a group was suppressed) are passed through untouched and are not counted
among the tests.

References
----------
- Holm S. A simple sequentially rejective multiple test procedure. Scand J Stat
  1979;6:65-70.
- Benjamini Y, Hochberg Y. Controlling the false discovery rate: a practical and powerful
  approach to multiple testing. J R Stat Soc Series B 1995;57:289-300.
- Agresti A. Categorical Data Analysis, 3rd ed. Wiley, 2013 (the pooled z-test for two
  independent proportions; its square is Pearson's chi-squared statistic of the 2x2 table).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from ._base import MetricInputError, check_count

METHODS = ("holm", "bh", "none")


def holm(p_values: Any) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values.

    With the m non-missing p-values sorted ascending, the k-th (1-based) is multiplied by
    ``m - k + 1``; a running maximum keeps the adjusted values in the same order as the raw
    ones, and they are capped at 1. Rejecting the adjusted values ``<= alpha`` controls the
    family-wise error rate at ``alpha`` under any dependence.
    """
    p, present = _checked(p_values)
    values = p[present]
    m = values.size
    order = np.argsort(values, kind="stable")
    scaled = (m - np.arange(m)) * values[order]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    p[present] = adjusted
    return p


def benjamini_hochberg(p_values: Any) -> np.ndarray:
    """Benjamini-Hochberg (1995) step-up adjusted p-values ("q-values").

    With the m non-missing p-values sorted ascending, the k-th is multiplied by ``m / k``; a
    running minimum from the largest down keeps them monotone, and they are capped at 1.
    Rejecting the adjusted values ``<= q`` controls the false discovery rate at ``q`` for
    independent or positively dependent tests.
    """
    p, present = _checked(p_values)
    values = p[present]
    m = values.size
    descending = np.argsort(values, kind="stable")[::-1]
    scaled = values[descending] * m / (m - np.arange(m))
    adjusted = np.empty(m)
    adjusted[descending] = np.minimum(np.minimum.accumulate(scaled), 1.0)
    p[present] = adjusted
    return p


def adjust(p_values: Any, method: str) -> np.ndarray:
    """Adjust by the protocol's method name: ``"holm"``, ``"bh"`` (Benjamini-Hochberg) or
    ``"none"`` (the p-values checked and returned as a new array)."""
    normalised = method.lower()
    if normalised == "holm":
        return holm(p_values)
    if normalised == "bh":
        return benjamini_hochberg(p_values)
    if normalised == "none":
        return _checked(p_values)[0]
    raise ValueError(f"Unknown multiplicity method {method!r}; use one of {', '.join(METHODS)}.")


def two_proportion_p_value(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of the pooled z-test of ``k1/n1 == k2/n2`` (independent samples).

    ``z = (p1 - p2) / sqrt(p (1 - p) (1/n1 + 1/n2))`` with the pooled ``p = (k1 + k2) /
    (n1 + n2)``; the p-value is ``2 * (1 - Phi(|z|))``, equal to Pearson's chi-squared test of
    the 2x2 table without continuity correction. It is the test that matches a TPR or FPR
    difference between two groups (e.g. ``fairness_summary``'s max and min groups, with the
    same caveat: choosing the extremes after looking makes it optimistic).

    NaN when ``n1`` or ``n2`` is 0. When the pooled proportion is 0 or 1 both groups agree
    exactly and the p-value is 1 (statsmodels' ``proportions_ztest`` returns NaN there).
    """
    k1, n1 = check_count(k1, n1)
    k2, n2 = check_count(k2, n2)
    if n1 == 0 or n2 == 0:
        return math.nan
    pooled = (k1 + k2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return 1.0
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = (k1 / n1 - k2 / n2) / se
    return float(2 * stats.norm.sf(abs(z)))


def _checked(p_values: Any) -> tuple[np.ndarray, np.ndarray]:
    """A float copy of the p-values and the mask of the non-missing ones; refuses values
    outside [0, 1] (infinities included)."""
    try:
        p = np.array(p_values, dtype=float)
    except (TypeError, ValueError):
        raise MetricInputError("p-values must be numeric.") from None
    if p.ndim != 1:
        raise MetricInputError(f"p-values must be one-dimensional, got shape {p.shape}.")
    present = ~np.isnan(p)
    bad = present & ((p < 0.0) | (p > 1.0))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise MetricInputError(
            f"p-values must lie in [0, 1]; found {p[first]!r} at index {first} "
            f"({int(bad.sum())} invalid value(s))."
        )
    return p, present
