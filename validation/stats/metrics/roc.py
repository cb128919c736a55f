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
- Pohar Perme M, Manevski D. Confidence intervals for the Mann-Whitney test. Stat Methods Med
  Res, published online 2018 (DeLong variance, interval on the logit scale).
- Hanley JA, McNeil BJ. The meaning and use of the area under a receiver operating
  characteristic (ROC) curve. Radiology 1982;143:29-36.
- Newcombe RG. Confidence intervals for an effect size measure based on the Mann-Whitney
  statistic. Part 2: asymptotic methods and evaluation. Stat Med 2006;25:559-573 (score-type
  intervals from the Hanley-McNeil variance with N* = (m + n) / 2).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from scipy import optimize, stats

from ._base import (
    Interval,
    MetricInputError,
    as_labels,
    as_scores,
    check_same_length,
    z_critical,
)

DELONG = "DeLong (Sun & Xu 2014)"
DELONG_LOGIT = "DeLong, logit scale (Sun & Xu 2014 variance)"
HANLEY_MCNEIL_SCORE = (
    "Hanley-McNeil score interval, N* = (m + n) / 2 (Newcombe 2006), as the DeLong variance "
    "is 0 or undefined"
)
#: Protocol values of ``auc_interval_method``; the first is the default.
AUC_INTERVAL_METHODS = ("delong-logit", "delong")
DEFAULT_AUC_INTERVAL = "delong-logit"
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


def auc_delong(
    y_true: Any, scores: Any, *, level: float = 0.95, method: str = DEFAULT_AUC_INTERVAL
) -> AucResult:
    """AUC with DeLong et al. (1988) variance computed by the fast midrank algorithm of
    Sun and Xu (2014), and its interval (see :func:`auc_intervals`).

    ``method="delong-logit"`` (the default) bounds ``logit(auc) +/- z * se / (auc (1 - auc))``
    back-transformed; ``method="delong"`` is pROC's Wald interval ``auc +/- z * se`` clipped
    to [0, 1]. Raises :class:`MetricInputError` when either class is absent: the AUC is then
    undefined, and callers that tabulate subgroups check the class counts first.
    """
    y, s = _checked(y_true, scores)
    aucs, covariance, n_pos, n_neg = _delong(y, s[np.newaxis, :])
    auc, variance = float(aucs[0]), float(covariance[0, 0])
    lower, upper, names = auc_intervals(
        aucs, np.diag(covariance), n_pos, n_neg, level=level, method=method
    )
    ci = Interval(auc, float(lower[0]), float(upper[0]), str(names[0]), level)
    return AucResult(auc=auc, variance=variance, ci=ci, n_pos=n_pos, n_neg=n_neg)


