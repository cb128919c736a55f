"""ROC curve, AUC with DeLong variance, and the paired DeLong test.

Conventions: label 1 is the positive class (a "case"), label 0 a "control", and a higher score
means more likely positive (pROC's ``direction = "<"``). Ties between a case and a control
count one half, as in the Mann-Whitney statistic.

References
----------
- DeLong ER, DeLong DM, Clarke-Pearson DL. Comparing the areas under two or more correlated
  receiver operating characteristic curves: a nonparametric approach. Biometrics
  1988;44:837-845.
- Sun X, Xu W. Fast implementation of DeLong's algorithm for comparing the areas under
  correlated receiver operating characteristic curves. IEEE Signal Process Lett
  2014;21:1389-1393.
- Robin X, Turck N, Hainard A, et al. pROC: an open-source package for R and S+ to analyze
  and compare ROC curves. BMC Bioinformatics 2011;12:77 (the reference implementation whose
  published values the tests reproduce).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from scipy import stats

from ._base import (
    Interval,
    MetricInputError,
    as_labels,
    as_scores,
    check_same_length,
    z_critical,
)

DELONG = "DeLong (Sun & Xu 2014)"
DELONG_PAIRED = "paired DeLong (Sun & Xu 2014)"
ONE_CLASS_NOTE = "undefined: one class only"


@dataclasses.dataclass(frozen=True)
class AucResult:
    """AUC with its DeLong variance and confidence interval.

    ``variance`` (and so the interval bounds) is NaN when a class has a single case, because
    the DeLong variance needs at least two cases and two controls.
    """

    auc: float
    variance: float
    ci: Interval
    n_pos: int
    n_neg: int


@dataclasses.dataclass(frozen=True)
class PairedAucResult:
    """Paired DeLong comparison of two scores on the same cases; differences are a minus b."""

    auc_a: float
    auc_b: float
    difference: float
    variance: float
    z: float
    p_value: float
    ci: Interval
    n_pos: int
    n_neg: int


def roc_points(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empirical ROC curve: ``(fpr, tpr, thresholds)`` with one point per distinct score.

    Matches ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``: thresholds decrease,
    the first is ``inf`` (nothing predicted positive, the (0, 0) point), and the point at
    threshold ``t`` classifies ``score >= t`` as positive. Raises :class:`MetricInputError`
    when either class is absent (one of the rates would be 0/0).
    """
    y, s = _checked(y_true, scores)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_each_score = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s_sorted) - 1]
    true_positives = np.cumsum(y_sorted)[last_of_each_score]
    false_positives = last_of_each_score + 1 - true_positives
    tpr = np.r_[0, true_positives] / true_positives[-1]
    fpr = np.r_[0, false_positives] / false_positives[-1]
    thresholds = np.r_[np.inf, s_sorted[last_of_each_score]]
    return fpr, tpr, thresholds


def auc_delong(y_true: Any, scores: Any, *, level: float = 0.95) -> AucResult:
    """AUC with DeLong et al. (1988) variance computed by the fast midrank algorithm of
    Sun and Xu (2014), and a Wald interval ``auc +/- z * sqrt(variance)``.

    As in pROC, interval bounds outside [0, 1] are clipped to it. Raises
    :class:`MetricInputError` when either class is absent: the AUC is then undefined, and
    callers that tabulate subgroups check the class counts first.
    """
    y, s = _checked(y_true, scores)
    z = z_critical(level)
    aucs, covariance, n_pos, n_neg = _delong(y, s[np.newaxis, :])
    auc, variance = float(aucs[0]), float(covariance[0, 0])
    half_width = z * math.sqrt(variance)  # NaN when a class has a single case
    lower, upper = np.clip([auc - half_width, auc + half_width], 0.0, 1.0)  # keeps NaN
    ci = Interval(auc, float(lower), float(upper), DELONG, level)
    return AucResult(auc=auc, variance=variance, ci=ci, n_pos=n_pos, n_neg=n_neg)


