"""The comparison report's sentences, generated from the decisions by rules."""

from reports.comparison_prose import endpoint_sentence, margin_text, verdict_sentence

NAMES = {"baseline_version": "1.0", "candidate_version": "1.1"}


def _endpoint(lower, passed, *, metric="sensitivity", hypothesis="non-inferiority", margin=0.05):
    threshold = -margin if hypothesis == "non-inferiority" else margin
    return {
        "metric": metric,
        "hypothesis": hypothesis,
        "margin": margin,
        "threshold": threshold,
        "difference": {"estimate": 0.01, "lower": lower, "upper": 0.05, "level": 0.95},
        "passed": passed,
        "reason": "",
    }


def test_a_met_non_inferiority_reads_as_the_issue_words_it():
    assert endpoint_sentence(_endpoint(-0.021, True), **NAMES) == (
        "Version 1.1 is non-inferior to 1.0 in sensitivity: the lower 95% bound of the "
        "difference, \N{MINUS SIGN}0.021, is above the margin \N{MINUS SIGN}0.050."
    )


def test_a_missed_superiority_and_an_undecided_endpoint():
    missed = _endpoint(-0.004, False, metric="auc", hypothesis="superiority", margin=0.0)
    assert endpoint_sentence(missed, **NAMES) == (
        "Version 1.1 is not shown superior to 1.0 in AUC: the lower 95% bound of the "
        "difference, \N{MINUS SIGN}0.004, is not above the margin 0.000."
    )
    undecided = {**_endpoint(None, None), "reason": "no positive case was scored by both"}
    assert endpoint_sentence(undecided, **NAMES) == (
        "Whether version 1.1 is non-inferior to 1.0 in sensitivity cannot be judged: no "
        "positive case was scored by both."
    )


def test_a_bound_that_prints_like_the_margin_gets_the_decimals_that_tell_them_apart():
    sentence = endpoint_sentence(_endpoint(-0.04996, True), **NAMES)
    assert "difference, \N{MINUS SIGN}0.0500, is above the margin \N{MINUS SIGN}0.0500" not in (
        sentence
    )
    assert "\N{MINUS SIGN}0.04996, is above the margin \N{MINUS SIGN}0.05000." in sentence


def test_verdict_and_rule():
    endpoints = [_endpoint(-0.01, True), _endpoint(-0.2, False, metric="specificity")]
    assert verdict_sentence("fail", endpoints, **NAMES) == (
        "Version 1.1 does not meet the pre-registered comparison with 1.0 in specificity."
    )
    assert verdict_sentence("pass", endpoints[:1], **NAMES).startswith(
        "Version 1.1 meets every pre-registered comparison with 1.0"
    )
    assert margin_text(endpoints[0]) == "lower bound > \N{MINUS SIGN}0.050"
