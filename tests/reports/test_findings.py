"""The report's findings, discussion and limitations (`reports.findings`): each rule on
hand-made documents, where it fires and where it does not. Pure: no Django, no database."""

from __future__ import annotations

import copy

import pytest

from reports.findings import report_discussion, report_findings, report_limitations

NDASH = "\N{EN DASH}"


def _interval(estimate, lower, upper):
    return {"estimate": estimate, "lower": lower, "upper": upper, "level": 0.95}


def _criterion(metric, value, *, bound="lower", comparator=">=", passed=True, **more):
    return {
        "metric": metric,
        "bound": bound,
        "comparator": comparator,
        "value": value,
        "observed": more.pop("observed", value + 0.05),
        "passed": passed,
        "judgeable": True,
        "reason": "",
        "interval": more.pop("interval", _interval(value + 0.1, value + 0.05, value + 0.15)),
        **more,
    }


def _row(attribute, group, *, n_pos, n_neg, sensitivity=None, specificity=None, auc=None):
    return {
        "attribute": attribute,
        "group": group,
        "n": n_pos + n_neg,
        "n_pos": n_pos,
        "n_neg": n_neg,
        "sensitivity": sensitivity,
        "specificity": specificity,
        "auc": auc,
        "suppressed": False,
    }


def _demo() -> dict:
    """The demo's shape: one manufacturer's sensitivity far below the overall, a fairness
    criterion failing on it, one suppressed cell."""
    return {
        "summary": {
            "verdict": "fail",
            "criteria": [
                _criterion("auc", 0.75, interval=_interval(0.86, 0.8, 0.91), observed=0.8),
                _criterion("sensitivity", 0.6, interval=_interval(0.8, 0.7, 0.87), observed=0.7),
                _criterion(
                    "tpr_difference",
                    0.15,
                    bound="estimate",
                    comparator="<=",
                    passed=False,
                    attribute="manufacturer",
                    observed=0.72,
                    interval=_interval(0.72, 0.43, 0.86),
                ),
            ],
        },
        "primary": {
            "confusion": {"tp": 80, "fn": 20, "tn": 120, "fp": 20},
            "auc": _interval(0.86, 0.8, 0.91),
            "metrics": {
                "sensitivity": _interval(0.8, 0.71, 0.87),
                "specificity": _interval(0.857, 0.79, 0.9),
            },
        },
        "subgroups": [
            _row(
                "manufacturer",
                "Acme Medical",
                n_pos=50,
                n_neg=60,
                sensitivity=_interval(0.874, 0.76, 0.94),
                specificity=_interval(0.85, 0.74, 0.92),
            ),
            _row(
                "manufacturer",
                "Cobalt Systems",
                n_pos=13,
                n_neg=20,
                sensitivity=_interval(0.154, 0.043, 0.422),
                specificity=_interval(0.9, 0.7, 0.97),
            ),
            {"attribute": "race", "group": "Other", "suppressed": True},
        ],
        "fairness": [
            {
                "attribute": "manufacturer",
                "groups_compared": ["Acme Medical", "Cobalt Systems"],
                "tpr_difference": _interval(0.72, 0.43, 0.86),
                "tpr_max_group": "Acme Medical",
                "tpr_min_group": "Cobalt Systems",
            }
        ],
        "protocol": {"min_cell_size": 10, "failure_policy": "exclude-and-report"},
        "test_data": {"n_cases": 240, "sites": [{"name": "A"}, {"name": "B"}]},
        "failures": [],
        "identity": {"sandbox": {"enabled": True}},
    }


def _sentences(doc, kind=None):
    return [f["sentence"] for f in report_findings(doc) if kind is None or f["kind"] == kind]


# --------------------------------------------------------------------------- subgroups


def test_a_subgroup_failing_the_requirement_and_wholly_below_the_overall_is_named():
    assert _sentences(_demo(), "subgroup") == [
        f"Sensitivity for manufacturer Cobalt Systems is 0.154 (95% CI 0.043{NDASH}0.422; 13 "
        "positive cases), below the overall 0.800 and below the required 0.600; its interval "
        "lies wholly below the overall estimate."
    ]


def test_a_subgroup_wholly_below_the_overall_but_meeting_the_requirement_is_moderate():
    doc = _demo()
    doc["subgroups"][1]["sensitivity"] = _interval(0.65, 0.55, 0.75)
    [finding] = [f for f in report_findings(doc) if f["kind"] == "subgroup"]
    assert finding["severity"] == "moderate"
    assert "below the overall 0.800; its interval lies wholly below" in finding["sentence"]
    assert "required" not in finding["sentence"]


