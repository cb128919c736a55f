"""The sentences of a comparison report, generated from its results by rules (no Django): one
decision per pre-registered endpoint, and the comparison's verdict.

"Version 1.1 is non-inferior to 1.0 in sensitivity: the lower 95% bound of the difference,
−0.021, is above the margin −0.050." The numbers are those the report prints (3 decimals); where
a bound and the margin would print alike, both are given with the decimals that tell them
apart, so the sentence never reads "−0.050 is above −0.050".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reports.numbers import fixed3, is_number

METRIC_NAMES = {"auc": "AUC", "sensitivity": "sensitivity", "specificity": "specificity"}
_ADJECTIVE = {"non-inferiority": "non-inferior", "superiority": "superior"}


def _apart(value: float, other: float) -> tuple[str, str]:
    """Both numbers with 3 decimals, or with as many more (up to 6) as tell them apart."""
    for decimals in range(3, 7):
        a, b = f"{value:.{decimals}f}", f"{other:.{decimals}f}"
        if a != b:
            break
    return a.replace("-", "\N{MINUS SIGN}"), b.replace("-", "\N{MINUS SIGN}")


def level_percent(level: Any) -> str:
    level = level if is_number(level) and 0 < level < 1 else 0.95
    return f"{float(level) * 100:g}%"


def endpoint_sentence(
    endpoint: Mapping[str, Any], *, baseline_version: str, candidate_version: str
) -> str:
    """The decision on one pre-registered endpoint, as a sentence."""
    metric = METRIC_NAMES.get(str(endpoint.get("metric")), str(endpoint.get("metric")))
    hypothesis = str(endpoint.get("hypothesis"))
    adjective = _ADJECTIVE.get(hypothesis, hypothesis)
    difference = endpoint.get("difference") or {}
    lower, threshold = difference.get("lower"), endpoint.get("threshold")
    subject = f"Version {candidate_version}"
    if endpoint.get("passed") is None or not (is_number(lower) and is_number(threshold)):
        reason = str(endpoint.get("reason") or "the difference has no lower bound")
        return (
            f"Whether version {candidate_version} is {adjective} to {baseline_version} in "
            f"{metric} cannot be judged: {reason}."
        )
    bound, margin = _apart(float(lower), float(threshold))
    level = level_percent(difference.get("level"))
    if endpoint["passed"]:
        return (
            f"{subject} is {adjective} to {baseline_version} in {metric}: the lower {level} "
            f"bound of the difference, {bound}, is above the margin {margin}."
        )
    return (
        f"{subject} is not shown {adjective} to {baseline_version} in {metric}: the lower "
        f"{level} bound of the difference, {bound}, is not above the margin {margin}."
    )


def verdict_sentence(
    verdict: Any,
    endpoints: list[Mapping[str, Any]],
    *,
    baseline_version: str,
    candidate_version: str,
) -> str:
    """The comparison as a whole: every pre-registered endpoint met, one or more not, or some
    that could not be judged."""
    if verdict == "pass":
        return (
            f"Version {candidate_version} meets every pre-registered comparison with "
            f"{baseline_version} ({len(endpoints)} endpoint(s))."
        )
    failed = [
        METRIC_NAMES.get(str(e.get("metric")), str(e.get("metric")))
        for e in endpoints
        if e.get("passed") is False
    ]
    if verdict == "fail":
        return (
            f"Version {candidate_version} does not meet the pre-registered comparison with "
            f"{baseline_version} in {', '.join(failed)}."
        )
    if verdict == "undecided":
        return (
            f"The comparison of version {candidate_version} with {baseline_version} is "
            "undecided: at least one pre-registered endpoint could not be judged."
        )
    return "The protocol pre-registered no comparison endpoint."


def margin_text(endpoint: Mapping[str, Any]) -> str:
    """The pre-registered rule with its number: "difference > −0.050"."""
    threshold = endpoint.get("threshold")
    if not is_number(threshold):
        margin = endpoint.get("margin")
        if not is_number(margin):
            return "\N{EM DASH}"
        threshold = -margin if endpoint.get("hypothesis") == "non-inferiority" else margin
    return f"lower bound > {fixed3(threshold)}"
