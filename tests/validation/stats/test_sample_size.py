"""Hypotheses and sample size (issue 18, item 4): the Hanley-McNeil variance, the power a sample
has against a performance goal, the sample that would reach a target power, and the goals a
protocol states or has derived from its acceptance criteria.

Reference values:
- Mann & Whitney (1947): with no difference between the classes (AUC 0.5) and no ties, the
  variance of U / (m n) is (m + n + 1) / (12 m n); Hanley & McNeil's Q1 = Q2 = 1/3 give it
  exactly.
- Hanley & McNeil (1982), Table 1 note and equation 2: Q1 = A / (2 - A), Q2 = 2 A^2 / (1 + A)
  are exact when both classes' scores are negative-exponential; the variance is then that of
  the Mann-Whitney statistic, which a seeded simulation measures here.
- The exact binomial power is checked against the sum over every count of its probability
  times whether the protocol's own interval (``proportion_interval``) clears the goal, and
  against simulated studies judged by the criterion code path (``auc_delong``).
"""

import math

import numpy as np
import pytest
from scipy import stats

from validation.stats.metrics import auc_delong, proportion_interval
from validation.stats.metrics._base import z_critical
from validation.stats.sample_size import (
    DERIVED,
    STATED,
    auc_power,
    auc_required,
    hanley_mcneil_variance,
    hypotheses,
    hypotheses_section,
    lower_bound,
    performance_goals,
    proportion_power,
    proportion_required,
    smallest_passing_count,
)

METHODS = ["wilson", "wilson-cc", "clopper-pearson"]


# --- Hanley-McNeil variance ---------------------------------------------------------------------


@pytest.mark.parametrize(("m", "n"), [(10, 10), (58, 51), (20, 80), (1, 7)])
def test_hanley_mcneil_variance_at_half_is_mann_whitneys_null_variance(m, n):
    assert hanley_mcneil_variance(0.5, m, n) == pytest.approx((m + n + 1) / (12 * m * n), rel=1e-12)


def test_hanley_mcneil_variance_is_exact_for_exponential_scores():
    # Negatives ~ Exp(1), positives ~ Exp(rate r): P(positive > negative) = 1 / (1 + r).
    rng = np.random.default_rng(20261208)
    auc, m, n, studies = 0.8, 30, 50, 20_000
    rate = 1 / auc - 1
    positives = rng.exponential(1 / rate, size=(studies, m))
    negatives = rng.exponential(1.0, size=(studies, n))
    wins = (positives[:, :, None] > negatives[:, None, :]).mean(axis=(1, 2))
    assert wins.mean() == pytest.approx(auc, abs=0.002)
    # The sample variance of 20,000 draws is within ~2% (its own standard error ~1%).
    assert wins.var(ddof=1) == pytest.approx(hanley_mcneil_variance(auc, m, n), rel=0.04)


def test_hanley_mcneil_variance_needs_both_classes():
    assert math.isnan(hanley_mcneil_variance(0.8, 0, 10))
    assert math.isnan(hanley_mcneil_variance(0.8, 10, 0))


# --- AUC power ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("scale", "method"), [("linear", "delong"), ("logit", "delong-logit")])
def test_auc_power_predicts_how_often_the_criterion_passes(scale, method):
    """Seeded studies with exponential scores (where Hanley-McNeil is exact), each judged as
    the protocol judges its criterion: the lower bound of the AUC interval above the goal."""
    rng = np.random.default_rng(7)
    auc, goal, m, n, studies = 0.85, 0.80, 60, 140, 600
    rate = 1 / auc - 1
    y = np.r_[np.ones(m), np.zeros(n)]
    passed = 0
    for _ in range(studies):
        scores = np.r_[rng.exponential(1 / rate, m), rng.exponential(1.0, n)]
        passed += auc_delong(y, scores, method=method).ci.lower > goal
    predicted = auc_power(goal=goal, auc=auc, n_pos=m, n_neg=n, scale=scale)
    assert 0.2 < predicted < 0.6  # a case where power is far from 0 and 1
    assert passed / studies == pytest.approx(predicted, abs=0.06)  # ~3 binomial SEs


def test_auc_power_grows_with_the_sample_and_the_margin_and_falls_with_the_level():
    def power(**change):
        arguments = {"goal": 0.75, "auc": 0.82, "n_pos": 50, "n_neg": 150, "level": 0.95}
        return auc_power(**{**arguments, **change})

    by_n = [power(n_pos=k, n_neg=3 * k) for k in (10, 30, 100, 300)]
    assert by_n == sorted(by_n) and by_n[-1] > 0.95
    by_auc = [power(auc=a) for a in (0.76, 0.8, 0.85, 0.9)]
    assert by_auc == sorted(by_auc)
    assert power(level=0.99) < power(level=0.95) < power(level=0.9)
    assert power(auc=0.75) == pytest.approx(stats.norm.cdf(-z_critical(0.95)))  # alpha / 2


