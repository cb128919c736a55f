"""Confidence intervals for proportions, their differences, and likelihood ratios.

References
----------
- Wilson EB. Probable inference, the law of succession, and statistical inference.
  J Am Stat Assoc 1927;22:209-212.
- Clopper CJ, Pearson ES. The use of confidence or fiducial limits illustrated in the case of
  the binomial. Biometrika 1934;26:404-413.
- Newcombe RG. Two-sided confidence intervals for the single proportion: comparison of seven
  methods. Stat Med 1998;17:857-872 (method 4: the score interval with continuity correction).
- Newcombe RG. Interval estimation for the difference between independent proportions:
  comparison of eleven methods. Stat Med 1998;17:873-890.
- Simel DL, Samsa GP, Matchar DB. Likelihood ratios with confidence: sample size estimation
  for diagnostic test studies. J Clin Epidemiol 1991;44:763-770.
- FDA. Statistical Guidance on Reporting Results from Studies Evaluating Diagnostic Tests,
  2007 (appendix 7 recommends the score interval used here).
"""

from __future__ import annotations

import math

from scipy import stats

from ._base import Interval, check_count, z_critical

WILSON = "Wilson score"
WILSON_CC = "Wilson score with continuity correction (Newcombe 1998)"
#: Protocol values of ``interval_method``.
PROPORTION_INTERVAL_METHODS = ("wilson", "wilson-cc", "clopper-pearson")
CLOPPER_PEARSON = "Clopper-Pearson"
NEWCOMBE = "Newcombe hybrid score (method 10)"
LOG_METHOD = "log method"
LOG_METHOD_CORRECTED = "log method, 0.5 added to each cell"


def wilson_interval(k: int, n: int, *, level: float = 0.95) -> Interval:
    """Wilson (1927) score interval for the proportion ``k / n``.

    The interval inverts the score test, so it stays inside [0, 1] and behaves well at
    ``k = 0`` and ``k = n`` (where the Wald interval collapses). ``n = 0`` gives an undefined
    (all-NaN) interval instead of an error, so empty subgroups can still be tabulated.
    """
    k, n = check_count(k, n)
    z = z_critical(level)
    if n == 0:
        return Interval.undefined(WILSON, level)
    p = k / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half_width = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    lower = 0.0 if k == 0 else max(0.0, centre - half_width)
    upper = 1.0 if k == n else min(1.0, centre + half_width)
    return Interval(p, lower, upper, WILSON, level)


def wilson_cc_interval(k: int, n: int, *, level: float = 0.95) -> Interval:
    """Wilson score interval with continuity correction (Newcombe 1998, method 4; the interval
    of R's ``prop.test(correct = TRUE)``).

    ``L = (2np + z^2 - 1 - z sqrt(z^2 - 2 - 1/n + 4p(n(1 - p) + 1))) / (2(n + z^2))`` and
    ``U = (2np + z^2 + 1 + z sqrt(z^2 + 2 - 1/n + 4p(n(1 - p) - 1))) / (2(n + z^2))``, with
    ``L = 0`` at ``k = 0`` and ``U = 1`` at ``k = n``. Wider than Wilson's, closer to
    Clopper-Pearson's coverage; ``n = 0`` gives an all-NaN interval.
    """
    k, n = check_count(k, n)
    z = z_critical(level)
    if n == 0:
        return Interval.undefined(WILSON_CC, level)
    p = k / n
    z2 = z * z
    denominator = 2 * (n + z2)
    lower = 0.0
    if k > 0:
        root = math.sqrt(z2 - 2 - 1 / n + 4 * p * (n * (1 - p) + 1))
        lower = max(0.0, (2 * n * p + z2 - 1 - z * root) / denominator)
    upper = 1.0
    if k < n:
        root = math.sqrt(z2 + 2 - 1 / n + 4 * p * (n * (1 - p) - 1))
        upper = min(1.0, (2 * n * p + z2 + 1 + z * root) / denominator)
    return Interval(p, lower, upper, WILSON_CC, level)


