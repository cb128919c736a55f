"""evaluate_comparison: two model versions on the same cases, against pROC's paired test and
R's McNemar test, with the decisions at the margin edges, exclusions and suppression.

Plain pytest: no Django needed.
"""

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from validation.stats.comparison import EXCLUSION_NOTE, evaluate_comparison
from validation.stats.metrics import MetricInputError
from validation.stats.metrics.paired import MCNEMAR_CC, MCNEMAR_EXACT, NEWCOMBE_PAIRED
from validation.stats.metrics.roc import DELONG, DELONG_LOGIT, DELONG_PAIRED, delong_paired

HERE = Path(__file__).resolve().parent
ASAH = HERE.parents[1] / "data" / "aSAH.csv"
REFERENCE = HERE / "reference" / "comparison_cases.csv"
TOL = 1e-8


def plan(**overrides):
    """A locked protocol document as comparison runs read it (no auc_interval_method: plain
    DeLong, pROC's interval, as for a document stored before that option existed)."""
    return {
        "min_cell_size": 10,
        "subgroups": [],
        "comparison": {
            "endpoints": [
                {"metric": "auc", "hypothesis": "non-inferiority", "margin": 0.05},
                {"metric": "sensitivity", "hypothesis": "non-inferiority", "margin": 0.1},
                {"metric": "specificity", "hypothesis": "superiority", "margin": 0},
            ]
        },
        **overrides,
    }


def compare(y, baseline, candidate, *, groups=None, t_baseline=0.5, t_candidate=0.5, **kw):
    return evaluate_comparison(
        y,
        baseline,
        candidate,
        threshold_baseline=t_baseline,
        threshold_candidate=t_candidate,
        groups=groups or {},
        plan=plan(**kw),
    )


def endpoint(result, metric):
    return next(e for e in result["endpoints"] if e["metric"] == metric)


@pytest.fixture(scope="module")
def asah():
    with ASAH.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {
        "y": np.array([1 if row["outcome"] == "Poor" else 0 for row in rows]),
        "s100b": np.array([float(row["s100b"]) for row in rows]),
        "wfns": np.array([float(row["wfns"]) for row in rows]),
        "gender": [row["gender"] for row in rows],
        "age": [float(row["age"]) for row in rows],
    }


@pytest.fixture(scope="module")
def reference():
    with REFERENCE.open(newline="") as handle:
        rows = list(csv.DictReader(handle))

    def scores(key):
        return np.array([float(row[key]) if row[key] else math.nan for row in rows])

    return {
        "y": np.array([int(row["label"]) for row in rows]),
        "baseline": scores("baseline"),
        "candidate": scores("candidate"),
        "site": [row["site"] for row in rows],
    }


# --- against pROC and R -------------------------------------------------------------------------


def test_auc_difference_on_asah_matches_proc_roc_test(asah):
    # pROC 1.18: roc.test(roc(outcome, wfns), roc(outcome, s100b), paired = TRUE,
    # method = "delong") on aSAH (the values test_metrics.py holds delong_paired to).
    result = compare(asah["y"], asah["s100b"], asah["wfns"], t_baseline=0.205, t_candidate=2.5)
    auc = endpoint(result, "auc")
    assert auc["test"]["name"] == DELONG_PAIRED
    assert auc["test"]["statistic"] == pytest.approx(2.20898359144091, abs=TOL)
    assert auc["test"]["p_value"] == pytest.approx(0.0271757822291882, abs=TOL)
    difference = auc["difference"]
    assert (difference["lower"], difference["upper"]) == pytest.approx(
        (0.0104061769564846, 0.174214419249478), abs=TOL
    )
    assert difference["estimate"] == pytest.approx(0.8236788618 - 0.7313685637, abs=TOL)
    # Each model's own interval: pROC's ci.auc (plain DeLong, what this plan names).
    assert auc["baseline"]["method"] == DELONG
    assert (auc["baseline"]["lower"], auc["baseline"]["upper"]) == pytest.approx(
        (0.6301182118, 0.8326189156), abs=TOL
    )
    assert auc["candidate"]["estimate"] == pytest.approx(0.8236788618, abs=TOL)
    assert (result["n_cases"], result["n_pos"], result["n_neg"]) == (113, 41, 72)
    assert auc["passed"] is True and auc["threshold"] == -0.05
    assert auc["name"] == (
        "Candidate AUC non-inferior to the baseline (margin 0.05): "
        "lower 95% bound of candidate minus baseline > -0.05"
    )
    superiority = endpoint(result, "specificity")["name"]
    assert superiority.startswith("Candidate specificity superior to the baseline (margin 0)")
    assert superiority.endswith("> 0")


