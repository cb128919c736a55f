"""Statistics engine against published values (pROC's aSAH examples, FDA 2007, Newcombe 1998)
and against independent implementations (scikit-learn, statsmodels, fairlearn).

Plain pytest: no Django needed (run with ``-p no:django``).
"""

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
from scipy import stats
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from validation.stats.metrics import (
    AucResult,
    Interval,
    MetricInputError,
    PairedAucResult,
    auc_delong,
    binary_metrics,
    clopper_pearson_interval,
    confusion_counts,
    delong_paired,
    fairness_summary,
    likelihood_ratios,
    newcombe_difference_interval,
    proportion_interval,
    roc_points,
    subgroup_table,
    to_jsonable,
    wilson_cc_interval,
    wilson_interval,
)
from validation.stats.metrics.roc import (
    HANLEY_MCNEIL_SCORE,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "aSAH.csv"
TOL = 1e-8  # the reference values are printed to 10+ significant digits


@pytest.fixture(scope="module")
def asah():
    """pROC's aSAH data: outcome Poor = 1 (case), Good = 0 (control)."""
    with DATA.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    data: dict[str, Any] = {
        name: np.array([float(row[name]) for row in rows]) for name in ("s100b", "ndka")
    }
    data["wfns"] = np.array([float(row["wfns"]) for row in rows])
    data["y"] = np.array([1 if row["outcome"] == "Poor" else 0 for row in rows])
    data["gender"] = [row["gender"] for row in rows]
    data["age"] = np.array([float(row["age"]) for row in rows])
    assert len(rows) == 113 and data["y"].sum() == 41
    return data


def random_case(seed, n=200, ties=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    scores = rng.normal(size=n) + y
    if ties:
        scores = np.round(scores * 2) / 2
    return y, scores


# --- AUC and DeLong against pROC (Robin et al. 2011) ----------------------------------------


@pytest.mark.parametrize(
    ("marker", "auc", "variance"),
    [
        ("s100b", 0.7313685637, 0.00266868245717244),
        ("ndka", 0.6119579946, 0.0031908105493913),
        ("wfns", 0.8236788618, 0.00146991470882363),
    ],
)
def test_auc_and_delong_variance_match_proc(asah, marker, auc, variance):
    result = auc_delong(asah["y"], asah[marker])
    assert isinstance(result, AucResult)
    assert result.auc == pytest.approx(auc, abs=TOL)
    assert result.variance == pytest.approx(variance, abs=1e-12)
    assert (result.n_pos, result.n_neg) == (41, 72)


@pytest.mark.parametrize(
    ("marker", "lower", "upper"),
    [
        ("s100b", 0.6301182118, 0.8326189156),
        ("ndka", 0.501244999271703, 0.722670989888189),
    ],
)
def test_delong_ci_matches_proc(asah, marker, lower, upper):
    ci = auc_delong(asah["y"], asah[marker], method="delong").ci
    assert (ci.lower, ci.upper) == pytest.approx((lower, upper), abs=TOL)
    assert ci.method == "DeLong (Sun & Xu 2014)"
    assert ci.level == 0.95


def test_delong_ci_ndka_females_matches_proc(asah):
    female = np.array(asah["gender"]) == "Female"
    ci = auc_delong(asah["y"][female], asah["ndka"][female], method="delong").ci
    assert (ci.lower, ci.upper) == pytest.approx((0.5261398281, 0.8081458862), abs=TOL)


def test_paired_delong_wfns_vs_s100b_matches_proc(asah):
    result = delong_paired(asah["y"], asah["wfns"], asah["s100b"])
    assert isinstance(result, PairedAucResult)
    assert result.z == pytest.approx(2.20898359144091, abs=TOL)
    assert result.p_value == pytest.approx(0.0271757822291882, abs=TOL)
    assert (result.ci.lower, result.ci.upper) == pytest.approx(
        (0.0104061769564846, 0.174214419249478), abs=TOL
    )
    assert result.difference == pytest.approx(result.auc_a - result.auc_b)
    assert result.auc_a == pytest.approx(0.8236788618, abs=TOL)


def test_paired_delong_ndka_vs_s100b_matches_proc(asah):
    result = delong_paired(asah["y"], asah["ndka"], asah["s100b"])
    assert result.z == pytest.approx(-1.39077002573558, abs=TOL)
    assert result.p_value == pytest.approx(0.164295175223054, abs=TOL)


def test_paired_delong_order_flips_sign_not_p(asah):
    forward = delong_paired(asah["y"], asah["ndka"], asah["s100b"])
    backward = delong_paired(asah["y"], asah["s100b"], asah["ndka"])
    assert backward.z == pytest.approx(-forward.z)
    assert backward.p_value == pytest.approx(forward.p_value)


def test_paired_delong_identical_scores_is_no_difference(asah):
    result = delong_paired(asah["y"], asah["s100b"], asah["s100b"])
    assert (result.difference, result.z, result.p_value) == (0.0, 0.0, 1.0)


def test_delong_single_score_variance_equals_paired_diagonal(asah):
    # var(a - b) = var(a) + var(b) - 2 cov(a, b) with b = -a (AUC 1 - a): cov = -var(a).
    single = auc_delong(asah["y"], asah["s100b"])
    paired = delong_paired(asah["y"], asah["s100b"], -asah["s100b"])
    assert paired.variance == pytest.approx(4 * single.variance)
    assert paired.auc_b == pytest.approx(1 - single.auc)


# --- AUC and ROC against scikit-learn ---------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [False, True])
def test_auc_matches_sklearn(seed, ties):
    y, scores = random_case(seed, ties=ties)
    assert auc_delong(y, scores).auc == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("ties", [False, True])
def test_roc_points_match_sklearn(seed, ties):
    y, scores = random_case(seed, n=60, ties=ties)
    fpr, tpr, thresholds = roc_points(y, scores)
    expected = roc_curve(y, scores, drop_intermediate=False)
    for got, want in zip((fpr, tpr, thresholds), expected, strict=True):
        np.testing.assert_allclose(got, want)


def test_roc_points_asah_match_sklearn(asah):
    got = roc_points(asah["y"], asah["s100b"])
    want = roc_curve(asah["y"], asah["s100b"], drop_intermediate=False)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b)


def test_all_equal_scores_give_auc_one_half_with_zero_variance():
    result = auc_delong([0, 1, 0, 1, 1], [0.3] * 5)
    assert result.auc == 0.5
    assert result.variance == 0.0
    # No zero-width [0.5, 0.5]: the score interval reflects how few cases there are.
    assert result.ci.lower < 0.3 and result.ci.upper > 0.7
    assert result.ci.method == HANLEY_MCNEIL_SCORE
    fpr, tpr, thresholds = roc_points([0, 1, 0, 1, 1], [0.3] * 5)
    assert fpr.tolist() == [0.0, 1.0] and tpr.tolist() == [0.0, 1.0]


def test_ties_between_classes_count_one_half():
    assert auc_delong([0, 1], [0.5, 0.5]).auc == 0.5
    assert auc_delong([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9]).auc == pytest.approx(0.875)


def test_perfect_separation_ci_ends_at_one_with_width():
    for method in ("delong", "delong-logit"):
        result = auc_delong([0, 0, 0, 1, 1, 1], [1, 2, 3, 4, 5, 6], method=method)
        assert result.auc == 1.0
        assert result.ci.upper == 1.0 and result.ci.lower < 0.8


def test_single_case_of_a_class_gives_auc_without_variance_but_an_interval():
    result = auc_delong([0, 0, 0, 1], [0.1, 0.2, 0.3, 0.9])
    assert result.auc == 1.0
    assert math.isnan(result.variance)
    assert result.ci.upper == 1.0 and 0.0 < result.ci.lower < 0.5
    assert result.ci.method == HANLEY_MCNEIL_SCORE


def test_auc_is_antisymmetric_in_score_direction(asah):
    forward = auc_delong(asah["y"], asah["ndka"])
    reversed_ = auc_delong(asah["y"], -asah["ndka"])
    assert reversed_.auc == pytest.approx(1 - forward.auc)
    assert reversed_.variance == pytest.approx(forward.variance)


# --- input errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_scores_raise(bad):
    with pytest.raises(MetricInputError, match="finite"):
        auc_delong([0, 1, 0, 1], [0.1, bad, 0.3, 0.4])
    with pytest.raises(MetricInputError, match="finite"):
        binary_metrics([0, 1, 0, 1], [0.1, bad, 0.3, 0.4], 0.5)


@pytest.mark.parametrize("labels", [[0, 2, 1, 0], [0, 1, -1, 1], ["a", "b", "a", "b"]])
def test_labels_outside_0_1_raise(labels):
    with pytest.raises(MetricInputError, match="0 and 1"):
        auc_delong(labels, [0.1, 0.2, 0.3, 0.4])


def test_nan_label_raises():
    with pytest.raises(MetricInputError, match="0 and 1"):
        confusion_counts([0, 1, math.nan], [0, 1, 1])


def test_length_mismatch_raises():
    with pytest.raises(MetricInputError, match="length"):
        auc_delong([0, 1, 0], [0.1, 0.2])
    with pytest.raises(MetricInputError, match="length"):
        delong_paired([0, 1, 0], [0.1, 0.2, 0.3], [0.1, 0.2])
    with pytest.raises(MetricInputError, match="length"):
        subgroup_table([0, 1, 0], [0.1, 0.2, 0.3], 0.5, {"sex": ["F", "M"]})


def test_one_class_only_auc_raises_clear_error():
    with pytest.raises(MetricInputError, match="one class only"):
        auc_delong([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(MetricInputError, match="one class only"):
        roc_points([0, 0], [0.1, 0.2])


def test_metric_input_error_is_a_value_error():
    assert issubclass(MetricInputError, ValueError)


# --- proportions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "n", "lower_pct", "upper_pct"),
    [(44, 51, 74.3, 93.2), (168, 169, 96.7, 99.9), (211, 220, 92.4, 97.8)],
)
def test_wilson_matches_fda_2007_appendix_7(k, n, lower_pct, upper_pct):
    ci = wilson_interval(k, n)
    assert round(100 * ci.lower, 1) == lower_pct
    assert round(100 * ci.upper, 1) == upper_pct
    assert ci.method == "Wilson score"


GRID = [(0, 1), (0, 10), (1, 10), (5, 10), (10, 10), (3, 7), (44, 51), (99, 100), (0, 250)]


@pytest.mark.parametrize(("k", "n"), GRID)
@pytest.mark.parametrize("level", [0.90, 0.95, 0.99])
def test_wilson_and_clopper_pearson_match_statsmodels(k, n, level):
    alpha = 1 - level
    wilson = wilson_interval(k, n, level=level)
    exact = clopper_pearson_interval(k, n, level=level)
    expected_wilson = proportion_confint(k, n, alpha=alpha, method="wilson")
    expected_exact = proportion_confint(k, n, alpha=alpha, method="beta")
    assert (wilson.lower, wilson.upper) == pytest.approx(expected_wilson, abs=1e-12)
    assert (exact.lower, exact.upper) == pytest.approx(expected_exact, abs=1e-12)
    assert wilson.estimate == exact.estimate == k / n
    assert exact.method == "Clopper-Pearson"


@pytest.mark.parametrize("interval", [wilson_interval, clopper_pearson_interval])
def test_proportion_bounds_at_zero_and_all(interval):
    none = interval(0, 20)
    assert none.estimate == 0.0 and none.lower == 0.0 and 0 < none.upper < 1
    every = interval(20, 20)
    assert every.estimate == 1.0 and every.upper == 1.0 and 0 < every.lower < 1


@pytest.mark.parametrize("interval", [wilson_interval, clopper_pearson_interval])
def test_proportion_with_no_cases_is_nan(interval):
    ci = interval(0, 0)
    assert all(math.isnan(v) for v in (ci.estimate, ci.lower, ci.upper))


@pytest.mark.parametrize(("k", "n"), [(-1, 5), (6, 5), (1.5, 5), (1, -1)])
def test_invalid_counts_raise(k, n):
    with pytest.raises(MetricInputError):
        wilson_interval(k, n)


def test_invalid_level_raises():
    with pytest.raises(MetricInputError, match="level"):
        wilson_interval(1, 2, level=95)


# Newcombe RG. Two-sided confidence intervals for the single proportion: comparison of seven
# methods. Stat Med 1998;17:857-872, the worked examples' table: method 3 (score) and method 4
# (score with continuity correction), 95%, to the published four decimals.
NEWCOMBE_1998_SINGLE = [
    # k, n, (method 3 lower, upper), (method 4 lower, upper)
    (81, 263, (0.2553, 0.3662), (0.2535, 0.3682)),
    (15, 148, (0.0624, 0.1605), (0.0598, 0.1644)),
    (0, 20, (0.0000, 0.1611), (0.0000, 0.2005)),
    (1, 29, (0.0061, 0.1718), (0.0018, 0.1963)),
]


@pytest.mark.parametrize(("k", "n", "score", "corrected"), NEWCOMBE_1998_SINGLE)
def test_wilson_with_and_without_correction_match_newcombe_1998(k, n, score, corrected):
    plain, cc = wilson_interval(k, n), wilson_cc_interval(k, n)
    assert (round(plain.lower, 4), round(plain.upper, 4)) == score
    assert (round(cc.lower, 4), round(cc.upper, 4)) == corrected
    assert cc.method == "Wilson score with continuity correction (Newcombe 1998)"
    assert cc.estimate == k / n


@pytest.mark.parametrize(("k", "n"), GRID)
@pytest.mark.parametrize("level", [0.90, 0.95, 0.99])
def test_wilson_cc_is_wider_than_wilson_and_inverts_the_corrected_score_test(k, n, level):
    # The corrected interval holds the p with |k/n - p| - 1/(2n) <= z sqrt(p(1-p)/n), which is
    # what R's prop.test(correct = TRUE) inverts; checked here on a fine grid of p.
    z = stats.norm.ppf(0.5 + level / 2)
    plain, cc = wilson_interval(k, n, level=level), wilson_cc_interval(k, n, level=level)
    assert cc.lower <= plain.lower and cc.upper >= plain.upper
    assert cc.upper - cc.lower > 0
    p = np.linspace(0, 1, 400_001)
    accepted = p[np.abs(k / n - p) - 1 / (2 * n) <= z * np.sqrt(p * (1 - p) / n)]
    assert (cc.lower, cc.upper) == pytest.approx((accepted.min(), accepted.max()), abs=1e-5)


@pytest.mark.parametrize("method", ["wilson", "wilson-cc", "clopper-pearson"])
def test_no_proportion_interval_has_zero_width(method):
    # Sensitivity and specificity on a handful of cases: 0/n and n/n keep a width.
    for n in (1, 2, 5):
        for k in range(n + 1):
            ci = proportion_interval(k, n, method=method)
            assert ci.upper - ci.lower > 0.2, (k, n)


# Newcombe (1998) Table II, method 10, to the published four decimals.
@pytest.mark.parametrize(
    ("counts", "lower", "upper"),
    [
        ((56, 70, 48, 80), 0.0524, 0.3339),
        ((9, 10, 3, 10), 0.1705, 0.8090),
        ((5, 56, 0, 29), -0.0381, 0.1926),
        ((0, 10, 0, 20), -0.1611, 0.2775),
        ((10, 10, 0, 20), 0.6791, 1.0000),
    ],
)
def test_newcombe_matches_published_and_statsmodels(counts, lower, upper):
    ci = newcombe_difference_interval(*counts)
    assert (round(ci.lower, 4), round(ci.upper, 4)) == (lower, upper)
    k1, n1, k2, n2 = counts
    expected = confint_proportions_2indep(k1, n1, k2, n2, compare="diff", method="newcomb")
    assert (ci.lower, ci.upper) == pytest.approx(expected, abs=1e-12)


def test_likelihood_ratios_match_log_method_of_statsmodels():
    # LR+ and LR- are ratios of independent proportions; the log (Katz) interval is Simel's.
    tp, fp, tn, fn = 26, 14, 58, 15
    positive, negative = likelihood_ratios(tp, fp, tn, fn)
    assert positive.estimate == pytest.approx((26 / 41) / (14 / 72))
    assert negative.estimate == pytest.approx((15 / 41) / (58 / 72))
    want_positive = confint_proportions_2indep(tp, 41, fp, 72, compare="ratio", method="log")
    want_negative = confint_proportions_2indep(fn, 41, tn, 72, compare="ratio", method="log")
    assert (positive.lower, positive.upper) == pytest.approx(want_positive, rel=1e-12)
    assert (negative.lower, negative.upper) == pytest.approx(want_negative, rel=1e-12)
    assert positive.method == "log method"


def test_likelihood_ratio_with_zero_cell_uses_continuity_correction():
    positive, negative = likelihood_ratios(tp=10, fp=0, tn=20, fn=5)
    assert positive.method == "log method, 0.5 added to each cell"
    assert positive.estimate == pytest.approx((10.5 / 16) / (0.5 / 21))
    se = math.sqrt(1 / 10.5 - 1 / 16 + 1 / 0.5 - 1 / 21)
    assert positive.lower == pytest.approx(positive.estimate * math.exp(-1.959963984540054 * se))
    assert negative.method == "log method"
    assert math.isfinite(positive.upper)


def test_likelihood_ratios_undefined_without_both_classes():
    positive, negative = likelihood_ratios(tp=3, fp=0, tn=0, fn=2)
    assert math.isnan(positive.estimate) and math.isnan(negative.upper)


# --- binary metrics at a threshold ------------------------------------------------------------


def test_confusion_counts_match_sklearn(asah):
    predicted = (asah["s100b"] >= 0.205).astype(int)
    tn, fp, fn, tp = confusion_matrix(asah["y"], predicted).ravel()
    assert confusion_counts(asah["y"], predicted) == {"tp": tp, "fp": fp, "tn": tn, "fn": fn}


def test_binary_metrics_on_asah(asah):
    result = binary_metrics(asah["y"], asah["s100b"], 0.205)
    counts = result["counts"]
    assert counts == {"tp": 26, "fp": 14, "tn": 58, "fn": 15, "n": 113, "n_pos": 41, "n_neg": 72}
    expected = {
        "sensitivity": (26, 41),
        "specificity": (58, 72),
        "ppv": (26, 40),
        "npv": (58, 73),
        "accuracy": (84, 113),
        "prevalence": (41, 113),
    }
    for name, (k, n) in expected.items():
        assert result[name] == wilson_interval(k, n), name
    assert result["positive_likelihood_ratio"] == likelihood_ratios(26, 14, 58, 15)[0]
    assert result["auc"] == auc_delong(asah["y"], asah["s100b"]).ci
    assert result["notes"] == []


def test_binary_metrics_threshold_is_inclusive_and_clopper_pearson_on_request():
    result = binary_metrics([1, 1, 0, 0], [0.5, 0.4, 0.5, 0.1], 0.5, interval="clopper-pearson")
    assert result["counts"] == {"tp": 1, "fp": 1, "tn": 1, "fn": 1, "n": 4, "n_pos": 2, "n_neg": 2}
    assert result["sensitivity"].method == "Clopper-Pearson"
    with pytest.raises(ValueError, match="interval method"):
        binary_metrics([1, 0], [0.5, 0.4], 0.5, interval="wald")


def test_binary_metrics_with_one_class_reports_undefined_values():
    result = binary_metrics([1, 1, 1], [0.9, 0.2, 0.7], 0.5)
    assert result["auc"] is None
    assert math.isnan(result["specificity"].estimate)
    assert "AUC undefined: one class only" in result["notes"]
    json.dumps(to_jsonable(result), allow_nan=False)


# --- subgroups and fairness -------------------------------------------------------------------


def test_subgroup_table_gender(asah):
    rows = subgroup_table(asah["y"], asah["s100b"], 0.205, {"gender": asah["gender"]})
    assert [row["group"] for row in rows] == ["Female", "Male"]
    female = rows[0]
    assert (female["n"], female["n_pos"], female["n_neg"]) == (71, 21, 50)
    assert female["prevalence"] == pytest.approx(21 / 71)
    assert female["suppressed"] is False
    mask = np.array(asah["gender"]) == "Female"
    predicted = asah["s100b"][mask] >= 0.205
    tp = int(np.sum(predicted & (asah["y"][mask] == 1)))
    expected = wilson_interval(tp, 21)
    assert female["sensitivity"].estimate == pytest.approx(expected.estimate)
    assert (female["sensitivity"].lower, female["sensitivity"].upper) == (
        expected.lower,
        expected.upper,
    )
    assert female["auc"] == auc_delong(asah["y"][mask], asah["s100b"][mask]).ci


def test_subgroup_single_class_and_missing_values_do_not_crash():
    y = [1, 1, 0, 0, 1, 0, 1, 0]
    scores = [0.9, 0.8, 0.1, 0.6, 0.7, 0.2, 0.4, 0.3]
    site = ["A", "A", "B", "B", None, math.nan, "", "A"]
    rows = subgroup_table(y, scores, 0.5, {"site": site}, min_cell=3)
    by_group = {row["group"]: row for row in rows}
    assert list(by_group) == ["A", "B", "unknown"]
    b = by_group["B"]
    assert b["n_pos"] == 0 and b["sensitivity"] is None and b["auc"] is None
    assert "AUC undefined: one class only" in b["notes"]
    assert b["suppressed"] is True
    assert by_group["unknown"]["n"] == 3
    assert by_group["A"]["auc"].estimate == 1.0
    json.dumps(to_jsonable(rows), allow_nan=False)


def test_subgroups_with_no_attributes_or_no_cases():
    assert subgroup_table([0, 1], [0.1, 0.9], 0.5, {}) == []
    assert fairness_summary([0, 1], [0.1, 0.9], 0.5, {}) == []
    assert subgroup_table([], [], 0.5, {"sex": []}) == []
    rows = subgroup_table([0, 1], [0.1, 0.9], 0.5, {"sex": None})
    assert [row["group"] for row in rows] == ["unknown"]


def test_fairness_summary_matches_fairlearn(asah):
    groups = {"gender": asah["gender"]}
    (summary,) = fairness_summary(asah["y"], asah["s100b"], 0.205, groups)
    predicted = (asah["s100b"] >= 0.205).astype(int)
    features = {"sensitive_features": asah["gender"]}
    assert summary["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(asah["y"], predicted, **features)
    )
    assert summary["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(asah["y"], predicted, **features)
    )
    rows = {row["group"]: row for row in subgroup_table(asah["y"], asah["s100b"], 0.205, groups)}
    tpr = {g: row["sensitivity"].estimate for g, row in rows.items()}
    assert summary["tpr_max_group"] == max(tpr, key=tpr.__getitem__)
    assert summary["tpr_difference"].estimate == pytest.approx(
        max(tpr.values()) - min(tpr.values())
    )
    fpr = {g: 1 - row["specificity"].estimate for g, row in rows.items()}
    assert summary["fpr_difference"].estimate == pytest.approx(
        max(fpr.values()) - min(fpr.values())
    )
    assert summary["tpr_difference"].method == "Newcombe hybrid score (method 10)"
    assert summary["groups_compared"] == ["Female", "Male"]


def test_fairness_summary_leaves_out_small_and_single_class_groups(asah):
    band = np.where(asah["age"] < 30, "young", np.where(asah["age"] > 60, "old", "middle"))
    band[:3] = "tiny"  # 3 cases, under min_cell
    (summary,) = fairness_summary(asah["y"], asah["s100b"], 0.205, {"age": band.tolist()})
    excluded = {item["group"]: item["reason"] for item in summary["groups_excluded"]}
    assert excluded["tiny"] == "n < 10"
    assert "tiny" not in summary["groups_compared"]
    keep = np.isin(band, summary["groups_compared"])
    predicted = (asah["s100b"] >= 0.205).astype(int)
    assert summary["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(asah["y"][keep], predicted[keep], sensitive_features=band[keep])
    )


def test_fairness_summary_with_fewer_than_two_groups_is_undefined():
    (summary,) = fairness_summary([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], 0.5, {"site": ["A"] * 4})
    assert summary["equalized_odds_difference"] is None
    assert summary["tpr_difference"] is None
    assert summary["notes"]


# --- JSON -------------------------------------------------------------------------------------


def test_to_jsonable_converts_numpy_intervals_and_nan():
    value = {
        "ci": Interval(np.float64(0.5), math.nan, 1.0, "Wilson score"),
        "n": np.int64(3),
        "flag": np.bool_(True),
        "curve": np.array([0.0, math.inf]),
        "pair": (1, 2),
    }
    assert to_jsonable(value) == {
        "ci": {
            "estimate": 0.5,
            "lower": None,
            "upper": 1.0,
            "method": "Wilson score",
            "level": 0.95,
        },
        "n": 3,
        "flag": True,
        "curve": [0.0, None],
        "pair": [1, 2],
    }


def test_to_jsonable_results_are_strict_json(asah):
    payload = {
        "auc": auc_delong(asah["y"], asah["s100b"]),
        "paired": delong_paired(asah["y"], asah["wfns"], asah["s100b"]),
        "metrics": binary_metrics(asah["y"], asah["s100b"], 0.205),
        "roc": roc_points(asah["y"], asah["s100b"]),
        "fairness": fairness_summary(asah["y"], asah["s100b"], 0.205, {"g": asah["gender"]}),
    }
    document = to_jsonable(payload)
    json.dumps(document, allow_nan=False)
    assert document["auc"]["ci"]["method"] == "DeLong, logit scale (Sun & Xu 2014 variance)"
    assert document["roc"][2][0] is None  # the +inf first threshold