def clopper_pearson_interval(k: int, n: int, level: float = 0.95) -> Interval:
    """Clopper-Pearson (1934) "exact" interval for ``k / n`` from beta quantiles.

    Guarantees at least nominal coverage (it is conservative). The lower bound is 0 when
    ``k = 0`` and the upper bound is 1 when ``k = n``; ``n = 0`` gives an all-NaN interval.
    """
    k, n = check_count(k, n)
    alpha = 1.0 - level
    z_critical(level)  # validates the level
    if n == 0:
        return Interval.undefined(CLOPPER_PEARSON, level)
    lower = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1))
    upper = 1.0 if k == n else float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return Interval(k / n, lower, upper, CLOPPER_PEARSON, level)


def proportion_interval(k: int, n: int, *, level: float = 0.95, method: str = "wilson") -> Interval:
    """Dispatch by the protocol's name: ``wilson``, ``wilson-cc`` or ``clopper-pearson``."""
    normalised = method.lower().replace("_", "-")
    if normalised == "wilson":
        return wilson_interval(k, n, level=level)
    if normalised == "wilson-cc":
        return wilson_cc_interval(k, n, level=level)
    if normalised == "clopper-pearson":
        return clopper_pearson_interval(k, n, level=level)
    raise ValueError(
        f"Unknown interval method {method!r}; use one of {', '.join(PROPORTION_INTERVAL_METHODS)}."
    )


def newcombe_difference_interval(
    k1: int, n1: int, k2: int, n2: int, *, level: float = 0.95
) -> Interval:
    """Newcombe (1998, method 10) hybrid-score interval for ``k1/n1 - k2/n2``.

    Combines the Wilson intervals of the two independent proportions (square-and-add of the
    distances from each estimate to its bounds). Undefined (NaN) when either ``n`` is 0.
    """
    first = wilson_interval(k1, n1, level=level)
    second = wilson_interval(k2, n2, level=level)
    if n1 == 0 or n2 == 0:
        return Interval.undefined(NEWCOMBE, level)
    p1, p2 = first.estimate, second.estimate
    difference = p1 - p2
    lower = difference - math.hypot(p1 - first.lower, second.upper - p2)
    upper = difference + math.hypot(first.upper - p1, p2 - second.lower)
    return Interval(difference, lower, upper, NEWCOMBE, level)


def likelihood_ratios(
    tp: int, fp: int, tn: int, fn: int, *, level: float = 0.95
) -> tuple[Interval, Interval]:
    """Positive and negative likelihood ratios with log-method intervals (Simel et al. 1991).

    LR+ = sensitivity / (1 - specificity) and LR- = (1 - sensitivity) / specificity, each a
    ratio of two independent proportions; the interval is exp(log LR +/- z * SE) with
    SE(log LR+) = sqrt(1/tp - 1/(tp+fn) + 1/fp - 1/(fp+tn)) and
    SE(log LR-) = sqrt(1/fn - 1/(tp+fn) + 1/tn - 1/(fp+tn)).

    When a cell in the ratio is zero the log is infinite; then 0.5 is added to all four cells
    for both the estimate and the interval, and the method name says so. With no diseased or
    no non-diseased cases both ratios are undefined (NaN).
    """
    z = z_critical(level)
    # Both checks together require all four cells to be non-negative whole numbers.
    tp, n_pos = check_count(tp, tp + fn)
    fp, n_neg = check_count(fp, fp + tn)
    fn, tn = n_pos - tp, n_neg - fp
    if n_pos == 0 or n_neg == 0:
        return (
            Interval.undefined(LOG_METHOD, level),
            Interval.undefined(LOG_METHOD, level),
        )
    positive = _log_ratio(tp, n_pos, fp, n_neg, z, level)
    negative = _log_ratio(fn, n_pos, tn, n_neg, z, level)
    return positive, negative


def _log_ratio(a: float, n_a: float, b: float, n_b: float, z: float, level: float) -> Interval:
    """(a / n_a) / (b / n_b) with a log-scale Wald interval; a and b are the numerator cells.

    In the 2x2 table, n_a and n_b are each the sum of two cells; adding 0.5 to each cell adds
    1 to each of these margins.
    """
    method = LOG_METHOD
    if a == 0 or b == 0:
        a, b, n_a, n_b = a + 0.5, b + 0.5, n_a + 1.0, n_b + 1.0
        method = LOG_METHOD_CORRECTED
    ratio = (a / n_a) / (b / n_b)
    se = math.sqrt(1 / a - 1 / n_a + 1 / b - 1 / n_b)
    log_ratio = math.log(ratio)
    return Interval(
        ratio, math.exp(log_ratio - z * se), math.exp(log_ratio + z * se), method, level
    )