def test_the_plan_names_the_auc_interval_and_the_level(asah):
    logit = compare(asah["y"], asah["s100b"], asah["wfns"], auc_interval_method="delong-logit")
    assert endpoint(logit, "auc")["baseline"]["method"] == DELONG_LOGIT
    narrow = compare(asah["y"], asah["s100b"], asah["wfns"], confidence_level=0.90)
    wide = compare(asah["y"], asah["s100b"], asah["wfns"])
    for metric in ("auc", "sensitivity", "specificity"):
        a, b = endpoint(narrow, metric)["difference"], endpoint(wide, metric)["difference"]
        assert a["level"] == 0.90 and b["level"] == 0.95
        assert b["lower"] < a["lower"] <= a["upper"] < b["upper"]


def test_seeded_synthetic_set_matches_proc_and_mcnemar_in_r(reference):
    # Values printed by reference/comparison_proc.R (R 4.2.2, pROC 1.18.0) on
    # reference/comparison_cases.csv: the complete cases, candidate vs baseline.
    result = evaluate_comparison(
        reference["y"],
        reference["baseline"],
        reference["candidate"],
        threshold_baseline=0.5,
        threshold_candidate=0.6,
        groups={"site": reference["site"]},
        plan=plan(subgroups=[{"attribute": "site"}]),
    )
    assert (result["n_cases"], result["n_excluded"], result["n_paired"]) == (160, 9, 151)
    assert (result["n_failed_baseline"], result["n_failed_candidate"]) == (5, 6)
    assert result["n_pos"] == 62

    auc = result["overall"]["auc"]
    assert auc["candidate"]["estimate"] == pytest.approx(0.784976440739398, abs=TOL)
    assert auc["baseline"]["estimate"] == pytest.approx(0.725262776368249, abs=TOL)
    assert (auc["baseline"]["lower"], auc["baseline"]["upper"]) == pytest.approx(
        (0.644966519041341, 0.805559033695158), abs=TOL
    )
    assert auc["test"]["statistic"] == pytest.approx(1.49959124232816, abs=TOL)
    assert auc["test"]["p_value"] == pytest.approx(0.133720317623385, abs=TOL)
    assert (auc["difference"]["lower"], auc["difference"]["upper"]) == pytest.approx(
        (-0.0183320245131509, 0.137759353255449), abs=TOL
    )

    assert result["agreement"] == {
        "positives": {"both": 29, "baseline_only": 5, "candidate_only": 18, "neither": 10},
        "negatives": {"both": 50, "baseline_only": 11, "candidate_only": 14, "neither": 14},
    }
    sensitivity = result["overall"]["sensitivity"]["test"]  # 23 discordant pairs: exact
    assert sensitivity["name"] == MCNEMAR_EXACT
    assert sensitivity["p_value"] == pytest.approx(0.0106220245361328, abs=1e-12)
    assert sensitivity["statistic"] == pytest.approx(6.26086956521739, abs=1e-12)
    assert sensitivity["chi_square_p_value"] == pytest.approx(0.012343360353455, abs=1e-12)
    specificity = result["overall"]["specificity"]["test"]  # 25 discordant pairs: chi-square
    assert specificity["name"] == MCNEMAR_CC
    assert specificity["p_value"] == pytest.approx(0.689156516779352, abs=1e-12)
    assert specificity["exact_p_value"] == pytest.approx(0.690037965774536, abs=1e-12)
    assert result["overall"]["sensitivity"]["difference"]["estimate"] == pytest.approx(13 / 62)
    assert result["overall"]["sensitivity"]["difference"]["method"] == NEWCOMBE_PAIRED

    north = next(row for row in result["subgroups"] if row["group"] == "north")
    assert north["auc"]["estimate"] == pytest.approx(0.75891861761427 - 0.698717948717949, abs=TOL)
    assert (north["auc"]["lower"], north["auc"]["upper"]) == pytest.approx(
        (-0.054152657234139, 0.174553995026781), abs=TOL
    )
    assert north["auc"]["p_value"] == pytest.approx(0.302160160818864, abs=TOL)


