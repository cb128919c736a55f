"""Acceptance criteria judged against intervals, and the overall verdict
(`validation.stats.acceptance`). No Django."""

import math

from validation.stats.acceptance import (
    NOT_JUDGEABLE,
    evaluate_criteria,
    not_judgeable,
    overall_verdict,
)

AUC = {"metric": "auc", "bound": "lower", "comparator": ">=", "value": 0.75}


def test_a_computed_metric_is_judged():
    [result] = evaluate_criteria(
        [AUC], {"auc": {"estimate": 0.8, "lower": 0.76, "upper": 0.84, "method": "DeLong"}}
    )
    assert result["passed"] is True and result["judgeable"] is True and result["reason"] == ""
    [result] = evaluate_criteria([AUC], {"auc": {"estimate": 0.8, "lower": 0.7, "upper": 0.9}})
    assert result["passed"] is False and result["judgeable"] is True


def test_an_undefined_metric_is_neither_a_pass_nor_a_fail():
    for intervals in ({}, {"auc": {"estimate": math.nan, "lower": math.nan, "upper": math.nan}}):
        [result] = evaluate_criteria([AUC], intervals)
        assert result["passed"] is None and result["judgeable"] is False
        assert result["reason"] == result["note"] and result["reason"]


def test_the_verdict_is_never_a_pass_while_a_criterion_is_not_judgeable():
    passed = {"passed": True, "judgeable": True}
    failed = {"passed": False, "judgeable": True}
    undecided = not_judgeable(passed, "sensitivity is 0 in every group")
    assert undecided["passed"] is None and undecided["reason"].startswith("sensitivity")
    assert overall_verdict([passed, passed]) == "pass"
    assert overall_verdict([passed, undecided]) == NOT_JUDGEABLE
    assert overall_verdict([failed, undecided]) == "fail"
    assert overall_verdict([]) == "fail"
    # A result stored before the change (no `judgeable`, an unmet criterion as False).
    assert overall_verdict([passed, {"passed": False, "observed": None}]) == "fail"
