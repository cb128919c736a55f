"""Paired binary outcomes: McNemar's test and Newcombe's interval for the difference of two
paired proportions (two models' decisions on the same cases).

The paired 2x2 table of one class (e.g. the positives, for sensitivity) counts the cases that
``both`` models get right, that only the ``first`` gets right, that only the ``second`` gets
right, and that ``neither`` gets right. Only the discordant cells carry evidence of a
difference.

References
----------
- McNemar Q. Note on the sampling error of the difference between correlated proportions or
  percentages. Psychometrika 1947;12:153-157.
- Fagerland MW, Lydersen S, Laake P. The McNemar test for binary matched-pairs data: mid-p and
  asymptotic are better than exact conditional. BMC Med Res Methodol 2013;13:91 (the exact
  conditional p-value ``2 * binomcdf(min(b, c), b + c, 0.5)``, and the worked example the
  tests reproduce).
- Agresti A. An Introduction to Categorical Data Analysis, 2nd ed. Wiley 2007, section 8.1
  (McNemar's statistic; the exact binomial test for few discordant pairs).
- Newcombe RG. Improved confidence intervals for the difference between binomial proportions
  based on paired data. Stat Med 1998;17:2635-2650 (method 10: Wilson score intervals of the
  two marginal proportions combined with a continuity-corrected phi coefficient).
"""

from __future__ import annotations

import math
from typing import Any

from scipy import stats

from ._base import MetricInputError, z_critical
from .proportions import wilson_interval

#: Below this many discordant pairs the exact binomial p-value is the primary one; from it on,
#: the chi-square with continuity correction (Agresti 2007, 8.1; the usual textbook rule).
EXACT_BELOW_DISCORDANT = 25
MCNEMAR_EXACT = "McNemar exact (two-sided binomial on the discordant pairs)"
MCNEMAR_CC = "McNemar chi-square with continuity correction"
NEWCOMBE_PAIRED = "Newcombe paired score interval (method 10)"


def mcnemar(first_only: int, second_only: int) -> dict[str, Any]:
    """McNemar's test of equal paired proportions from the two discordant counts.

    - exact: conditional on ``n = first_only + second_only``, ``first_only`` is Binomial(n,
      1/2) under the null; ``p = min(1, 2 P(X <= min(b, c)))`` (1 when ``n = 0``).
    - chi-square with continuity correction: ``(max(|b - c| - 1, 0))^2 / (b + c)`` on one
      degree of freedom (R's ``mcnemar.test`` omits the ``max``, which only matters at
      ``b = c``, where both give p near 1).

    ``p_value`` is the exact one below :data:`EXACT_BELOW_DISCORDANT` discordant pairs and
    the chi-square one from there on (``method`` names which); ``statistic`` is the
    chi-square statistic either way (0 with no discordant pair), and ``exact_p_value`` and
    ``chi_square_p_value`` are both always given.
    """
    b, c = _count(first_only, "first_only"), _count(second_only, "second_only")
    n = b + c
    exact = 1.0 if n == 0 else min(1.0, 2.0 * float(stats.binom.cdf(min(b, c), n, 0.5)))
    statistic = 0.0 if n == 0 else max(abs(b - c) - 1, 0) ** 2 / n
    chi_square_p = 1.0 if n == 0 else float(stats.chi2.sf(statistic, 1))
    use_exact = n < EXACT_BELOW_DISCORDANT
    return {
        "statistic": float(statistic),
        "p_value": exact if use_exact else chi_square_p,
        "method": MCNEMAR_EXACT if use_exact else MCNEMAR_CC,
        "exact_p_value": exact,
        "chi_square_p_value": chi_square_p,
        "discordant": [b, c],
    }


def paired_proportion_difference(
    both: int, first_only: int, second_only: int, neither: int, *, level: float = 0.95
) -> dict[str, Any]:
    """Second minus first of two paired proportions, with Newcombe's (1998) method 10.

    With ``p1 = (both + first_only) / n`` and ``p2 = (both + second_only) / n`` the estimate
    is ``p2 - p1 = (second_only - first_only) / n``. Each marginal proportion gets its Wilson
    interval ``(l_i, u_i)``; the bounds are ``estimate - sqrt(dl2^2 - 2 phi dl2 du1 + du1^2)``
    and ``estimate + sqrt(du2^2 - 2 phi du2 dl1 + dl1^2)`` with ``dl_i = p_i - l_i`` and
    ``du_i = u_i - p_i``, where ``phi`` is the correlation of the two ratings with
    ``both * neither - first_only * second_only`` reduced by ``n / 2`` when positive (not
    below 0), and 0 when a margin of the table is empty. ``n = 0`` gives NaN throughout.
    """
    cells = [
        _count(v, name)
        for v, name in (
            (both, "both"),
            (first_only, "first_only"),
            (second_only, "second_only"),
            (neither, "neither"),
        )
    ]
    a, b, c, d = cells
    n = a + b + c + d
    z_critical(level)  # validates the level
    if n == 0:
        nan = math.nan
        return _difference(nan, nan, nan, level)
    first = wilson_interval(a + b, n, level=level)
    second = wilson_interval(a + c, n, level=level)
    estimate = (c - b) / n
    phi = _phi(a, b, c, d)
    dl1, du1 = first.estimate - first.lower, first.upper - first.estimate
    dl2, du2 = second.estimate - second.lower, second.upper - second.estimate
    # Rounding can leave a hair below zero when phi is near 1 and the widths match.
    lower = estimate - math.sqrt(max(dl2**2 - 2 * phi * dl2 * du1 + du1**2, 0.0))
    upper = estimate + math.sqrt(max(du2**2 - 2 * phi * du2 * dl1 + dl1**2, 0.0))
    return _difference(estimate, max(lower, -1.0), min(upper, 1.0), level)


def _phi(a: int, b: int, c: int, d: int) -> float:
    """Newcombe's continuity-corrected phi: ``max(ad - bc - n/2, 0)`` in the numerator when
    ``ad > bc``; 0 when any margin is empty (the correlation is then undefined)."""
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    if margins == 0:
        return 0.0
    n = a + b + c + d
    cross = a * d - b * c
    numerator = max(cross - n / 2, 0.0) if cross > 0 else float(cross)
    return numerator / math.sqrt(margins)


def _difference(estimate: float, lower: float, upper: float, level: float) -> dict[str, Any]:
    return {
        "estimate": float(estimate),
        "lower": float(lower),
        "upper": float(upper),
        "level": float(level),
        "method": NEWCOMBE_PAIRED,
    }


def _count(value: Any, name: str) -> int:
    try:
        whole = not isinstance(value, bool) and float(value).is_integer() and value >= 0
    except (TypeError, ValueError):
        whole = False
    if not whole:
        raise MetricInputError(f"{name} must be a non-negative whole number, got {value!r}.")
    return int(value)
