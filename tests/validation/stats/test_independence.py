"""Independence from the declared training data (issue 18, item 5): the matching rule for
sites and scanners, the overlap summary, and the primary metrics split by it under the
disclosure rule."""

import numpy as np
import pytest

from validation.stats.disclosure import subgroups_disclosed
from validation.stats.evaluation import Plan, evaluate
from validation.stats.independence import (
    FROM_TRAINING,
    INDEPENDENT,
    independence_split,
    normalised,
    scanner_declared,
    site_declared,
    training_overlap,
)
from validation.stats.metrics import binary_metrics

ACME = {"manufacturer": "Acme Medical", "model": "Acme DR-500", "institution": "Northfield"}
GE = {"manufacturer": "GE Healthcare", "model": "Definium 656", "site": "Lakeside"}
COBALT = {"manufacturer": "Cobalt Systems", "model": "Cobalt XR-9", "institution": "Harbor"}


def test_names_are_compared_without_case_or_repeated_spaces():
    assert normalised("  GE   Healthcare\tDefinium 656 ") == "ge healthcare definium 656"
    assert normalised(None) == ""


@pytest.mark.parametrize(
    ("declared", "case", "matches"),
    [
        ("GE Healthcare Definium 656", GE, True),  # manufacturer and model
        ("ge healthcare  DEFINIUM 656", GE, True),  # case and spaces do not matter
        ("Definium 656", GE, True),  # the model alone
        ("GE Healthcare", GE, True),  # a manufacturer alone covers its models
        ("Acme DR-500", ACME, True),  # the demo's declaration: the model names the brand
        ("GE Healthcare Definium 6", GE, False),  # no prefix matching
        ("Healthcare", GE, False),
        ("Acme", ACME, False),
        ("Acme DR-500", COBALT, False),
        ("", GE, False),
    ],
)
def test_scanner_rule(declared, case, matches):
    assert scanner_declared(case, [declared]) is matches


def test_site_rule_reads_institution_or_site():
    assert site_declared(ACME, ["northfield"])
    assert site_declared(GE, ["Lakeside "])
    assert not site_declared(COBALT, ["Harbour"])
    assert not site_declared({"manufacturer": "X"}, ["Harbor"])


def test_overlap_counts_cases_from_a_declared_site_or_scanner_once():
    cases = [ACME] * 5 + [GE] * 3 + [COBALT] * 4
    mask, summary = training_overlap(
        cases, {"sites": ["Harbor", "Elsewhere"], "scanners": ["Acme DR-500", "GE Healthcare"]}
    )
    assert mask.tolist() == [True] * 12  # every case through a site or a scanner
    assert summary["n_overlap"] == 12 and summary["share"] == 1.0
    assert summary["n_overlap_site"] == 4 and summary["n_overlap_scanner"] == 8
    assert summary["overlapping_sites"] == ["Harbor"]
    assert summary["overlapping_scanners"] == [
        "Acme Medical Acme DR-500",
        "GE Healthcare Definium 656",
    ]
    assert summary["independent"] is False
    assert "manufacturer alone" in summary["rule"]


def test_independence_is_unknown_when_nothing_was_declared_and_true_without_overlap():
    _, undeclared = training_overlap([ACME, GE], None)
    assert undeclared["independent"] is None and undeclared["n_overlap"] == 0
    mask, clean = training_overlap([ACME, GE], {"scanners": ["Philips DigitalDiagnost C90"]})
    assert clean["independent"] is True and not mask.any()
    assert clean["share"] == 0.0
    _, empty = training_overlap([], {"sites": ["A"]})
    assert empty["share"] is None


def _study(seed=1, n=120):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, n), 0, 1)
    return y, s


def test_split_rows_are_the_primary_metrics_of_each_group():
    y, s = _study()
    source = np.arange(len(y)) % 3 == 0
    rows = independence_split(y, s, source, 0.5, min_cell=10, interval="wilson-cc")
    assert [r["group"] for r in rows] == [FROM_TRAINING, INDEPENDENT]
    for row, mask in zip(rows, (source, ~source), strict=True):
        expected = binary_metrics(y[mask], s[mask], 0.5, interval="wilson-cc")
        assert (row["n"], row["n_pos"]) == (int(mask.sum()), int(y[mask].sum()))
        assert row["sensitivity"] == expected["sensitivity"].as_dict()
        assert row["specificity"] == expected["specificity"].as_dict()
        assert row["auc"] == expected["auc"].as_dict()
        assert row["suppressed"] is False


def test_a_small_group_is_suppressed_and_the_disclosure_rule_hides_its_complement():
    y, s = _study()
    source = np.zeros(len(y), dtype=bool)
    source[:4] = True
    rows = independence_split(y, s, source, 0.5, min_cell=10)
    assert [r["suppressed"] for r in rows] == [True, False]
    shown = subgroups_disclosed(rows, audience="vendor")
    assert all(
        r == {"attribute": r["attribute"], "group": r["group"], "suppressed": True} for r in shown
    )
    assert subgroups_disclosed(rows, audience="team") == rows  # the team sees everything


def test_an_empty_group_is_not_a_small_cell():
    y, s = _study()
    rows = independence_split(y, s, np.zeros(len(y), dtype=bool), 0.5, min_cell=10)
    assert rows[0]["n"] == 0 and rows[0]["auc"] is None and not rows[0]["suppressed"]
    assert rows[1]["n"] == len(y)


@pytest.mark.parametrize("policy", ["exclude-and-report", "score-as-error"])
def test_evaluate_splits_the_cases_its_failure_policy_scores(policy):
    y, s = _study()
    s[[0, 3, 7]] = np.nan  # failed cases, two of them from a declared source
    source = np.zeros(len(y), dtype=bool)
    source[[0, 3, 5, 9, 12, 15, 18, 21, 24, 27, 30, 33]] = True
    plan = Plan(threshold=0.5, min_cell=5, bootstrap_replicates=0, failure_policy=policy)
    sections = evaluate(y, s, {}, plan, training_source=source)
    split = {row["group"]: row for row in sections["independence_split"]}
    scored = 12 - 2 if policy == "exclude-and-report" else 12
    assert split[FROM_TRAINING]["n"] == scored
    assert split[FROM_TRAINING]["n"] + split[INDEPENDENT]["n"] == sections["primary"]["counts"]["n"]
    assert "independence_split" not in evaluate(y, s, {}, plan)  # only when asked