def delong_paired(
    y_true: Any, scores_a: Any, scores_b: Any, *, level: float = 0.95
) -> PairedAucResult:
    """Paired DeLong test of AUC(a) - AUC(b) for two scores on the same cases.

    The variance of the difference is var(a) + var(b) - 2 cov(a, b) from the joint DeLong
    covariance (Sun & Xu 2014 algorithm); ``z = difference / sqrt(variance)``, the p-value
    is two-sided, and the interval of the difference is not clipped. The order matters, as
    in pROC's ``roc.test(roc1, roc2)``: a positive ``z`` means ``a`` has the larger AUC.
    """
    y = as_labels(y_true)
    a = as_scores(scores_a, name="scores_a")
    b = as_scores(scores_b, name="scores_b")
    check_same_length(y_true=y, scores_a=a, scores_b=b)
    _require_both_classes(y)
    z_crit = z_critical(level)
    aucs, covariance, n_pos, n_neg = _delong(y, np.vstack([a, b]))
    difference = float(aucs[0] - aucs[1])
    variance = float(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1])
    variance = max(variance, 0.0)  # guards rounding when a and b are (nearly) identical
    sd = math.sqrt(variance)
    if sd > 0:
        z = difference / sd
    elif math.isnan(sd):
        z = math.nan
    else:
        z = 0.0 if difference == 0 else math.copysign(math.inf, difference)
    p_value = float(2 * stats.norm.sf(abs(z))) if not math.isnan(z) else math.nan
    ci = Interval(
        difference, difference - z_crit * sd, difference + z_crit * sd, DELONG_PAIRED, level
    )
    return PairedAucResult(
        auc_a=float(aucs[0]),
        auc_b=float(aucs[1]),
        difference=difference,
        variance=variance,
        z=z,
        p_value=p_value,
        ci=ci,
        n_pos=n_pos,
        n_neg=n_neg,
    )


def auc_or_note(y_true: Any, scores: Any, *, level: float = 0.95) -> tuple[Interval | None, str]:
    """AUC interval for tables: ``(None, note)`` instead of an error when one class is absent."""
    y = as_labels(y_true)
    if y.size == 0 or y.min() == y.max():
        return None, f"AUC {ONE_CLASS_NOTE}"
    return auc_delong(y, scores, level=level).ci, ""


def _checked(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = as_labels(y_true)
    s = as_scores(scores)
    check_same_length(y_true=y, scores=s)
    _require_both_classes(y)
    return y, s


def _require_both_classes(y: np.ndarray) -> None:
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise MetricInputError(
            f"ROC/AUC {ONE_CLASS_NOTE} (n_pos={n_pos}, n_neg={n_neg}); "
            "both positives and negatives are needed."
        )


def _delong(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """AUCs and their DeLong covariance matrix for ``k`` score rows (shape ``(k, N)``).

    Sun & Xu (2014): with midranks ``T_z`` over all cases, ``T_x`` within the m positives and
    ``T_y`` within the n negatives, the structural components are
    ``V10_i = (T_z,i - T_x,i) / n`` for positives and ``V01_j = 1 - (T_z,j - T_y,j) / m`` for
    negatives; AUC is the mean of ``V10``, and the covariance is ``S10 / m + S01 / n`` with
    ``S10`` and ``S01`` the sample covariance matrices (denominator m - 1 and n - 1) of the
    components across score rows.
    """
    positives, negatives = scores[:, y == 1], scores[:, y == 0]
    m, n = positives.shape[1], negatives.shape[1]
    ranks_all = stats.rankdata(np.hstack([positives, negatives]), axis=1)
    ranks_pos = stats.rankdata(positives, axis=1)
    ranks_neg = stats.rankdata(negatives, axis=1)
    v10 = (ranks_all[:, :m] - ranks_pos) / n
    v01 = 1.0 - (ranks_all[:, m:] - ranks_neg) / m
    aucs = v10.mean(axis=1)
    k = scores.shape[0]
    if m < 2 or n < 2:
        return aucs, np.full((k, k), math.nan), m, n
    s10 = np.atleast_2d(np.cov(v10, ddof=1))
    s01 = np.atleast_2d(np.cov(v01, ddof=1))
    return aucs, s10 / m + s01 / n, m, n
