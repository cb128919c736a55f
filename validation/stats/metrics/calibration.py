"""Calibration of predicted probabilities: Brier score, expected calibration error,
calibration intercept and slope, and the reliability curve.

The scores must be probabilities of the positive class in [0, 1]. Intercept and slope follow
the "weak calibration" assessment of Van Calster et al.: the slope is the coefficient of
``logit(p)`` in a logistic regression of the outcome on it (Cox 1958; 1 is ideal, below 1
means predictions too extreme), and the intercept is "calibration-in-the-large", the
intercept of a logistic regression with ``logit(p)`` as an offset (0 is ideal, above 0 means
risks underestimated on average). Both are fitted by Newton-Raphson (for the logistic model
the same as IRLS) and get Wald intervals from the inverse Fisher information.

References
----------
- Brier GW. Verification of forecasts expressed in terms of probability. Mon Weather Rev
  1950;78:1-3.
- Cox DR. Two further applications of a model for binary regression. Biometrika
  1958;45:562-565.
- Naeini MP, Cooper GF, Hauskrecht M. Obtaining well calibrated probabilities using Bayesian
  binning. AAAI 2015 (expected calibration error).
- Van Calster B, McLernon DJ, van Smeden M, et al. Calibration: the Achilles heel of
  predictive analytics. BMC Med 2019;17:230.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special

from ._base import (
    Interval,
    MetricInputError,
    as_labels,
    as_scores,
    check_same_length,
    z_critical,
)
from .proportions import wilson_interval

INTERCEPT_METHOD = "calibration-in-the-large: logistic fit with logit(p) as offset, Wald"
SLOPE_METHOD = "logistic recalibration on logit(p) (Cox 1958), Wald"
CLIP = 1e-12  # keeps logit(p) finite for p of exactly 0 or 1
MAX_ITERATIONS = 100
TOLERANCE = 1e-10


def calibration_summary(
    y_true: Any, probs: Any, *, n_bins: int = 10, level: float = 0.95
) -> dict[str, Any]:
    """Brier score, ECE, calibration intercept and slope, and reliability bins.

    - ``brier``: mean squared difference between probability and outcome.
    - ``ece``: expected calibration error over ``n_bins`` equal-width bins of [0, 1], each
      bin's ``|mean predicted - observed fraction|`` weighted by its share of the cases.
    - ``intercept`` and ``slope``: :class:`Interval` objects (Wald intervals, see the module
      docstring). With one class only, or when the fit does not converge (complete
      separation), they are undefined (NaN) and ``notes`` says why.
    - ``bins``: the reliability curve, one dict per non-empty bin (see
      :func:`reliability_bins`).

    Also returns ``n``, ``n_pos``, ``n_bins`` and ``notes``. Raises
    :class:`MetricInputError` for NaN scores, scores outside [0, 1], or no cases.
    """
    y, p = _checked(y_true, probs)
    z_critical(level)  # validates the level before any work
    bins = reliability_bins(y, p, n_bins=n_bins, level=level)
    ece = sum(b["n"] * abs(b["mean_predicted"] - b["observed_fraction"]) for b in bins) / y.size
    notes: list[str] = []
    n_pos = int(y.sum())
    if n_pos in (0, y.size):
        notes.append("calibration intercept and slope undefined: one class only")
        intercept = Interval.undefined(INTERCEPT_METHOD, level)
        slope = Interval.undefined(SLOPE_METHOD, level)
    else:
        intercept, slope = _weak_calibration(y, p, level, notes)
    return {
        "n": int(y.size),
        "n_pos": n_pos,
        "brier": float(np.mean((p - y) ** 2)),
        "ece": float(ece),
        "n_bins": n_bins,
        "intercept": intercept,
        "slope": slope,
        "bins": bins,
        "notes": notes,
    }


def reliability_bins(
    y_true: Any, probs: Any, *, n_bins: int = 10, level: float = 0.95
) -> list[dict[str, Any]]:
    """The reliability curve over ``n_bins`` equal-width bins of [0, 1], non-empty bins only.

    Binning matches scikit-learn's ``calibration_curve(strategy="uniform")``: a probability
    lying exactly on an inner edge falls in the lower bin, so the bins are [0, e1],
    (e1, e2], ..., (e_k-1, 1]. Each dict has ``lower`` and ``upper`` (the edges), ``n``,
    ``n_pos``, ``mean_predicted``, ``observed_fraction`` and ``observed_interval`` (the
    Wilson score interval of the observed fraction).
    """
    y, p = _checked(y_true, probs)
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise MetricInputError(f"n_bins must be a positive whole number, got {n_bins!r}.")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bin_ids = np.searchsorted(edges[1:-1], p)
    totals = np.bincount(bin_ids, minlength=n_bins)
    positives = np.bincount(bin_ids, weights=y, minlength=n_bins)
    sums = np.bincount(bin_ids, weights=p, minlength=n_bins)
    bins = []
    for b in np.flatnonzero(totals):
        n, k = int(totals[b]), int(round(positives[b]))
        bins.append(
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "n": n,
                "n_pos": k,
                "mean_predicted": float(sums[b] / n),
                "observed_fraction": k / n,
                "observed_interval": wilson_interval(k, n, level=level),
            }
        )
    return bins


def _weak_calibration(
    y: np.ndarray, p: np.ndarray, level: float, notes: list[str]
) -> tuple[Interval, Interval]:
    logit = special.logit(np.clip(p, CLIP, 1.0 - CLIP))
    ones = np.ones((y.size, 1))
    z = z_critical(level)
    fits = (
        ("calibration intercept", INTERCEPT_METHOD, ones, logit, 0),
        ("calibration slope", SLOPE_METHOD, np.column_stack([ones, logit]), np.zeros(y.size), 1),
    )
    intervals = []
    for name, method, design, offset, coefficient in fits:
        fit = _logistic_fit(y, design, offset)
        if fit is None:
            notes.append(f"{name} undefined: the logistic fit did not converge (separation?)")
            intervals.append(Interval.undefined(method, level))
            continue
        beta, covariance = fit
        estimate = float(beta[coefficient])
        half_width = z * math.sqrt(covariance[coefficient, coefficient])
        intervals.append(
            Interval(estimate, estimate - half_width, estimate + half_width, method, level)
        )
    return intervals[0], intervals[1]


def _logistic_fit(
    y: np.ndarray, design: np.ndarray, offset: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """Maximum-likelihood logistic regression ``logit P(y=1) = offset + design @ beta`` by
    Newton-Raphson; returns ``(beta, covariance)`` (the inverse Fisher information at the
    estimate), or None when it does not converge in ``MAX_ITERATIONS`` steps."""
    beta = np.zeros(design.shape[1])
    for _ in range(MAX_ITERATIONS):
        mu = special.expit(offset + design @ beta)
        information = design.T @ (design * (mu * (1.0 - mu))[:, np.newaxis])
        try:
            step = np.linalg.solve(information, design.T @ (y - mu))
        except np.linalg.LinAlgError:
            return None
        beta = beta + step
        if not np.all(np.isfinite(beta)):
            return None
        if np.max(np.abs(step)) < TOLERANCE:
            mu = special.expit(offset + design @ beta)
            information = design.T @ (design * (mu * (1.0 - mu))[:, np.newaxis])
            return beta, np.linalg.inv(information)
    return None


def _checked(y_true: Any, probs: Any) -> tuple[np.ndarray, np.ndarray]:
    y = as_labels(y_true)
    p = as_scores(probs, name="probs")
    check_same_length(y_true=y, probs=p)
    if y.size == 0:
        raise MetricInputError("Calibration needs at least one case.")
    outside = (p < 0.0) | (p > 1.0)
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        raise MetricInputError(
            f"probs must be probabilities in [0, 1]; found {p[first]!r} at index {first} "
            f"({int(outside.sum())} value(s) outside [0, 1])."
        )
    return y, p
