"""Hypotheses and sample size: the precision a test set achieved and the power it had against
the protocol's performance goals (issue 18, item 4). Pure: no Django.

Each goal is a one-sided hypothesis, H0: metric <= goal against H1: metric > goal, judged as
the protocol judges an acceptance criterion: the lower bound of the two-sided interval at the
protocol's confidence level must exceed the goal, so the test is one-sided at (1 - level) / 2.

- AUC: the Hanley-McNeil (1982) variance at the true AUC, on the scale of the protocol's AUC
  interval (logit for DeLong-logit, linear for plain DeLong): power = Phi(d / SE - z), where
  d is the distance of the true AUC from the goal on that scale.
- Sensitivity (on the positives), specificity (on the negatives), accuracy (on every case):
  exact binomial, the probability that the protocol's own interval method gives a lower bound
  above the goal (the smallest count that passes, then the binomial tail).
- PPV and NPV have no power here: their denominators (the device's calls) are not fixed by
  the design.

The power is computed at the protocol's ``anticipated`` value when it states one (a
pre-specified justification); otherwise at the observed estimate, which is descriptive only
(observed power says nothing the interval does not). The sample that would give the target
power keeps the observed ratio of negatives to positives (for the AUC) and, for a proportion,
converts the positives or negatives needed into a total at the observed prevalence (Buderer
1996). For a proportion the exact power saw-tooths in n (Chu & Cole 2007): the sample given
is the smallest beyond which it stays at or above the target.

References
----------
- Hanley JA, McNeil BJ. The meaning and use of the area under a receiver operating
  characteristic (ROC) curve. Radiology 1982;143:29-36.
- Obuchowski NA. Sample size calculations in studies of test accuracy. Stat Methods Med Res
  1998;7:371-392.
- Flahault A, Cadilhac M, Thomas G. Sample size calculation should be performed for design
  accuracy in diagnostic test studies. J Clin Epidemiol 2005;58:859-862.
- Buderer NMF. Statistical methodology: I. Incorporating the prevalence of disease into the
  sample size calculation for sensitivity and specificity. Acad Emerg Med 1996;3:895-900.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

from scipy import special, stats

from validation.stats.metrics._base import z_critical

STATED, DERIVED = "stated", "derived"
ANTICIPATED, OBSERVED = "anticipated", "observed"
DEFAULT_TARGET_POWER = 0.8
#: Where a required sample is searched for; beyond it, "more than" this many.
MAX_SAMPLE = 1_000_000
#: Up to this size the exact power's first n reaching the target is found by a scan.
EXACT_SCAN_LIMIT = 5_000
AUC_POWER_METHOD = (
    "Hanley-McNeil (1982) variance, one-sided at (1 - level) / 2 on the {scale} scale of the "
    "protocol's AUC interval"
)
PROPORTION_POWER_METHOD = (
    "exact binomial: probability that the {interval} lower bound exceeds the goal"
)
#: The cases a proportion is estimated on.
DENOMINATOR = {"sensitivity": "positives", "specificity": "negatives", "accuracy": "cases"}
AUC_METHOD_SCALE = {"delong-logit": "logit", "delong": "linear"}


# --- goals --------------------------------------------------------------------------------------


def performance_goals(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The protocol's performance goals: those it states, or, for a protocol without
    ``performance_goals`` (every protocol stored before issue 18), one per acceptance criterion
    on a lower bound (``bound: lower``, comparator ``>=`` or ``>``) with the criterion's value
    as the goal. Each goal names its ``source`` and the ``comparator`` its lower bound must
    meet."""
    stated = document.get("performance_goals")
    if stated:
        return [
            {
                "metric": goal["metric"],
                "goal": float(goal["goal"]),
                "anticipated": goal.get("anticipated"),
                "target_power": goal.get("power", DEFAULT_TARGET_POWER),
                "source": STATED,
                "comparator": ">",
            }
            for goal in stated
        ]
    return [
        {
            "metric": criterion["metric"],
            "goal": float(criterion["value"]),
            "anticipated": None,
            "target_power": DEFAULT_TARGET_POWER,
            "source": DERIVED,
            "comparator": criterion["comparator"],
        }
        for criterion in document.get("acceptance_criteria", [])
        if criterion.get("bound") == "lower" and criterion.get("comparator") in (">=", ">")
    ]


# --- AUC ----------------------------------------------------------------------------------------


