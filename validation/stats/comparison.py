"""Comparing two versions of a model on the same cases, as a protocol's ``comparison`` block
pre-registers it (issue 18: a predetermined change control plan). Pure: no Django.

Every difference is candidate minus baseline, on the cases both models scored:

- AUC: paired DeLong (``roc.delong_paired``), its interval at the protocol's level, and the
  z-test of no difference.
- Sensitivity (on the positives) and specificity (on the negatives): the paired 2x2 table of
  correct decisions, Newcombe's (1998) method 10 interval for the difference of the paired
  proportions, and McNemar's test of no difference (``metrics.paired``).

Each endpoint's decision uses the lower bound of the two-sided interval (a one-sided test at
half the protocol's alpha): non-inferiority passes when it is above ``-margin``, superiority
when it is above ``margin``; an endpoint whose difference cannot be computed is undecided
(``passed`` None, with the reason). Subgroups get the same paired differences, without a
decision (exploratory: no multiplicity adjustment).

A case that either model failed (a NaN score) is excluded from both, whatever the protocol's
``failure_policy``: a paired comparison needs both decisions on a case, and scoring a failure
as an error would credit one model's crash to the comparison. The exclusions are counted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from validation.stats.acceptance import subgroup_values
from validation.stats.evaluation import Plan
from validation.stats.metrics import (
    MetricInputError,
    as_labels,
    check_same_length,
    to_jsonable,
)
from validation.stats.metrics.binary import predict
from validation.stats.metrics.paired import mcnemar, paired_proportion_difference
from validation.stats.metrics.proportions import proportion_interval
from validation.stats.metrics.roc import DELONG_PAIRED, auc_delong, delong_paired
from validation.stats.metrics.subgroups import UNKNOWN, group_labels

PAIRED_METRICS = ("auc", "sensitivity", "specificity")
#: The decision rule of each hypothesis; ``name`` in each endpoint states it with the numbers.
RULES = {
    "non-inferiority": "lower bound of the difference > -margin",
    "superiority": "lower bound of the difference > margin",
}
EXCLUSION_NOTE = (
    "A case that either model failed is excluded from both and counted: the comparison is "
    "paired, so a case counts only where both models scored it."
)


def evaluate_comparison(
    labels: Any,
    scores_baseline: Any,
    scores_candidate: Any,
    *,
    threshold_baseline: float,
    threshold_candidate: float,
    groups: Mapping[str, Any],
    plan: Mapping[str, Any],
) -> dict[str, Any]:
    """The comparison section of a comparison run, JSON-ready.

    ``labels`` and both score arrays hold one value per case in the same order (NaN for a
    case the model failed); ``groups`` maps each protocol subgroup attribute to one raw value
    per case (binned here by the protocol's ``bins``, as the single-model analysis bins
    them); ``plan`` is the locked protocol document (``comparison``, ``confidence_level``,
    ``min_cell_size``, ``interval_method``, ``auc_interval_method``, ``subgroups``).

    Returns ``n_cases`` (given), ``n_excluded`` (failed by either model; also
    ``n_failed_baseline`` and ``n_failed_candidate``), ``n_paired``, ``n_pos`` and ``n_neg``
    (of the paired cases), ``exclusion`` (the rule, in words), ``overall`` (each of AUC,
    sensitivity and specificity: both models' intervals, the difference and its test),
    ``endpoints`` (the pre-registered ones with their decision), ``verdict`` ("pass" when
    every endpoint passed, "fail" when one failed, else "undecided"; None without endpoints),
    ``agreement`` (the paired tables of correct decisions on the positives and on the
    negatives) and ``subgroups``.
    """
    y = as_labels(labels, name="labels")
    baseline = _scores(scores_baseline, "scores_baseline")
    candidate = _scores(scores_candidate, "scores_candidate")
    check_same_length(labels=y, scores_baseline=baseline, scores_candidate=candidate)
    settings = Plan.from_protocol(plan, threshold=threshold_baseline)
    failed_baseline, failed_candidate = np.isnan(baseline), np.isnan(candidate)
    keep = ~(failed_baseline | failed_candidate)
    specs = list(plan.get("subgroups", []))
    labelled = {
        spec["attribute"]: group_labels(
            subgroup_values(_values(groups, spec["attribute"], len(y)), spec),
            len(y),
            attribute=spec["attribute"],
        )[keep]
        for spec in specs
    }
    y, baseline, candidate = y[keep], baseline[keep], candidate[keep]
    pair = _Pair(
        y,
        baseline,
        candidate,
        predict(baseline, threshold_baseline),
        predict(candidate, threshold_candidate),
        settings,
    )
    overall = {metric: pair.compare(metric) for metric in PAIRED_METRICS}
    endpoints = [
        _endpoint(endpoint, overall[endpoint["metric"]], settings.level)
        for endpoint in (plan.get("comparison") or {}).get("endpoints", [])
    ]
    result = {
        "n_cases": len(keep),
        "n_excluded": int((~keep).sum()),
        "n_failed_baseline": int(failed_baseline.sum()),
        "n_failed_candidate": int(failed_candidate.sum()),
        "n_paired": len(y),
        "n_pos": int(y.sum()),
        "n_neg": int(len(y) - y.sum()),
        "exclusion": EXCLUSION_NOTE,
        "level": settings.level,
        "overall": overall,
        "endpoints": endpoints,
        "verdict": _verdict(endpoints),
        "agreement": {"positives": pair.table(1), "negatives": pair.table(0)},
        "subgroups": _subgroups(pair, labelled, settings.min_cell),
    }
    return to_jsonable(result)


class _Pair:
    """Both models' scores and decisions on the same (paired) cases."""

    def __init__(self, y, baseline, candidate, predicted_baseline, predicted_candidate, plan):
        self.y, self.baseline, self.candidate = y, baseline, candidate
        self.predicted = (predicted_baseline, predicted_candidate)
        self.plan: Plan = plan

    def subset(self, mask: np.ndarray) -> _Pair:
        return _Pair(
            self.y[mask],
            self.baseline[mask],
            self.candidate[mask],
            self.predicted[0][mask],
            self.predicted[1][mask],
            self.plan,
        )

    def table(self, label: int) -> dict[str, int]:
        """Correct decisions on the cases of one class (a positive is decided correctly when
        predicted positive, a negative when predicted negative)."""
        of_class = self.y == label
        right_baseline = (self.predicted[0] == label)[of_class]
        right_candidate = (self.predicted[1] == label)[of_class]
        return {
            "both": int((right_baseline & right_candidate).sum()),
            "baseline_only": int((right_baseline & ~right_candidate).sum()),
            "candidate_only": int((~right_baseline & right_candidate).sum()),
            "neither": int((~right_baseline & ~right_candidate).sum()),
        }

    def compare(self, metric: str) -> dict[str, Any]:
        """Both models' intervals, the difference (candidate minus baseline) with its
        interval, and the test of no difference; ``note`` says what could not be computed."""
        if metric == "auc":
            return to_jsonable(self._auc())
        return to_jsonable(self._proportion(1 if metric == "sensitivity" else 0, metric))

    def _auc(self) -> dict[str, Any]:
        n_pos = int(self.y.sum())
        n_neg = len(self.y) - n_pos
        if n_pos == 0 or n_neg == 0:
            return _not_computed("AUC undefined: the paired cases have one class only")
        level, method = self.plan.level, self.plan.auc_interval_method
        paired = delong_paired(self.y, self.candidate, self.baseline, level=level)
        note = ""
        if math.isnan(paired.variance):
            note = "no interval: the paired DeLong variance needs two positives and two negatives"
        elif paired.variance == 0 and not np.array_equal(self.baseline, self.candidate):
            note = (
                "no interval: the paired DeLong variance is 0 (each AUC is 0 or 1), so the "
                "data give the difference no width"
            )
        return {
            "baseline": auc_delong(self.y, self.baseline, level=level, method=method).ci,
            "candidate": auc_delong(self.y, self.candidate, level=level, method=method).ci,
            "difference": paired.ci if not note else _point(paired.difference, level),
            "test": {"name": DELONG_PAIRED, "statistic": paired.z, "p_value": paired.p_value},
            "note": note,
        }

    def _proportion(self, label: int, metric: str) -> dict[str, Any]:
        cells = self.table(label)
        n = sum(cells.values())
        if n == 0:
            kind = "positive" if label == 1 else "negative"
            return _not_computed(f"{metric} undefined: no {kind} case was scored by both models")
        level, method = self.plan.level, self.plan.interval_method
        right_baseline = cells["both"] + cells["baseline_only"]
        right_candidate = cells["both"] + cells["candidate_only"]
        test = mcnemar(cells["baseline_only"], cells["candidate_only"])
        return {
            "baseline": proportion_interval(right_baseline, n, level=level, method=method),
            "candidate": proportion_interval(right_candidate, n, level=level, method=method),
            "difference": paired_proportion_difference(
                cells["both"],
                cells["baseline_only"],
                cells["candidate_only"],
                cells["neither"],
                level=level,
            ),
            "test": {
                "name": test["method"],
                "statistic": test["statistic"],
                "p_value": test["p_value"],
                "exact_p_value": test["exact_p_value"],
                "chi_square_p_value": test["chi_square_p_value"],
                "discordant": {
                    "baseline_only": cells["baseline_only"],
                    "candidate_only": cells["candidate_only"],
                },
            },
            "note": "",
        }


def _endpoint(
    endpoint: Mapping[str, Any], compared: Mapping[str, Any], level: float
) -> dict[str, Any]:
    """One pre-registered endpoint with its decision on the difference's lower bound."""
    hypothesis, margin = endpoint["hypothesis"], float(endpoint["margin"])
    threshold = -margin if hypothesis == "non-inferiority" else margin
    shown = "AUC" if endpoint["metric"] == "auc" else endpoint["metric"]
    claim = "non-inferior" if hypothesis == "non-inferiority" else "superior"
    name = (
        f"Candidate {shown} {claim} to the baseline (margin {margin:g}): lower "
        f"{level * 100:g}% bound of candidate minus baseline > {threshold:g}"
    )
    difference = compared["difference"] or {}
    lower = difference.get("lower")
    passed: bool | None
    if lower is None:
        passed = None
        reason = compared["note"] or "the difference has no lower bound"
    else:
        passed = bool(lower > threshold)
        reason = ""
    return {
        "metric": endpoint["metric"],
        "name": name,
        "hypothesis": hypothesis,
        "margin": margin,
        "baseline": compared["baseline"],
        "candidate": compared["candidate"],
        "difference": compared["difference"],
        "test": compared["test"],
        "threshold": threshold,
        "passed": passed,
        "rule": RULES[hypothesis],
        "reason": reason,
    }


def _verdict(endpoints: list[dict]) -> str | None:
    if not endpoints:
        return None
    if any(e["passed"] is False for e in endpoints):
        return "fail"
    return "pass" if all(e["passed"] for e in endpoints) else "undecided"


def _subgroups(pair: _Pair, labelled: dict[str, np.ndarray], min_cell: int) -> list[dict]:
    """Paired differences per group of each protocol attribute; a group with fewer than
    ``min_cell`` paired cases is ``suppressed`` and carries counts only (the disclosure rule
    of the single-model report)."""
    rows = []
    for attribute, labels in labelled.items():
        for group in sorted(set(labels.tolist()), key=lambda g: (g == UNKNOWN, g)):
            sub = pair.subset(labels == group)
            n_pos = int(sub.y.sum())
            row: dict[str, Any] = {
                "attribute": attribute,
                "group": group,
                "n": len(sub.y),
                "n_pos": n_pos,
                "n_neg": len(sub.y) - n_pos,
                "suppressed": len(sub.y) < min_cell,
            }
            for metric in PAIRED_METRICS:
                row[metric] = None if row["suppressed"] else _subgroup_cell(sub.compare(metric))
            rows.append(row)
    return rows


def _subgroup_cell(compared: Mapping[str, Any]) -> dict[str, Any] | None:
    if compared["difference"] is None:
        return None
    difference = compared["difference"]
    return {
        "baseline": compared["baseline"]["estimate"],
        "candidate": compared["candidate"]["estimate"],
        **{key: difference[key] for key in ("estimate", "lower", "upper", "level", "method")},
        "test": compared["test"]["name"],
        "p_value": compared["test"]["p_value"],
        "note": compared["note"],
    }


def _point(estimate: float, level: float) -> dict[str, Any]:
    return {
        "estimate": estimate,
        "lower": math.nan,
        "upper": math.nan,
        "level": level,
        "method": DELONG_PAIRED,
    }


def _not_computed(note: str) -> dict[str, Any]:
    return {"baseline": None, "candidate": None, "difference": None, "test": None, "note": note}


def _scores(scores: Any, name: str) -> np.ndarray:
    try:
        array = np.asarray(scores, dtype=float)
    except (TypeError, ValueError):
        raise MetricInputError(f"{name} must be numeric (NaN for a failed case).") from None
    if array.ndim != 1:
        raise MetricInputError(f"{name} must be one-dimensional, got shape {array.shape}.")
    if np.isinf(array).any():
        raise MetricInputError(f"{name} must be finite or NaN (a failed case).")
    return array


def _values(groups: Mapping[str, Any], attribute: str, n: int) -> list:
    values = groups.get(attribute)
    return [None] * n if values is None else list(values)