# --- decisions ----------------------------------------------------------------------------------


def test_decisions_at_the_margin_edges(asah):
    """The rule is strict: a lower bound exactly at -margin (or at margin) does not pass."""
    first = compare(asah["y"], asah["s100b"], asah["wfns"], t_baseline=0.205, t_candidate=2.5)
    auc_lower = endpoint(first, "auc")["difference"]["lower"]  # 0.0104
    sensitivity_lower = endpoint(first, "sensitivity")["difference"]["lower"]  # -0.123
    assert auc_lower > 0 > sensitivity_lower

    def decide(metric, hypothesis, margin):
        endpoints = {"endpoints": [{"metric": metric, "hypothesis": hypothesis, "margin": margin}]}
        result = evaluate_comparison(
            asah["y"],
            asah["s100b"],
            asah["wfns"],
            threshold_baseline=0.205,
            threshold_candidate=2.5,
            groups={},
            plan=plan(comparison=endpoints),
        )
        [decision] = result["endpoints"]
        return decision["passed"], result["verdict"]

    assert decide("auc", "superiority", auc_lower) == (False, "fail")
    assert decide("auc", "superiority", auc_lower - 1e-9) == (True, "pass")
    assert decide("auc", "superiority", 0) == (True, "pass")  # lower bound above 0
    assert decide("sensitivity", "non-inferiority", -sensitivity_lower) == (False, "fail")
    assert decide("sensitivity", "non-inferiority", -sensitivity_lower + 1e-9) == (True, "pass")
    assert decide("sensitivity", "superiority", 0) == (False, "fail")
    assert endpoint(first, "sensitivity")["rule"] == "lower bound of the difference > -margin"
    assert endpoint(first, "specificity")["rule"] == "lower bound of the difference > margin"


def test_an_identical_candidate_is_non_inferior_but_not_superior(asah):
    result = compare(asah["y"], asah["s100b"], asah["s100b"], t_baseline=0.205, t_candidate=0.205)
    auc = endpoint(result, "auc")
    assert (auc["difference"]["estimate"], auc["difference"]["lower"]) == (0.0, 0.0)
    assert auc["passed"] is True and auc["test"]["p_value"] == 1.0
    assert endpoint(result, "sensitivity")["passed"] is True  # 0 > -0.1
    assert endpoint(result, "specificity")["passed"] is False  # 0 > 0 fails
    assert result["agreement"]["positives"]["baseline_only"] == 0
    assert result["verdict"] == "fail"


def test_an_endpoint_that_cannot_be_computed_is_undecided_with_its_reason():
    y = np.zeros(30, dtype=int)  # no positive case
    scores = np.linspace(0, 1, 30)
    result = compare(y, scores, scores[::-1])
    assert endpoint(result, "auc")["passed"] is None
    assert "one class" in endpoint(result, "auc")["reason"]
    assert endpoint(result, "sensitivity")["passed"] is None
    assert "no positive case" in endpoint(result, "sensitivity")["reason"]
    assert endpoint(result, "specificity")["passed"] is not None
    assert endpoint(result, "specificity")["difference"]["estimate"] == 0.0  # 15 vs 15 right
    assert result["verdict"] == "fail"  # specificity superiority at 0 fails: 0 > 0 is false
    one_endpoint = plan(
        comparison={"endpoints": [{"metric": "auc", "hypothesis": "superiority", "margin": 0}]}
    )
    undecided = evaluate_comparison(
        y,
        scores,
        scores,
        threshold_baseline=0.5,
        threshold_candidate=0.5,
        groups={},
        plan=one_endpoint,
    )
    assert undecided["verdict"] == "undecided"