def auc_delong_many(
    y_true: Any, scores: Any, *, level: float = 0.95, method: str = DEFAULT_AUC_INTERVAL
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(auc, variance, lower, upper)`` for each row of ``scores`` (shape ``(k, N)``, all
    rows on the same labels), vectorised: what :func:`auc_delong` gives one row at a time."""
    y = as_labels(y_true)
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    if s.ndim != 2 or s.shape[1] != y.size or not np.isfinite(s).all():
        raise MetricInputError("scores must be a finite (k, N) array on N labels.")
    _require_both_classes(y)
    aucs, variances, n_pos, n_neg = _delong_variances(y, s)
    lower, upper, _ = auc_intervals(aucs, variances, n_pos, n_neg, level=level, method=method)
    return aucs, variances, lower, upper


def auc_intervals(
    aucs: np.ndarray,
    variances: np.ndarray,
    n_pos: int,
    n_neg: int,
    *,
    level: float = 0.95,
    method: str = DEFAULT_AUC_INTERVAL,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lower, upper, method_names)`` of AUC intervals from DeLong variances.

    Where the DeLong variance is 0 (an AUC of 0 or 1, or every case on one score) or
    undefined (a class with a single case), a DeLong interval would have zero width or none:
    those get :func:`hanley_mcneil_score_interval` instead, and its name says so.
    """
    if method not in AUC_INTERVAL_METHODS:
        raise ValueError(
            f"Unknown AUC interval method {method!r}; use one of {', '.join(AUC_INTERVAL_METHODS)}."
        )
    z = z_critical(level)
    aucs = np.asarray(aucs, dtype=float)
    se = np.sqrt(np.asarray(variances, dtype=float))
    degenerate = ~(se > 0)  # zero or NaN
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "delong":
            lower = np.clip(aucs - z * se, 0.0, 1.0)
            upper = np.clip(aucs + z * se, 0.0, 1.0)
        else:
            # 0 < auc < 1 wherever se > 0: a non-zero variance needs components on both sides.
            centre = np.log(aucs / (1.0 - aucs))
            half = z * se / (aucs * (1.0 - aucs))
            lower = 1.0 / (1.0 + np.exp(-(centre - half)))
            upper = 1.0 / (1.0 + np.exp(-(centre + half)))
    names = np.full(aucs.shape, DELONG_LOGIT if method == "delong-logit" else DELONG, dtype=object)
    for i in np.flatnonzero(degenerate):
        fallback = hanley_mcneil_score_interval(float(aucs[i]), n_pos, n_neg, level=level)
        lower[i], upper[i], names[i] = fallback.lower, fallback.upper, fallback.method
    return lower, upper, names


def hanley_mcneil_score_interval(
    auc: float, n_pos: int, n_neg: int, *, level: float = 0.95
) -> Interval:
    """Score-type AUC interval: the ``theta`` with ``(auc - theta)^2 <= z^2 V(theta)``, where
    ``V`` is the Hanley-McNeil (1982) variance evaluated at ``theta`` (not at the estimate)
    with both sample sizes replaced by ``N* = (m + n) / 2`` (after Newcombe 2006):
    ``V(theta) = theta (1 - theta) / (m n) * (1 + (N* - 1) ((1 - theta) / (2 - theta) +
    theta / (1 + theta)))``.

    Like Wilson's interval for a proportion it keeps a width at an AUC of 0 or 1 (an AUC of 1
    on 5 + 5 cases gives a lower bound of 0.643, not 1) and needs no second case of a class.
    """
    z = z_critical(level)
    if n_pos < 1 or n_neg < 1 or not 0.0 <= auc <= 1.0:
        return Interval.undefined(HANLEY_MCNEIL_SCORE, level)
    m, n = float(n_pos), float(n_neg)
    n_star = (m + n) / 2.0

    def excess(theta: float) -> float:
        variance = theta * (1 - theta) / (m * n)
        variance *= 1 + (n_star - 1) * ((1 - theta) / (2 - theta) + theta / (1 + theta))
        return (auc - theta) ** 2 - z * z * variance

    # excess(auc) <= 0 and excess(0) = auc^2, excess(1) = (1 - auc)^2: one root on each side,
    # found from a grid point inside the interval (at an estimate of 0 or 1 the estimate
    # itself is a root, so start just inside).
    inside = min(max(auc, 1e-9), 1 - 1e-9)
    lower = 0.0 if auc == 0 else optimize.brentq(excess, 0.0, inside, xtol=1e-14)
    upper = 1.0 if auc == 1 else optimize.brentq(excess, inside, 1.0, xtol=1e-14)
    return Interval(auc, float(lower), float(upper), HANLEY_MCNEIL_SCORE, level)


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


def auc_or_note(
    y_true: Any, scores: Any, *, level: float = 0.95, method: str = DEFAULT_AUC_INTERVAL
) -> tuple[Interval | None, str]:
    """AUC interval for tables: ``(None, note)`` instead of an error when one class is absent."""
    y = as_labels(y_true)
    if y.size == 0 or y.min() == y.max():
        return None, f"AUC {ONE_CLASS_NOTE}"
    return auc_delong(y, scores, level=level, method=method).ci, ""


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


def _delong_variances(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """AUC and DeLong variance of each score row: :func:`_delong`'s diagonal without the
    ``k x k`` covariance."""
    positives, negatives = scores[:, y == 1], scores[:, y == 0]
    m, n = positives.shape[1], negatives.shape[1]
    ranks_all = stats.rankdata(np.hstack([positives, negatives]), axis=1)
    v10 = (ranks_all[:, :m] - stats.rankdata(positives, axis=1)) / n
    v01 = 1.0 - (ranks_all[:, m:] - stats.rankdata(negatives, axis=1)) / m
    if m < 2 or n < 2:
        return v10.mean(axis=1), np.full(scores.shape[0], math.nan), m, n
    return v10.mean(axis=1), v10.var(axis=1, ddof=1) / m + v01.var(axis=1, ddof=1) / n, m, n