def test_no_subgroup_finding_when_the_interval_reaches_the_overall_and_the_requirement_holds():
    doc = _demo()
    doc["subgroups"][1]["sensitivity"] = _interval(0.7, 0.5, 0.85)
    assert _sentences(doc, "subgroup") == []
    # Metrics without a criterion are held only against the overall estimate.
    doc["subgroups"][1]["specificity"] = _interval(0.6, 0.45, 0.74)
    assert _sentences(doc, "subgroup") == [
        f"Specificity for manufacturer Cobalt Systems is 0.600 (95% CI 0.450{NDASH}0.740; 20 "
        "negative cases), below the overall 0.857; its interval lies wholly below the overall "
        "estimate."
    ]


def test_a_tiny_subgroup_whose_interval_straddles_the_requirement_is_not_judged():
    doc = _demo()
    doc["subgroups"][1].update(n_pos=4, sensitivity=_interval(0.5, 0.15, 0.85))
    assert _sentences(doc, "subgroup") == []
    assert (
        f"Sensitivity for manufacturer Cobalt Systems is 0.500 (95% CI 0.150{NDASH}0.850; 4 "
        "positive cases): too few cases (fewer than 10) to decide against the required 0.600, "
        "which its interval includes." in _sentences(doc, "not_judgeable")
    )
    # The same interval on enough cases is judged (and fails the requirement).
    doc["subgroups"][1].update(n_pos=12)
    assert any("below the required 0.600" in s for s in _sentences(doc, "subgroup"))


def test_suppressed_subgroups_are_named_as_too_small_to_judge():
    assert any(
        s.startswith("Too few cases to judge") and s.endswith(": race Other.")
        for s in _sentences(_demo(), "not_judgeable")
    )
    doc = _demo()
    doc["subgroups"].pop()
    assert not any("Too few cases" in s for s in _sentences(doc))


# --------------------------------------------------------------------------- disparities


def test_a_failed_fairness_criterion_is_a_disparity_with_its_groups():
    [sentence] = _sentences(_demo(), "disparity")
    assert sentence == (
        "The point estimate of the manufacturer TPR difference, 0.720, is above the allowed "
        f"0.150 (95% CI 0.430{NDASH}0.860). The gap lies between manufacturer Acme Medical "
        "(sensitivity 0.874) and Cobalt Systems (sensitivity 0.154)."
    )
    # Not also listed as a failed criterion.
    assert not any("TPR difference" in s for s in _sentences(_demo(), "criterion"))


def test_a_met_fairness_criterion_is_no_disparity():
    doc = _demo()
    doc["summary"]["criteria"][2].update(passed=True, observed=0.1)
    doc["summary"]["criteria"][2]["interval"] = _interval(0.1, 0.0, 0.3)
    assert _sentences(doc, "disparity") == []


# --------------------------------------------------------------------------- not judgeable


def test_criteria_that_cannot_be_judged_are_flagged_with_their_reason():
    doc = _demo()
    doc["summary"]["criteria"][2].update(
        passed=None,
        judgeable=False,
        observed=0.0,
        reason="the sensitivity is 0 or undefined in every compared manufacturer group "
        "(Acme Medical, Cobalt Systems), so their difference measures nothing",
    )
    flagged = _sentences(doc, "not_judgeable")
    assert flagged[0] == (
        "The criterion on the manufacturer TPR difference could not be judged: the sensitivity "
        "is 0 or undefined in every compared manufacturer group (Acme Medical, Cobalt Systems), "
        "so their difference measures nothing."
    )
    assert _sentences(doc, "disparity") == []  # neither a pass nor a disparity
    # A result stored before `judgeable` existed: no number means not judged.
    old = _demo()
    del old["summary"]["criteria"][0]["judgeable"]
    old["summary"]["criteria"][0].update(passed=False, observed=None, note="AUC undefined")
    assert "The criterion on the AUC could not be judged: AUC undefined." in _sentences(old)


def test_a_degenerate_outcome_is_not_judgeable():
    doc = _demo()
    doc["summary"]["degenerate"] = ["No negative case was scored: specificity cannot be read."]
    assert _sentences(doc, "not_judgeable")[0].startswith("Degenerate outcome: No negative case")


# --------------------------------------------------------------------------- order and fits


def test_findings_come_in_the_fixed_order():
    doc = _demo()
    doc["summary"]["criteria"][0].update(passed=False, observed=0.7)
    doc["calibration"] = {
        "bins": [{"n": 100}],
        "intercept": _interval(-2.11, -2.6, -1.62),
        "slope": _interval(0.62, 0.48, 0.76),
    }
    doc["explainability"] = {"localisation": {"pointing_game": 0.681, "chance": 0.108}}
    kinds = [f["kind"] for f in report_findings(doc)]
    assert kinds == [
        "criterion",
        "subgroup",
        "disparity",
        "not_judgeable",
        "calibration",
        "localisation",
    ]
    calibration = report_findings(doc)[-2]
    assert (
        calibration["severity"] == "moderate"
        and "intercept, \N{MINUS SIGN}2.110" in (calibration["sentence"])
    )
    assert "6.3 times chance" in report_findings(doc)[-1]["sentence"]