def test_two_perfect_models_on_different_scores_get_no_zero_width_auc_decision():
    """Both AUCs 1 on 5 + 5 cases: the paired DeLong variance is 0, and a zero-width interval
    at 0 would pass non-inferiority on almost no evidence (issue 18, item 11)."""
    y = np.array([0] * 5 + [1] * 5)
    baseline = np.arange(10) / 10
    candidate = np.r_[np.arange(5) / 20, 0.6 + np.arange(5) / 20]
    result = compare(y, baseline, candidate)
    auc = endpoint(result, "auc")
    assert auc["difference"]["estimate"] == 0.0
    assert auc["difference"]["lower"] is None and auc["passed"] is None
    assert "variance is 0" in auc["reason"]
    assert auc["baseline"]["lower"] < 1.0  # each AUC keeps its score-interval fallback


def test_without_a_comparison_block_the_differences_are_given_without_decisions(asah):
    result = compare(asah["y"], asah["s100b"], asah["wfns"], comparison=None)
    assert result["endpoints"] == [] and result["verdict"] is None
    assert set(result["overall"]) == {"auc", "sensitivity", "specificity"}


# --- exclusions ---------------------------------------------------------------------------------


def test_a_case_failed_by_either_model_is_excluded_from_both_and_counted(asah):
    y, baseline, candidate = asah["y"], asah["s100b"].copy(), asah["wfns"].copy()
    baseline[[0, 1, 2]] = math.nan
    candidate[[2, 3]] = math.nan
    result = compare(y, baseline, candidate, t_baseline=0.205, t_candidate=2.5)
    assert (result["n_cases"], result["n_excluded"], result["n_paired"]) == (113, 4, 109)
    assert (result["n_failed_baseline"], result["n_failed_candidate"]) == (3, 2)
    assert result["exclusion"] == EXCLUSION_NOTE
    keep = np.ones(113, dtype=bool)
    keep[[0, 1, 2, 3]] = False
    assert (result["n_pos"], result["n_neg"]) == (int(y[keep].sum()), int((1 - y[keep]).sum()))
    filtered = compare(
        y[keep], asah["s100b"][keep], asah["wfns"][keep], t_baseline=0.205, t_candidate=2.5
    )
    for key in ("overall", "endpoints", "agreement", "verdict"):
        assert result[key] == filtered[key]
    # The baseline's AUC is on the paired cases only: case 3, which it scored, is left out.
    assert (
        result["overall"]["auc"]["baseline"]
        != compare(y, baseline, asah["wfns"], t_baseline=0.205, t_candidate=2.5)["overall"]["auc"][
            "baseline"
        ]
    )


def test_inputs_are_checked():
    with pytest.raises(MetricInputError, match="differ in length"):
        compare([0, 1, 0], [0.1, 0.2, 0.3], [0.1, 0.2])
    with pytest.raises(MetricInputError, match="finite or NaN"):
        compare([0, 1], [0.1, math.inf], [0.1, 0.2])
    with pytest.raises(MetricInputError, match="labels"):
        compare([0, 2], [0.1, 0.2], [0.1, 0.2])
    with pytest.raises(MetricInputError, match="group attribute 'site'"):
        evaluate_comparison(
            [0, 1],
            [0.1, 0.2],
            [0.1, 0.2],
            threshold_baseline=0.5,
            threshold_candidate=0.5,
            groups={"site": ["a"]},
            plan=plan(subgroups=[{"attribute": "site"}]),
        )