def test_auc_power_at_the_edges():
    assert auc_power(goal=1.0, auc=0.9, n_pos=50, n_neg=50) == 0.0  # nothing exceeds 1
    assert auc_power(goal=0.0, auc=0.6, n_pos=50, n_neg=50) == 1.0
    assert math.isnan(auc_power(goal=0.7, auc=0.9, n_pos=0, n_neg=50))  # no positives
    assert math.isnan(auc_power(goal=0.7, auc=1.0, n_pos=5, n_neg=5))  # variance vanishes


def test_auc_required_is_the_first_sample_that_reaches_the_target():
    needed = auc_required(goal=0.75, auc=0.82, ratio=3.0, target=0.8)
    assert needed is not None
    n_pos, n_neg = needed
    assert n_neg == math.ceil(3.0 * n_pos)
    assert auc_power(goal=0.75, auc=0.82, n_pos=n_pos, n_neg=n_neg) >= 0.8
    below = n_pos - 1
    assert auc_power(goal=0.75, auc=0.82, n_pos=below, n_neg=math.ceil(3 * below)) < 0.8
    assert auc_required(goal=0.75, auc=0.75, ratio=1.0) is None  # no margin, no sample
    assert auc_required(goal=1.0, auc=0.99, ratio=1.0) is None


# --- proportions --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_lower_bound_is_the_protocol_intervals_lower_bound(method):
    z = z_critical(0.9)
    for n in (1, 2, 7, 40, 333):
        for k in range(n + 1):
            expected = proportion_interval(k, n, level=0.9, method=method).lower
            assert lower_bound(k, n, z=z, level=0.9, method=method) == pytest.approx(
                expected, abs=1e-12
            )


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("comparator", [">", ">="])
def test_exact_power_is_the_sum_over_counts_that_clear_the_goal(method, comparator):
    for n, p, goal in [(60, 0.85, 0.7), (140, 0.85, 0.75), (25, 0.95, 0.8), (9, 0.5, 0.1)]:
        clears = [
            (lambda lo: lo > goal if comparator == ">" else lo >= goal)(
                proportion_interval(k, n, method=method).lower
            )
            for k in range(n + 1)
        ]
        expected = sum(stats.binom.pmf(k, n, p) for k in range(n + 1) if clears[k])
        power = proportion_power(goal=goal, p=p, n=n, method=method, comparator=comparator)
        assert power == pytest.approx(expected, abs=1e-12)
        first = smallest_passing_count(goal=goal, n=n, method=method, comparator=comparator)
        assert first == (clears.index(True) if any(clears) else None)


def test_proportion_power_at_the_edges():
    assert proportion_power(goal=1.0, p=1.0, n=500) == 0.0  # no lower bound exceeds 1
    assert math.isnan(proportion_power(goal=0.7, p=0.9, n=0))  # zero positives
    assert proportion_power(goal=0.7, p=0.0, n=50) == 0.0
    # At the goal itself the power is at most the one-sided alpha (here well below it).
    assert proportion_power(goal=0.8, p=0.8, n=200) <= 0.025


@pytest.mark.parametrize("method", METHODS)
def test_required_sample_is_where_the_saw_tooth_stays_above_the_target(method):
    required = proportion_required(goal=0.75, p=0.85, method=method, target=0.8)
    assert required is not None
    powers = [proportion_power(goal=0.75, p=0.85, n=n, method=method) for n in range(1, 600)]
    assert powers[required - 2] < 0.8  # n = required - 1 falls short
    assert min(powers[required - 1 :]) >= 0.8  # and from `required` on, none does
    # The saw-tooth is real: some smaller n already reached the target.
    assert any(p >= 0.8 for p in powers[: required - 1])


def test_required_sample_agrees_with_the_normal_approximation_when_large():
    # The textbook normal-approximation sample size of the one-sample score test of
    # H0: p <= p0 (the test the Wilson lower bound inverts):
    # n = (z_a sqrt(p0 q0) + z_b sqrt(p q))^2 / (p - p0)^2, here 470.4 by hand.
    z_a, z_b = z_critical(0.95), stats.norm.ppf(0.8)
    approximation = (z_a * math.sqrt(0.8 * 0.2) + z_b * math.sqrt(0.85 * 0.15)) ** 2 / 0.05**2
    assert approximation == pytest.approx(470.4, abs=0.1)
    exact = proportion_required(goal=0.8, p=0.85)
    assert exact == pytest.approx(approximation, rel=0.05)


def test_required_sample_is_none_without_a_margin_and_grows_as_it_shrinks():
    assert proportion_required(goal=0.8, p=0.8) is None
    assert proportion_required(goal=1.0, p=1.0) is None
    sizes = [proportion_required(goal=0.7, p=p) or 0 for p in (0.95, 0.9, 0.85, 0.8)]
    assert 0 not in sizes and sizes == sorted(sizes)


