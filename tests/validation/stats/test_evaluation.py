"""The full metric set of a run as the protocol plans it (`validation.stats.evaluation`).
No Django."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from statsmodels.stats.multitest import multipletests

from validation.protocol_document import protocol_errors, with_defaults
from validation.stats.evaluation import Plan, evaluate
from validation.stats.metrics.calibration import calibration_summary

PROTOCOL = {
    "schema_version": "1.0",
    "task": "binary-classification",
    "primary_endpoint": "auc",
    "operating_point": {"source": "vendor-declared"},
    "acceptance_criteria": [
        {"metric": "auc", "bound": "lower", "comparator": ">=", "value": 0.6},
        {"metric": "sensitivity", "bound": "estimate", "comparator": ">=", "value": 0.5},
    ],
    "subgroups": [
        {"attribute": "sex"},
        {"attribute": "site", "exploratory": True},
        {"attribute": "scanner", "exploratory": True},
    ],
    "min_cell_size": 20,
    "bootstrap": {"replicates": 300, "seed": 7},
}


def _study(n=600, seed=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    site = rng.choice(["A", "B", "C"], n)
    # Site C is harder: its positives score lower, so its TPR is lower.
    shift = np.where(site == "C", -1.0, 0.0)
    logits = rng.normal(0, 1, n) + y * (1.6 + shift)
    scores = 1 / (1 + np.exp(-(logits - 0.8)))
    groups = {
        "sex": rng.choice(["F", "M"], n),
        "site": site,
        "scanner": np.where(np.arange(n) < 8, "rare", rng.choice(["X", "Y"], n)),
    }
    return y, scores, groups


def _plan(**changes):
    document = with_defaults({**PROTOCOL, **changes})
    assert protocol_errors(document) == []
    return Plan.from_protocol(document, threshold=0.5)


def test_failed_cases_are_excluded_and_counted():
    y, s, groups = _study()
    s = s.copy()
    s[[0, 1, 2]] = np.nan
    result = evaluate(y, s, groups, _plan())
    assert result["scoring"]["n_failed"] == 3
    assert result["scoring"]["n_scored"] == len(y) - 3
    assert result["primary"]["counts"]["n"] == len(y) - 3
    keep = ~np.isnan(s)
    assert result["primary"]["auc"]["estimate"] == pytest.approx(roc_auc_score(y[keep], s[keep]))


def test_score_as_error_counts_each_failure_as_a_wrong_decision_and_worst_rank():
    y, s, groups = _study()
    s = s.copy()
    failed = np.array([i for i in range(40) if i % 4 == 0])
    s[failed] = np.nan
    result = evaluate(y, s, groups, _plan(failure_policy="score-as-error"))
    ok = ~np.isnan(s)
    counts = result["primary"]["counts"]
    assert counts["n"] == len(y)
    tp = int(((s >= 0.5) & (y == 1) & ok).sum())
    fp_scored = int(((s >= 0.5) & (y == 0) & ok).sum())
    assert counts["tp"] == tp
    assert counts["fn"] == int((y == 1).sum()) - tp
    assert counts["fp"] == fp_scored + int((y[failed] == 0).sum())
    worst = np.where(ok, s, np.where(y == 1, -10.0, 10.0))
    assert result["primary"]["auc"]["estimate"] == pytest.approx(roc_auc_score(y, worst))
    # Calibration sees only the model's own probabilities.
    assert result["calibration"]["n"] == int(ok.sum())


def test_exploratory_disparity_p_values_are_adjusted_as_one_family():
    y, s, groups = _study()
    result = evaluate(y, s, groups, _plan(multiplicity="holm"))
    rows = {row["attribute"]: row for row in result["fairness"]}
    assert "tpr_p_adjusted" not in rows["sex"]
    assert rows["sex"]["multiplicity"] == "none (pre-specified)"
    family = [rows[a][k] for a in ("site", "scanner") for k in ("tpr_p_value", "fpr_p_value")]
    expected = multipletests(family, method="holm")[1]
    adjusted = [
        rows[a][k] for a in ("site", "scanner") for k in ("tpr_p_adjusted", "fpr_p_adjusted")
    ]
    assert adjusted == pytest.approx(expected, abs=1e-12)
    # The harder site shows a real TPR gap.
    assert rows["site"]["tpr_min_group"] == "C"
    assert rows["site"]["tpr_p_value"] < 0.01


def test_fairness_criteria_pass_or_fail_on_the_numbers_they_name():
    y, s, groups = _study()
    criteria = [
        {
            "attribute": "site",
            "metric": "tpr_difference",
            "bound": "upper",
            "comparator": "<=",
            "value": 0.05,
        },
        {
            "attribute": "sex",
            "metric": "equalized_odds_difference",
            "bound": "estimate",
            "comparator": "<=",
            "value": 0.9,
        },
        {
            "attribute": "sex",
            "metric": "demographic_parity_difference",
            "bound": "upper",
            "comparator": "<=",
            "value": 0.9,
        },
    ]
    result = evaluate(y, s, groups, _plan(fairness_criteria=criteria))
    rows = {row["attribute"]: row for row in result["fairness"]}
    judged = result["acceptance"]["criteria"][2:]
    assert judged[0]["observed"] == rows["site"]["tpr_difference"]["upper"]
    assert judged[0]["passed"] is False  # site C's gap is far above 5 points
    assert judged[0]["name"].startswith("Site: upper 95% bound of tpr difference")
    assert judged[1]["observed"] == rows["sex"]["equalized_odds_difference"]
    assert judged[1]["passed"] is True
    # fairlearn's worst-case differences get bootstrap percentile intervals.
    dpd = rows["sex"]["demographic_parity_difference_interval"]
    assert judged[2]["observed"] == dpd["upper"] and judged[2]["passed"] is True
    assert dpd["method"].startswith("Stratified bootstrap, percentile (B=300, seed=7")
    assert dpd["estimate"] == pytest.approx(rows["sex"]["demographic_parity_difference"])
    assert result["acceptance"]["verdict"] == "fail"


def test_without_a_bootstrap_worst_case_disparities_have_no_bounds():
    y, s, groups = _study()
    criteria = [
        {
            "attribute": "sex",
            "metric": "demographic_parity_difference",
            "bound": "upper",
            "comparator": "<=",
            "value": 0.9,
        },
    ]
    plan = _plan(fairness_criteria=criteria, bootstrap={"replicates": 0, "seed": 1})
    judged = evaluate(y, s, groups, plan)["acceptance"]["criteria"][-1]
    assert judged["passed"] is None and judged["judgeable"] is False
    assert "gives no upper" in judged["note"] and judged["reason"] == judged["note"]


def test_bootstrap_is_seeded_and_marks_small_cells():
    y, s, groups = _study()
    first = evaluate(y, s, groups, _plan())["bootstrap"]
    second = evaluate(y, s, groups, _plan())["bootstrap"]
    assert first == second
    assert first["replicates"] == 300 and first["method"] == "bca"
    rare = [r for r in first["subgroups"] if r["group"] == "rare"]
    assert rare and rare[0]["suppressed"] is True and rare[0]["n"] == 8
    overall = first["overall"]["sensitivity"]
    assert overall["lower"] < overall["estimate"] < overall["upper"]
    other = evaluate(y, s, groups, _plan(bootstrap={"replicates": 300, "seed": 8}))["bootstrap"]
    assert other["overall"]["auc"] != first["overall"]["auc"]


def test_no_bootstrap_when_the_protocol_plans_none():
    y, s, groups = _study()
    result = evaluate(y, s, groups, _plan(bootstrap={"replicates": 0, "seed": 1}))
    assert result["bootstrap"]["overall"] is None and result["bootstrap"]["note"] == "not planned"


def test_calibration_only_for_probabilities():
    y, s, groups = _study()
    result = evaluate(y, s, groups, _plan())
    expected = calibration_summary(y, s, n_bins=10)
    assert result["calibration"]["brier"] == pytest.approx(expected["brier"])
    assert result["calibration"]["slope"]["estimate"] == pytest.approx(expected["slope"].estimate)
    logits = np.log(s / (1 - s))
    plan = Plan.from_protocol(with_defaults(PROTOCOL), threshold=0.0)
    assert "not probabilities" in evaluate(y, logits, groups, plan)["calibration"]["note"]


def test_acceptance_names_the_protocols_confidence_level():
    y, s, groups = _study()
    result = evaluate(y, s, groups, _plan(confidence_level=0.9))
    first = result["acceptance"]["criteria"][0]
    assert first["name"] == "Lower 90% bound of AUC >= 0.6"
    assert first["observed"] == result["primary"]["auc"]["lower"]
    assert first["method"].startswith("DeLong")


def test_clopper_pearson_on_request():
    y, s, groups = _study()
    result = evaluate(y, s, groups, _plan(interval_method="clopper-pearson"))
    assert "Clopper" in result["primary"]["sensitivity"]["method"]


@pytest.mark.parametrize(
    ("interval_method", "name"),
    [
        ("wilson", "Wilson score"),
        ("wilson-cc", "Wilson score with continuity correction (Newcombe 1998)"),
        ("clopper-pearson", "Clopper-Pearson"),
    ],
)
def test_the_proportion_method_reaches_the_primary_metrics_and_the_subgroup_table(
    interval_method, name
):
    y, s, groups = _study()
    result = evaluate(y, s, groups, _plan(interval_method=interval_method))
    assert result["primary"]["sensitivity"]["method"] == name
    assert result["primary"]["ppv"]["method"] == name
    assert {row["sensitivity"]["method"] for row in result["subgroups"]} == {name}


def test_new_protocols_default_to_the_logit_delong_interval_and_may_name_plain_delong():
    y, s, groups = _study()
    assert with_defaults(PROTOCOL)["auc_interval_method"] == "delong-logit"
    default = evaluate(y, s, groups, _plan())
    plain = evaluate(y, s, groups, _plan(auc_interval_method="delong"))
    assert default["primary"]["auc"]["method"] == "DeLong, logit scale (Sun & Xu 2014 variance)"
    assert plain["primary"]["auc"]["method"] == "DeLong (Sun & Xu 2014)"
    assert {row["auc"]["method"] for row in plain["subgroups"]} == {"DeLong (Sun & Xu 2014)"}
    assert default["primary"]["auc"]["estimate"] == plain["primary"]["auc"]["estimate"]
    assert default["primary"]["auc"]["lower"] != plain["primary"]["auc"]["lower"]
    assert protocol_errors(with_defaults({**PROTOCOL, "auc_interval_method": "wald"}))


def test_a_document_locked_before_the_option_keeps_plain_delong():
    # Stored documents are complete (defaults written in at creation), so one without the key
    # was registered when plain DeLong was the method: its analysis does not change.
    legacy = {k: v for k, v in with_defaults(PROTOCOL).items() if k != "auc_interval_method"}
    assert protocol_errors(legacy) == []
    assert Plan.from_protocol(legacy, threshold=0.5).auc_interval_method == "delong"
    y, s, groups = _study()
    result = evaluate(y, s, groups, Plan.from_protocol(legacy, threshold=0.5))
    assert result["primary"]["auc"]["method"] == "DeLong (Sun & Xu 2014)"


def test_a_perfect_auc_on_ten_cases_fails_a_lower_bound_criterion():
    y = np.r_[np.zeros(5, dtype=int), np.ones(5, dtype=int)]
    s = np.linspace(0.05, 0.95, 10)
    plan = _plan(
        acceptance_criteria=[{"metric": "auc", "bound": "lower", "comparator": ">=", "value": 0.8}],
        subgroups=[],
        min_cell_size=1,
        bootstrap={"replicates": 0, "seed": 1},
    )
    result = evaluate(y, s, {}, plan)
    criterion = result["acceptance"]["criteria"][0]
    assert result["primary"]["auc"]["estimate"] == 1.0
    assert criterion["observed"] < 0.7 and not criterion["passed"]
    assert criterion["method"].startswith("Hanley-McNeil score interval")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"subgroups": [{"attribute": "age", "bins": [0, 40, 40]}]}, "strictly increasing"),
        ({"subgroups": [{"attribute": "sex"}, {"attribute": "sex"}]}, "declared twice"),
        (
            {
                "fairness_criteria": [
                    {
                        "attribute": "race",
                        "metric": "tpr_difference",
                        "bound": "upper",
                        "comparator": "<=",
                        "value": 0.1,
                    }
                ]
            },
            "not one of the protocol's subgroup attributes",
        ),
        ({"bootstrap": {"replicates": 100}}, "'seed' is a required property"),
        ({"multiplicity": "bonferroni"}, "multiplicity"),
    ],
)
def test_protocol_errors_say_what_is_wrong(change, message):
    errors = protocol_errors({**PROTOCOL, **change})
    assert any(message in e for e in errors), errors


def test_undefined_metrics_cannot_be_judged_and_say_why():
    y = np.array([1, 1, 1, 1])
    s = np.array([0.9, 0.8, 0.7, 0.6])
    result = evaluate(
        y, s, {"sex": ["F", "M", "F", "M"], "site": ["A"] * 4, "scanner": ["X"] * 4}, _plan()
    )
    auc = result["acceptance"]["criteria"][0]
    assert auc["passed"] is None and auc["observed"] is None and "could not" in auc["note"]
    assert auc["judgeable"] is False and auc["reason"] == auc["note"]
    # Degenerate (no negative case): a fail, whatever else could not be judged.
    assert result["acceptance"]["verdict"] == "fail"
    assert result["bootstrap"]["overall"] is None and result["bootstrap"]["note"]
    assert result["calibration"]["slope"]["estimate"] is None  # undefined: one class only


def _tpr_criterion(attribute="sex", value=0.15):
    return {
        "attribute": attribute,
        "metric": "tpr_difference",
        "bound": "estimate",
        "comparator": "<=",
        "value": value,
    }


def test_a_tpr_difference_where_no_group_has_a_true_positive_is_not_judgeable():
    """Issue 18: "PASS, 0.000" because sensitivity was 0 in every group. The model below
    never calls a case positive, so every group's sensitivity is 0 and their difference 0."""
    y, s, groups = _study()
    s = s * 0.4  # every score below the threshold 0.5
    plan = _plan(
        acceptance_criteria=[  # AUC: ranks are unchanged by the scaling, so it passes
            {"metric": "auc", "bound": "lower", "comparator": ">=", "value": 0.6}
        ],
        fairness_criteria=[_tpr_criterion()],
    )
    result = evaluate(y, s, groups, plan)
    auc, criterion = result["acceptance"]["criteria"]
    assert auc["passed"] is True
    assert criterion["observed"] == 0.0  # what used to read "PASS, 0.000"
    assert criterion["passed"] is None and criterion["judgeable"] is False
    assert (
        "sensitivity is 0 or undefined in every compared sex group (F, M)" in (criterion["reason"])
    )
    assert result["acceptance"]["verdict"] == "not judgeable"