def hanley_mcneil_variance(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley & McNeil (1982), equation 2: the variance of the Mann-Whitney AUC with
    ``Q1 = A / (2 - A)`` (two positives outrank one negative) and ``Q2 = 2 A^2 / (1 + A)``
    (one positive outranks two negatives), exact for negative-exponential scores."""
    if n_pos < 1 or n_neg < 1:
        return math.nan
    a = float(auc)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    return (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)


def auc_power(
    *, goal: float, auc: float, n_pos: int, n_neg: int, level: float = 0.95, scale: str = "logit"
) -> float:
    """The probability that the AUC interval's lower bound exceeds ``goal`` when the true AUC
    is ``auc``, on ``n_pos`` positives and ``n_neg`` negatives. NaN where it cannot be
    computed (no case of a class, or a true AUC of 0 or 1, where the variance vanishes)."""
    if n_pos < 1 or n_neg < 1 or not 0.0 < auc < 1.0:
        return math.nan
    if goal >= 1.0:
        return 0.0
    if goal <= 0.0:
        return 1.0
    se = math.sqrt(hanley_mcneil_variance(auc, n_pos, n_neg))
    z = z_critical(level)
    if scale == "logit":
        distance = _logit(auc) - _logit(goal)
        se = se / (auc * (1 - auc))  # delta method
    else:
        distance = auc - goal
    return float(stats.norm.cdf(distance / se - z))


def auc_required(
    *,
    goal: float,
    auc: float,
    ratio: float,
    level: float = 0.95,
    scale: str = "logit",
    target: float = DEFAULT_TARGET_POWER,
) -> tuple[int, int] | None:
    """The fewest positives (and ``ceil(ratio * positives)`` negatives) with which the power
    reaches ``target``; None when no sample does (the true AUC does not exceed the goal) or
    it would take more than ``MAX_SAMPLE`` positives."""
    if not (0.0 < auc < 1.0) or auc <= goal or goal >= 1.0 or ratio <= 0:
        return None

    def enough(n_pos: int) -> bool:
        n_neg = max(1, math.ceil(ratio * n_pos))
        return (
            auc_power(goal=goal, auc=auc, n_pos=n_pos, n_neg=n_neg, level=level, scale=scale)
            >= target
        )

    n_pos = _smallest(enough)
    return None if n_pos is None else (n_pos, max(1, math.ceil(ratio * n_pos)))


# --- proportions --------------------------------------------------------------------------------


def proportion_power(
    *,
    goal: float,
    p: float,
    n: int,
    level: float = 0.95,
    method: str = "wilson",
    comparator: str = ">",
) -> float:
    """Exact binomial power: the probability, when the true proportion is ``p``, that ``k``
    successes in ``n`` give a lower bound (the protocol's interval ``method``) that meets
    ``comparator goal``. NaN for ``n = 0``."""
    if n < 1 or not 0.0 <= p <= 1.0:
        return math.nan
    k = smallest_passing_count(goal=goal, n=n, level=level, method=method, comparator=comparator)
    if k is None:
        return 0.0
    # P(X >= k) for X ~ Binomial(n, p): scipy's binomial tail without the frozen-distribution
    # overhead of stats.binom.sf (the search calls it once per n).
    return 1.0 if k == 0 else float(special.bdtrc(k - 1, n, p))


def smallest_passing_count(
    *, goal: float, n: int, level: float = 0.95, method: str = "wilson", comparator: str = ">"
) -> int | None:
    """The fewest successes out of ``n`` whose interval's lower bound meets the goal (the
    lower bound grows with the count, so a bisection finds it); None if even ``n`` fails."""
    z = _z(level)

    def passes(k: int) -> bool:
        lower = lower_bound(k, n, z=z, level=level, method=method)
        return lower > goal if comparator == ">" else lower >= goal

    if not passes(n):
        return None
    if passes(0):
        return 0
    low, high = 0, n  # fails at low, passes at high
    while high - low > 1:
        middle = (low + high) // 2
        if passes(middle):
            high = middle
        else:
            low = middle
    return high


def lower_bound(k: int, n: int, *, z: float, level: float, method: str) -> float:
    """The lower bound of ``proportion_interval(k, n, level, method)`` (tests hold them equal),
    without its per-call quantile: the power search evaluates it thousands of times."""
    if k == 0:
        return 0.0
    p, z2 = k / n, z * z
    if method == "wilson":
        centre = (p + z2 / (2 * n)) / (1 + z2 / n)
        half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
        return max(0.0, centre - half)
    if method == "wilson-cc":
        root = math.sqrt(z2 - 2 - 1 / n + 4 * p * (n * (1 - p) + 1))
        return max(0.0, (2 * n * p + z2 - 1 - z * root) / (2 * (n + z2)))
    if method == "clopper-pearson":
        return float(special.betaincinv(k, n - k + 1, (1 - level) / 2))
    raise ValueError(f"Unknown interval method {method!r}.")


def proportion_required(
    *,
    goal: float,
    p: float,
    level: float = 0.95,
    method: str = "wilson",
    comparator: str = ">",
    target: float = DEFAULT_TARGET_POWER,
) -> int | None:
    """The smallest denominator from which on the exact power stays at or above ``target``.
    The exact power saw-tooths in n (Chu & Cole 2007), so the first n that reaches the target
    can be followed by larger ones that fall short; like Flahault et al. (2005) in the
    conservative reading (approach II of Kohl's MKpower), the answer is one past the last n
    that falls short. None when no n reaches it (``p`` does not exceed the goal, or the goal
    is 1) or it would take more than ``MAX_SAMPLE``."""
    if p <= goal or goal >= 1.0 or not 0.0 < p <= 1.0:
        return None
    z = z_critical(level)
    z_beta = float(stats.norm.ppf(target))
    # The normal approximation's n for the one-sample score test (the Wilson lower bound
    # clears the goal exactly when it rejects): where to look.
    spread = z * math.sqrt(goal * (1 - goal)) + z_beta * math.sqrt(max(p * (1 - p), 1e-4))
    guess = spread**2 / (p - goal) ** 2
    if guess > MAX_SAMPLE:
        return None

    def power(n: int) -> float:
        return proportion_power(
            goal=goal, p=p, n=n, level=level, method=method, comparator=comparator
        )

    if guess > EXACT_SCAN_LIMIT:
        # The saw-tooth is negligible at this size: bisect as if the power were monotone.
        return _smallest(lambda n: power(n) >= target, low=int(guess * 0.5))
    # Beyond twice the approximation (and 100 more) the power no longer dips below the
    # target in practice; scan up to there, further while it still falls short.
    high = int(2 * guess) + 100
    n = max(1, int(guess * 0.5))
    if power(n) >= target:  # the approximation overshot: scan from the start
        n = 1
    last_short = n - 1  # below the scan the power is short of the target
    while n <= high or last_short == n - 1:
        if power(n) < target:
            last_short = n
        n += 1
        if n > MAX_SAMPLE:
            return None
    return last_short + 1


# --- the report's section -----------------------------------------------------------------------


def hypotheses_section(document: Mapping[str, Any], primary: Mapping[str, Any]) -> dict[str, Any]:
    """The report's section 4 (``doc["hypotheses"]``): whether the goals were derived from the
    acceptance criteria, the confidence level and the one-sided alpha it implies, one row per
    goal (``hypotheses``) and the power methods used."""
    level = float(document.get("confidence_level", 0.95))
    goals = hypotheses(document, primary)
    return {
        "derived": not document.get("performance_goals"),
        "confidence_level": level,
        "one_sided_alpha": (1 - level) / 2,
        "goals": goals,
        "power_methods": sorted({g["power_method"] for g in goals if g["power_method"]}),
    }


def hypotheses(document: Mapping[str, Any], primary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per performance goal for the report: the hypotheses, the estimate and interval
    (from the stored primary results), the half-width achieved, the power the sample had
    against the goal (at the anticipated value when stated, else at the observed estimate:
    descriptive only), and the sample that would reach the target power."""
    level = float(document.get("confidence_level", 0.95))
    interval_method = document.get("interval_method", "wilson")
    auc_method = document.get("auc_interval_method", "delong")
    counts = primary.get("counts") or {}
    n_pos, n_neg = int(counts.get("n_pos", 0)), int(counts.get("n_neg", 0))
    rows = []
    for goal in performance_goals(document):
        rows.append(
            _hypothesis(
                goal,
                primary.get(goal["metric"]),
                n_pos=n_pos,
                n_neg=n_neg,
                level=level,
                interval_method=interval_method,
                scale=AUC_METHOD_SCALE.get(auc_method, "linear"),
            )
        )
    return rows


def _hypothesis(
    goal: dict,
    interval: Any,
    *,
    n_pos: int,
    n_neg: int,
    level: float,
    interval_method: str,
    scale: str,
) -> dict[str, Any]:
    metric, value, comparator = goal["metric"], goal["goal"], goal["comparator"]
    interval = interval if isinstance(interval, Mapping) else {}
    estimate, lower, upper = (_finite(interval.get(k)) for k in ("estimate", "lower", "upper"))
    anticipated = goal["anticipated"]
    basis = ANTICIPATED if anticipated is not None else OBSERVED
    truth = anticipated if anticipated is not None else estimate
    row: dict[str, Any] = {
        "metric": metric,
        "goal": value,
        "anticipated": anticipated,
        "source": goal["source"],
        # H0 is what the lower bound must rule out: metric < goal for a ">=" criterion.
        "h0_relation": "<" if comparator == ">=" else "<=",
        "h1_relation": ">=" if comparator == ">=" else ">",
        "estimate": estimate,
        "lower": lower,
        "upper": upper,
        "interval_method": interval.get("method"),
        "half_width": (upper - lower) / 2 if lower is not None and upper is not None else None,
        "n_pos": n_pos,
        "n_neg": n_neg,
        "power_basis": basis,
        "power": None,
        "power_method": None,
        "target_power": goal["target_power"],
        "required": None,
        "note": "",
    }
    n_total = n_pos + n_neg
    prevalence = n_pos / n_total if n_total else None
    target = goal["target_power"]
    if metric != "auc" and metric not in DENOMINATOR:
        row["note"] = f"no power for {metric}: its denominator is not fixed by the design"
        return row
    if truth is None:
        row["note"] = f"no {basis} value: power not computed"
        return row
    if metric == "auc":
        row["power_method"] = AUC_POWER_METHOD.format(scale=scale)
        power = auc_power(goal=value, auc=truth, n_pos=n_pos, n_neg=n_neg, level=level, scale=scale)
        row["power"] = None if math.isnan(power) else power
        if math.isnan(power):
            row["note"] = (
                "power not computed: no case of one class"
                if not (n_pos and n_neg)
                else f"power not computed at an AUC of {truth:g}, where the variance vanishes"
            )
        needed = (
            auc_required(
                goal=value, auc=truth, ratio=n_neg / n_pos, level=level, scale=scale, target=target
            )
            if n_pos and n_neg
            else None
        )
        if needed:
            row["required"] = {"n_pos": needed[0], "n_neg": needed[1], "n_total": sum(needed)}
    else:
        n = {"sensitivity": n_pos, "specificity": n_neg, "accuracy": n_total}[metric]
        row["power_method"] = PROPORTION_POWER_METHOD.format(
            interval=interval.get("method") or interval_method
        )
        power = proportion_power(
            goal=value, p=truth, n=n, level=level, method=interval_method, comparator=comparator
        )
        row["power"] = None if math.isnan(power) else power
        if math.isnan(power):
            row["note"] = f"power not computed: no {DENOMINATOR[metric]}"
        needed_n = proportion_required(
            goal=value,
            p=truth,
            level=level,
            method=interval_method,
            comparator=comparator,
            target=target,
        )
        if needed_n is not None:
            row["required"] = _proportion_sample(metric, needed_n, prevalence)
    if row["required"] is None and not row["note"]:
        row["note"] = (
            f"the {basis} value does not exceed the goal: no sample reaches the target power"
        )
    return row


def _proportion_sample(metric: str, n: int, prevalence: float | None) -> dict[str, int | None]:
    """The positives or negatives needed, and the total at the observed prevalence (Buderer
    1996: the cases it takes for that many of the class to arise)."""
    if metric == "accuracy":
        return {"n_pos": None, "n_neg": None, "n_total": n}
    share = (
        prevalence if metric == "sensitivity" else (None if prevalence is None else 1 - prevalence)
    )
    total = math.ceil(n / share) if share else None
    key = "n_pos" if metric == "sensitivity" else "n_neg"
    return {"n_pos": None, "n_neg": None, key: n, "n_total": total}


def _smallest(enough, limit: int = MAX_SAMPLE, low: int = 0) -> int | None:
    """The smallest n in low+1..limit with ``enough(n)``, for a predicate monotone in n."""
    high = max(1, low)
    if enough(high):
        low = 0
    while not enough(high):
        low, high = high, high * 2
        if high > limit:
            return None
    while high - low > 1:
        middle = (low + high) // 2
        if enough(middle):
            high = middle
        else:
            low = middle
    return high


@functools.lru_cache(maxsize=8)
def _z(level: float) -> float:
    """The two-sided quantile, once per level: the power search asks for it per n."""
    return z_critical(level)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