# --- goals --------------------------------------------------------------------------------------

CRITERIA = [
    {"metric": "auc", "bound": "lower", "comparator": ">=", "value": 0.75},
    {"metric": "sensitivity", "bound": "lower", "comparator": ">", "value": 0.6},
    {"metric": "specificity", "bound": "estimate", "comparator": ">=", "value": 0.6},
    {"metric": "ppv", "bound": "upper", "comparator": "<=", "value": 0.9},
]


def test_goals_are_derived_from_lower_bound_criteria_when_none_are_stated():
    goals = performance_goals({"acceptance_criteria": CRITERIA})
    assert [(g["metric"], g["goal"], g["comparator"], g["source"]) for g in goals] == [
        ("auc", 0.75, ">=", DERIVED),
        ("sensitivity", 0.6, ">", DERIVED),
    ]
    assert all(g["anticipated"] is None and g["target_power"] == 0.8 for g in goals)


def test_stated_goals_replace_the_derived_ones():
    stated = [{"metric": "sensitivity", "goal": 0.8, "anticipated": 0.9, "power": 0.9}]
    goals = performance_goals({"acceptance_criteria": CRITERIA, "performance_goals": stated})
    assert goals == [
        {
            "metric": "sensitivity",
            "goal": 0.8,
            "anticipated": 0.9,
            "target_power": 0.9,
            "source": STATED,
            "comparator": ">",
        }
    ]


def _primary(n_pos=60, n_neg=140, sensitivity=(0.85, 0.74, 0.92), auc=(0.9, 0.85, 0.95)):
    def interval(values, method):
        return dict(zip(("estimate", "lower", "upper"), values, strict=True)) | {"method": method}

    return {
        "counts": {"n_pos": n_pos, "n_neg": n_neg},
        "sensitivity": interval(sensitivity, "Wilson score") if sensitivity else None,
        "auc": interval(auc, "DeLong (Sun & Xu 2014)") if auc else None,
    }


def test_a_derived_goal_gets_observed_power_and_the_precision_achieved():
    document = {"acceptance_criteria": CRITERIA[:2], "auc_interval_method": "delong-logit"}
    auc, sensitivity = hypotheses(document, _primary())
    assert auc["source"] == DERIVED and auc["power_basis"] == "observed"
    assert (auc["h0_relation"], auc["h1_relation"]) == ("<", ">=")  # a ">=" criterion
    assert (sensitivity["h0_relation"], sensitivity["h1_relation"]) == ("<=", ">")
    assert auc["half_width"] == pytest.approx(0.05)
    assert auc["power"] == pytest.approx(
        auc_power(goal=0.75, auc=0.9, n_pos=60, n_neg=140, scale="logit")
    )
    assert "logit" in auc["power_method"]
    assert sensitivity["power"] == pytest.approx(
        proportion_power(goal=0.6, p=0.85, n=60, comparator=">")
    )
    required = sensitivity["required"]
    assert required["n_pos"] == proportion_required(goal=0.6, p=0.85, comparator=">")
    assert required["n_total"] == math.ceil(required["n_pos"] / 0.3)  # observed prevalence
    section = hypotheses_section(document, _primary())
    assert section["derived"] is True and section["one_sided_alpha"] == pytest.approx(0.025)


def test_a_stated_goal_gets_power_at_its_anticipated_value():
    document = {
        "acceptance_criteria": CRITERIA,
        "performance_goals": [{"metric": "auc", "goal": 0.8, "anticipated": 0.88}],
    }
    (row,) = hypotheses(document, _primary())
    assert row["power_basis"] == "anticipated" and row["anticipated"] == 0.88
    # A legacy document without auc_interval_method was analysed with plain DeLong.
    assert row["power"] == pytest.approx(
        auc_power(goal=0.8, auc=0.88, n_pos=60, n_neg=140, scale="linear")
    )
    assert hypotheses_section(document, _primary())["derived"] is False


def test_rows_say_why_a_power_is_missing():
    document = {
        "acceptance_criteria": CRITERIA,
        "performance_goals": [
            {"metric": "sensitivity", "goal": 0.7},
            {"metric": "auc", "goal": 0.95},
            {"metric": "ppv", "goal": 0.5},
        ],
    }
    no_positives = hypotheses(document, _primary(n_pos=0, sensitivity=None, auc=None))
    assert [r["power"] for r in no_positives] == [None, None, None]
    assert no_positives[0]["note"] == "no observed value: power not computed"
    sensitivity, auc, ppv = hypotheses(document, _primary())
    assert auc["required"] is None  # the observed 0.90 does not exceed the goal 0.95
    assert "does not exceed the goal" in auc["note"]
    assert "not fixed by the design" in ppv["note"] and ppv["power"] is None
    assert sensitivity["power"] is not None and sensitivity["note"] == ""