def test_a_clean_run_has_no_findings_but_its_fits():
    doc = _demo()
    doc["summary"]["criteria"].pop()
    doc["subgroups"] = doc["subgroups"][:1]
    assert report_findings(doc) == []


# --------------------------------------------------------------------------- discussion


def test_the_conclusion_names_the_failed_criteria_and_the_main_subgroup_finding():
    doc = _demo()
    discussion = report_discussion(doc, report_findings(doc))
    assert discussion["conclusion"] == (
        "The pre-specified acceptance criteria were not met on this test set of 240 cases. "
        "Not met: manufacturer: TPR difference (point estimate \N{LESS-THAN OR EQUAL TO} "
        "0.150). The overall verdict is FAIL. The main safety-relevant subgroup finding: "
        "sensitivity for manufacturer Cobalt Systems is 0.154 against 0.800 overall."
    )
    assert discussion["paragraphs"][0] == (
        "The protocol pre-specified 3 criteria (2 on performance, 1 on fairness): 2 met, 1 not "
        "met (manufacturer: TPR difference (point estimate \N{LESS-THAN OR EQUAL TO} 0.150))."
    )
    assert any(p.startswith("Disparities exceeded") for p in discussion["paragraphs"])


def test_a_pass_is_stated_only_when_every_criterion_was_met():
    doc = _demo()
    doc["summary"]["criteria"].pop()
    doc["subgroups"] = doc["subgroups"][:1]
    discussion = report_discussion(doc, report_findings(doc))
    assert discussion["conclusion"] == (
        "All 2 pre-specified acceptance criteria were met on this test set of 240 cases; the "
        "overall verdict is PASS."
    )
    assert any("This is not evidence of equal performance" in p for p in discussion["paragraphs"])


def test_an_undecided_criterion_keeps_the_conclusion_from_a_pass():
    doc = _demo()
    doc["summary"]["criteria"][2].update(passed=None, judgeable=False, reason="no groups")
    conclusion = report_discussion(doc, report_findings(doc))["conclusion"]
    assert conclusion.startswith(
        "No pre-specified criterion failed on this test set of 240 cases, but manufacturer: "
        "TPR difference (point estimate \N{LESS-THAN OR EQUAL TO} 0.150) could not be judged; "
        "the overall verdict is NOT JUDGEABLE, not a pass."
    )
    assert "PASS." not in conclusion


def test_a_degenerate_outcome_concludes_nothing_about_performance():
    doc = _demo()
    doc["summary"]["degenerate"] = ["Every case failed: the model scored none."]
    discussion = report_discussion(doc, report_findings(doc))
    assert discussion["conclusion"].startswith("The outcome is degenerate")
    assert "do not describe how the model performs" in discussion["paragraphs"][1]


# --------------------------------------------------------------------------- limitations


def _limitations(doc) -> str:
    return "\n".join(report_limitations(doc))


def test_limitations_of_a_clean_run_are_only_the_prevalence_and_its_suppressed_cells():
    assert report_limitations(_demo()) == [
        "PPV and NPV depend on the test set's prevalence (0.417: 100 of 240 cases); they "
        "transfer only to populations with a similar prevalence.",
        "Subgroups suppressed for having fewer than 10 cases (or withheld so that a smaller "
        "one cannot be derived) have no reported performance and are not compared for "
        "fairness: race Other.",
    ]


def test_unsandboxed_degenerate_and_failed_cases_are_limitations():
    doc = _demo()
    doc["identity"]["sandbox"]["enabled"] = False
    doc["summary"]["degenerate"] = ["No positive case was scored."]
    doc["failures"] = [{"category": "timeout", "n": 2}, {"category": "unreadable", "n": 1}]
    found = report_limitations(doc)
    assert found[0].startswith("The model was executed WITHOUT sandbox isolation")
    assert found[1] == "No positive case was scored."
    assert found[2] == (
        "3 cases could not be read or scored and were excluded from every metric; the metrics "
        "describe the remaining cases. By category: timeout 2; unreadable 1."
    )
    doc["protocol"]["failure_policy"] = "score-as-error"
    assert "were counted as wrong decisions" in _limitations(doc)


