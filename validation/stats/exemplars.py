"""Which cases a report shows as Grad-CAM exemplars: a fixed rule, stated in the report.

From the scored cases at the operating point (predicted positive when the score is at least the
threshold, the rule of `metrics.binary.predict`), up to `PER_OUTCOME` true positives, false
negatives and false positives. Each outcome's picks are taken in turn from the groups of the
protocol's first subgroup attribute (groups in alphabetical order, missing values last; one case
per group per round, so a small group is shown before a large one shows its second case), or
from all cases when the protocol names no attribute. Within a group: the most confident errors
first (false positives by highest score, false negatives by lowest score) and the typical true
positives (nearest the median true-positive score); ties by case id. Pure: no Django.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from validation.stats.metrics.subgroups import UNKNOWN

#: The outcomes shown, in the order the report shows them.
OUTCOMES = ("TP", "FN", "FP")
OUTCOME_NAMES = {"TP": "true positive", "FN": "false negative", "FP": "false positive"}
#: At most this many cases of each outcome (so 12 exemplars at most).
PER_OUTCOME = 4
#: The group of every case when the protocol names no subgroup attribute.
ALL_CASES = "all cases"


@dataclass(frozen=True)
class ScoredCase:
    """A case as the rule sees it: its id (ties), reference label, model score and group."""

    case_id: str
    label: int
    score: float
    group: str


@dataclass(frozen=True)
class Exemplar:
    """A chosen case with its outcome at the operating point."""

    case_id: str
    outcome: str  # "TP", "FN" or "FP"
    score: float
    label: int
    group: str


def outcome(label: int, score: float, threshold: float) -> str:
    """TP, FN, FP or TN at the operating point (positive when ``score >= threshold``)."""
    positive = score >= threshold
    if label == 1:
        return "TP" if positive else "FN"
    return "FP" if positive else "TN"


def _group_order(group: str) -> tuple[bool, str]:
    return (group == UNKNOWN, group)


def exemplars_select(
    cases: Iterable[ScoredCase], *, threshold: float, per_outcome: int = PER_OUTCOME
) -> list[Exemplar]:
    """The exemplars the rule chooses, true positives first, then false negatives, then false
    positives, each in the order chosen. Cases without a finite score are never chosen."""
    by_outcome: dict[str, list[ScoredCase]] = {name: [] for name in OUTCOMES}
    for case in cases:
        if not math.isfinite(case.score):
            continue
        found = outcome(case.label, case.score, threshold)
        if found in by_outcome:
            by_outcome[found].append(case)
    tp_scores = [c.score for c in by_outcome["TP"]]
    median_tp = statistics.median(tp_scores) if tp_scores else 0.0
    keys = {
        "TP": lambda c: (abs(c.score - median_tp), c.case_id),
        "FN": lambda c: (c.score, c.case_id),
        "FP": lambda c: (-c.score, c.case_id),
    }
    chosen: list[Exemplar] = []
    for name in OUTCOMES:
        groups: dict[str, list[ScoredCase]] = {}
        for case in sorted(by_outcome[name], key=keys[name]):
            groups.setdefault(case.group, []).append(case)
        queues = [groups[g] for g in sorted(groups, key=_group_order)]
        picked = _round_robin(queues, per_outcome)
        chosen += [Exemplar(c.case_id, name, c.score, c.label, c.group) for c in picked]
    return chosen


def _round_robin(queues: Sequence[list[ScoredCase]], limit: int) -> list[ScoredCase]:
    """The first of each queue in turn, then the second of each, ... up to `limit` cases."""
    picked: list[ScoredCase] = []
    depth = 0
    while len(picked) < limit and any(depth < len(q) for q in queues):
        for queue in queues:
            if depth < len(queue) and len(picked) < limit:
                picked.append(queue[depth])
        depth += 1
    return picked


def exemplar_rule(attribute: str | None, *, per_outcome: int = PER_OUTCOME) -> str:
    """The rule as the report prints it, for the protocol's first subgroup attribute (None:
    the protocol names none)."""
    if attribute:
        strata = (
            f"taken in turn from the {attribute} groups (alphabetical order, one case per "
            "group per round)"
        )
    else:
        strata = "taken from all scored cases (the protocol names no subgroup attribute)"
    return (
        f"Exemplars are chosen by a fixed rule from the scored cases at the operating point "
        f"(predicted positive when the score is at least the threshold): up to {per_outcome} "
        f"true positives, {per_outcome} false negatives and {per_outcome} false positives, "
        f"each outcome {strata}. Within a group, false positives with the highest scores and "
        "false negatives with the lowest scores come first (the most confident errors), and "
        "true positives nearest the median true-positive score (the typical ones); ties are "
        "broken by case identifier. Cases the model failed on are not chosen."
    )