# --- subgroups ----------------------------------------------------------------------------------


def test_subgroups_are_binned_suppressed_and_ordered_like_the_single_model_analysis(asah):
    ages = list(asah["age"])
    ages[0] = None  # missing: pooled as unknown, listed last
    result = compare(
        asah["y"],
        asah["s100b"],
        asah["wfns"],
        groups={"gender": asah["gender"], "age": ages},
        subgroups=[{"attribute": "gender"}, {"attribute": "age", "bins": [18, 40, 65, 120]}],
        min_cell_size=15,
        t_baseline=0.205,
        t_candidate=2.5,
    )
    rows = {(row["attribute"], row["group"]): row for row in result["subgroups"]}
    assert [key for key in rows if key[0] == "age"] == [
        ("age", "18-39"),
        ("age", "40-64"),
        ("age", "65-119"),
        ("age", "unknown"),
    ]
    assert sum(row["n"] for key, row in rows.items() if key[0] == "age") == 113
    unknown = rows[("age", "unknown")]
    assert unknown["n"] == 1 and unknown["suppressed"] is True
    assert unknown["auc"] is unknown["sensitivity"] is unknown["specificity"] is None
    female = rows[("gender", "Female")]
    assert female["suppressed"] is False and female["n"] == 71
    assert female["auc"]["method"] == DELONG_PAIRED
    assert female["auc"]["baseline"] < female["auc"]["candidate"]
    assert female["sensitivity"]["method"] == NEWCOMBE_PAIRED
    assert "passed" not in female["auc"]  # subgroups are described, not decided
    for row in result["subgroups"]:
        assert row["suppressed"] == (row["n"] < 15)


def test_a_subgroup_with_one_class_gets_only_the_differences_it_can_have():
    y = np.array([0] * 12 + [1] * 8 + [0] * 8)
    site = ["a"] * 20 + ["b"] * 8  # b: negatives only
    rng = np.random.default_rng(3)
    baseline = rng.random(28) + 0.3 * y
    candidate = baseline + rng.normal(0, 0.1, 28)
    result = compare(
        y, baseline, candidate, groups={"site": site}, subgroups=[{"attribute": "site"}],
        min_cell_size=5,
    )  # fmt: skip
    b = next(row for row in result["subgroups"] if row["group"] == "b")
    assert (b["n"], b["n_pos"], b["suppressed"]) == (8, 0, False)
    assert b["auc"] is None and b["sensitivity"] is None
    assert b["specificity"]["method"] == NEWCOMBE_PAIRED
    a = next(row for row in result["subgroups"] if row["group"] == "a")
    assert all(a[metric] is not None for metric in ("auc", "sensitivity", "specificity"))


def test_the_paired_auc_difference_covers_in_a_seeded_simulation():
    """Paired DeLong's Wald interval of the difference, where the single AUC's plain DeLong
    interval undercovers (20 / 80 cases, AUC near 0.9): correlated binormal scores, 0.90 vs
    0.92, 1,000 seeded studies (measured 0.967 here; 0.952-0.955 in another seeded grid over
    20/80 and 50/50 at 0.75 vs 0.80 and 0.90 vs 0.92), held to the 93-97% of issue 18."""
    rng = np.random.default_rng(20261208)
    y = np.r_[np.zeros(80), np.ones(20)].astype(int)
    shifts = np.sqrt(2) * stats.norm.ppf([0.90, 0.92])  # binormal, unit variances
    rho = 0.6
    covered = 0
    for _ in range(1000):
        shared = np.sqrt(rho) * rng.normal(size=100)
        baseline = shared + np.sqrt(1 - rho) * rng.normal(size=100) + shifts[0] * y
        candidate = shared + np.sqrt(1 - rho) * rng.normal(size=100) + shifts[1] * y
        ci = delong_paired(y, candidate, baseline).ci
        covered += ci.lower <= 0.02 <= ci.upper
    assert 0.93 <= covered / 1000 <= 0.97