def test_no_case_scored_leaves_the_prevalence_unestimable():
    doc = _demo()
    doc["primary"]["confusion"] = {"tp": 0, "fn": 0, "tn": 0, "fp": 0}
    assert "(not estimable: no case scored)" in _limitations(doc)


def test_thin_subgroup_metrics_are_named():
    doc = _demo()
    doc["subgroups"][1].update(n_pos=6)
    assert "rest on fewer than 10 cases, and their intervals are wide: sensitivity of " in (
        _limitations(doc)
    )
    assert "manufacturer Cobalt Systems (6 positive cases)" in _limitations(doc)
    assert "rest on fewer" not in _limitations(_demo())


@pytest.mark.parametrize(
    ("independence", "expected"),
    [
        (
            {"n_overlap": 179, "n_cases": 240, "share": 0.746},
            "179 of 240 test cases (74.6%) come from sites or scanners the vendor declared as "
            "training sources",
        ),
        ({"n_overlap": 0, "n_cases": 240, "share": 0.0}, None),
    ],
)
def test_overlap_with_declared_training_sources(independence, expected):
    doc = _demo()
    doc["independence"] = independence
    text = _limitations(doc)
    if expected:
        assert expected in text
    else:
        assert "training" not in text


def test_overlap_falls_back_to_the_sites_and_an_undeclared_training_set_is_named():
    doc = _demo()
    doc["test_data"]["independence"] = {"overlapping_sites": ["Acme Medical"]}
    assert "Test sites overlap the vendor's declared training sites (Acme Medical)" in (
        _limitations(doc)
    )
    undeclared = _demo()
    undeclared["device"] = {"training_data": {"declared": False}}
    assert "The vendor declared no training data" in _limitations(undeclared)


def test_missing_study_card_entries_are_named():
    doc = _demo()
    doc["study_design"] = {"missing": ["Collection period", "Sampling"]}
    assert "The study card does not state: Collection period, Sampling;" in _limitations(doc)
    doc["study_design"] = {"missing": []}
    assert "study card" not in _limitations(doc)


def test_synthetic_data_and_a_single_site_only_when_the_data_say_so():
    doc = _demo()
    assert "synthetic" not in _limitations(doc) and "one site" not in _limitations(doc)
    doc["test_data"]["synthetic"] = True
    doc["test_data"]["sites"] = [{"name": "Acme Medical", "n": 240}]
    assert "The test data are synthetic" in _limitations(doc)
    assert "Every test case comes from one site (Acme Medical)" in _limitations(doc)


def test_the_rules_do_not_change_the_document():
    doc = _demo()
    before = copy.deepcopy(doc)
    report_discussion(doc, report_findings(doc))
    report_limitations(doc)
    assert doc == before


def test_the_discussion_names_the_subgroup_results():
    doc = _demo()
    paragraphs = report_discussion(doc, report_findings(doc))["paragraphs"]
    assert (
        "1 subgroup result fell below an acceptance criterion's required value or wholly below "
        "the overall estimate (sensitivity for manufacturer Cobalt Systems is 0.154 against "
        "0.800 overall): the overall estimates do not hold for every subgroup." in paragraphs
    )


def test_a_subgroup_is_not_listed_for_a_requirement_the_overall_estimate_fails_too():
    doc = _demo()
    doc["primary"]["metrics"]["specificity"] = _interval(0.458, 0.39, 0.53)
    doc["summary"]["criteria"].append(
        _criterion("specificity", 0.6, passed=False, interval=_interval(0.458, 0.385, 0.53))
    )
    # Near the failing overall: the overall criterion's finding covers it.
    doc["subgroups"][0]["specificity"] = _interval(0.46, 0.36, 0.56)
    assert not any("Specificity for manufacturer Acme" in s for s in _sentences(doc))
    # Wholly below the overall: a finding of its own, naming the requirement as well.
    doc["subgroups"][0]["specificity"] = _interval(0.239, 0.153, 0.353)
    assert (
        f"Specificity for manufacturer Acme Medical is 0.239 (95% CI 0.153{NDASH}0.353; 60 "
        "negative cases), below the overall 0.458; its interval lies wholly below the overall "
        "estimate." in _sentences(doc, "subgroup")
    )


def test_an_auc_resting_on_few_positives_is_too_small_to_decide():
    doc = _demo()
    doc["subgroups"][0].update(n=24, n_pos=5, n_neg=19, auc=_interval(0.674, 0.253, 0.927))
    assert not any("AUC for" in s for s in _sentences(doc, "subgroup"))
    assert any(
        s.startswith("AUC for manufacturer Acme Medical is 0.674")
        and "24 cases, 5 positive): too few cases" in s
        for s in _sentences(doc, "not_judgeable")
    )
