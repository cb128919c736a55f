"""The exemplar rule on hand-made outcomes: how many of each outcome, the turn taken by each
subgroup, the order within a group, fewer cases than slots, and no false positive at all."""

import math

from validation.stats.exemplars import (
    ALL_CASES,
    PER_OUTCOME,
    ScoredCase,
    exemplar_rule,
    exemplars_select,
    outcome,
)

THRESHOLD = 0.5


def _case(case_id: str, label: int, score: float, group: str = "F") -> ScoredCase:
    return ScoredCase(case_id=case_id, label=label, score=score, group=group)


def _picked(chosen, name: str) -> list[str]:
    return [e.case_id for e in chosen if e.outcome == name]


def test_outcomes_follow_the_decision_rule_score_at_least_threshold():
    assert outcome(1, 0.5, 0.5) == "TP"  # at the threshold is positive (binary.predict)
    assert outcome(1, 0.4999, 0.5) == "FN"
    assert outcome(0, 0.5, 0.5) == "FP"
    assert outcome(0, 0.2, 0.5) == "TN"


def test_at_most_four_of_each_outcome_true_positives_first_and_no_true_negatives():
    cases = [_case(f"P{i:02}", 1, 0.6 + i / 100) for i in range(10)]
    cases += [_case(f"M{i:02}", 1, 0.1 + i / 100) for i in range(10)]
    cases += [_case(f"N{i:02}", 0, 0.55 + i / 100) for i in range(10)]
    cases += [_case(f"T{i:02}", 0, 0.1) for i in range(10)]
    chosen = exemplars_select(cases, threshold=THRESHOLD)
    assert [e.outcome for e in chosen] == ["TP"] * 4 + ["FN"] * 4 + ["FP"] * 4
    assert len(chosen) == 3 * PER_OUTCOME == 12
    assert not any(e.case_id.startswith("T") for e in chosen)


def test_errors_most_confident_first_and_true_positives_nearest_the_median():
    cases = [
        # false positives: highest score first
        _case("FP-a", 0, 0.61),
        _case("FP-b", 0, 0.99),
        _case("FP-c", 0, 0.75),
        # false negatives: lowest score first
        _case("FN-a", 1, 0.40),
        _case("FN-b", 1, 0.02),
        _case("FN-c", 1, 0.30),
        # true positives (exact in binary, so the tie is a tie): median 0.75
        *(_case(f"TP-{s}", 1, s) for s in (0.5625, 0.625, 0.75, 0.875, 0.9375)),
    ]
    chosen = exemplars_select(cases, threshold=THRESHOLD)
    assert _picked(chosen, "FP") == ["FP-b", "FP-c", "FP-a"]
    assert _picked(chosen, "FN") == ["FN-b", "FN-c", "FN-a"]
    # |s - 0.75|: 0.75 (0), 0.625 and 0.875 (0.125 each: by case id), then 0.5625 and 0.9375
    # (0.1875 each: by case id, so 0.9375 is left out)
    assert _picked(chosen, "TP") == ["TP-0.75", "TP-0.625", "TP-0.875", "TP-0.5625"]


def test_ties_are_broken_by_case_id_whatever_the_input_order():
    cases = [_case(c, 0, 0.9) for c in ("C3", "C1", "C2", "C5", "C4")]
    chosen = exemplars_select(cases, threshold=THRESHOLD)
    assert _picked(chosen, "FP") == ["C1", "C2", "C3", "C4"]
    assert exemplars_select(list(reversed(cases)), threshold=THRESHOLD) == chosen


def test_each_group_takes_its_turn_alphabetically_with_missing_values_last():
    # Group M has the three most confident false positives; F and unknown still take turns.
    cases = [
        _case("m1", 0, 0.99, "M"),
        _case("m2", 0, 0.98, "M"),
        _case("m3", 0, 0.97, "M"),
        _case("f1", 0, 0.60, "F"),
        _case("f2", 0, 0.55, "F"),
        _case("u1", 0, 0.96, "unknown"),
    ]
    chosen = exemplars_select(cases, threshold=THRESHOLD)
    assert _picked(chosen, "FP") == ["f1", "m1", "u1", "f2"]
    assert [e.group for e in chosen] == ["F", "M", "unknown", "F"]


def test_a_group_with_no_case_of_an_outcome_leaves_its_turn_to_the_others():
    cases = [_case("f1", 1, 0.2, "F"), *(_case(f"m{i}", 1, 0.1 + i / 100, "M") for i in range(5))]
    chosen = exemplars_select(cases, threshold=THRESHOLD)
    assert _picked(chosen, "FN") == ["f1", "m0", "m1", "m2"]


def test_fewer_cases_than_slots_and_no_false_positive_at_all():
    cases = [_case("a", 1, 0.9), _case("b", 1, 0.1), _case("c", 0, 0.1)]
    chosen = exemplars_select(cases, threshold=THRESHOLD)
    assert [(e.case_id, e.outcome) for e in chosen] == [("a", "TP"), ("b", "FN")]
    assert chosen[0].score == 0.9 and chosen[0].label == 1 and chosen[0].group == "F"
    assert exemplars_select([], threshold=THRESHOLD) == []


def test_cases_without_a_finite_score_are_never_chosen():
    cases = [_case("nan", 0, math.nan), _case("inf", 0, math.inf), _case("ok", 0, 0.7)]
    assert _picked(exemplars_select(cases, threshold=THRESHOLD), "FP") == ["ok"]


def test_the_rule_sentence_names_the_attribute_or_the_fallback():
    stratified = exemplar_rule("manufacturer")
    assert "up to 4 true positives, 4 false negatives and 4 false positives" in stratified
    assert "manufacturer groups" in stratified and "case identifier" in stratified
    fallback = exemplar_rule(None)
    assert "no subgroup attribute" in fallback and "groups" not in fallback
    assert ALL_CASES == "all cases"