def test_a_fairness_criterion_with_one_comparable_group_is_not_judgeable():
    y, s, groups = _study()
    groups = {**groups, "sex": np.where(np.arange(len(y)) < 5, "F", "M")}  # F: 5 < min cell
    criterion = evaluate(y, s, groups, _plan(fairness_criteria=[_tpr_criterion()]))["acceptance"][
        "criteria"
    ][-1]
    assert criterion["judgeable"] is False and criterion["passed"] is None
    assert criterion["reason"].startswith("sex: disparities undefined: 1 group(s)")


def test_a_real_disparity_is_judged_and_a_failed_criterion_outranks_an_undecided_one():
    y, s, groups = _study()
    fair = [_tpr_criterion("site", 0.05), _tpr_criterion("sex", 0.9)]
    result = evaluate(y, s, groups, _plan(fairness_criteria=fair))
    site, sex = result["acceptance"]["criteria"][2:]
    assert site["judgeable"] is True and site["passed"] is False and site["reason"] == ""
    assert sex["judgeable"] is True and sex["passed"] is True
    assert result["acceptance"]["verdict"] == "fail"
    passing = evaluate(y, s, groups, _plan(fairness_criteria=[_tpr_criterion("sex", 0.9)]))
    assert passing["acceptance"]["verdict"] == "pass"
