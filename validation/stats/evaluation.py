"""The full metric set of one validation run, as its locked protocol plans it. Pure: no Django.

`evaluate` is what the scoring service stores and what `bench/metrics.py` times: primary
metrics with named intervals, the ROC curve, stratified-bootstrap intervals overall and per
subgroup, the subgroup table, fairness disparities with p-values (adjusted for multiplicity
where the protocol marks a subgroup attribute exploratory), calibration, and the evaluation
of every acceptance and fairness criterion with the numbers it used.

Failed cases (the model crashed or timed out, or the image could not be read) arrive with a
NaN score. Under ``exclude-and-report`` they are left out of every metric and counted; under
``score-as-error`` each counts as a wrong decision: a positive below the threshold and below
every other score, a negative at or above the threshold and above every other score (so the
AUC, too, treats it as the worst possible ranking).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from validation.stats.acceptance import evaluate_criteria, not_judgeable, overall_verdict
from validation.stats.independence import independence_split
from validation.stats.metrics import (
    MetricInputError,
    binary_metrics,
    roc_points,
    to_jsonable,
)
from validation.stats.metrics.bootstrap import (
    ALL_METRICS,
    bootstrap_disparities,
    bootstrap_distributions,
    bootstrap_tables,
)
from validation.stats.metrics.calibration import calibration_summary
from validation.stats.metrics.multiplicity import adjust
from validation.stats.metrics.roc import DEFAULT_AUC_INTERVAL
from validation.stats.metrics.subgroups import subgroup_results

ROC_POINTS_STORED = 200
#: What a protocol document without ``auc_interval_method`` was locked under.
LEGACY_AUC_INTERVAL = "delong"
FAIRLEARN_POINT = "fairlearn between-groups difference (point estimate)"


@dataclass(frozen=True)
class Plan:
    """What a locked protocol fixes before the run (see protocol_document.PROTOCOL_SCHEMA)."""

    threshold: float
    min_cell: int
    level: float = 0.95
    interval_method: str = "wilson"
    auc_interval_method: str = DEFAULT_AUC_INTERVAL
    failure_policy: str = "exclude-and-report"
    bootstrap_replicates: int = 2000
    bootstrap_seed: int = 0
    bootstrap_method: str = "bca"
    multiplicity: str = "holm"
    calibration_bins: int = 10
    exploratory: frozenset[str] = frozenset()
    acceptance_criteria: list[dict] = field(default_factory=list)
    fairness_criteria: list[dict] = field(default_factory=list)

    @classmethod
    def from_protocol(cls, document: Mapping[str, Any], threshold: float) -> Plan:
        bootstrap = document.get("bootstrap") or {}
        return cls(
            threshold=float(threshold),
            min_cell=int(document["min_cell_size"]),
            level=float(document.get("confidence_level", 0.95)),
            interval_method=document.get("interval_method", "wilson"),
            # A stored (so locked) document without the key predates the option: it was
            # registered, and must be analysed, with plain DeLong. New documents get the
            # default written in by protocol_document.with_defaults.
            auc_interval_method=document.get("auc_interval_method", LEGACY_AUC_INTERVAL),
            failure_policy=document.get("failure_policy", "exclude-and-report"),
            bootstrap_replicates=int(bootstrap.get("replicates", 0)),
            bootstrap_seed=int(bootstrap.get("seed", 0)),
            bootstrap_method=bootstrap.get("method", "bca"),
            multiplicity=document.get("multiplicity", "holm"),
            calibration_bins=int((document.get("calibration") or {}).get("bins", 10)),
            exploratory=frozenset(
                s["attribute"] for s in document.get("subgroups", []) if s.get("exploratory")
            ),
            acceptance_criteria=list(document.get("acceptance_criteria", [])),
            fairness_criteria=list(document.get("fairness_criteria", [])),
        )


def evaluate(
    y_true: Any,
    scores: Any,
    groups: Mapping[str, Any],
    plan: Plan,
    *,
    training_source: Any = None,
) -> dict[str, Any]:
    """Every section of the run's results, JSON-ready: ``primary``, ``bootstrap``,
    ``subgroups``, ``fairness``, ``calibration``, ``acceptance`` and ``scoring`` (how failed
    cases were treated). ``scores`` holds NaN for failed cases; ``groups`` maps each protocol
    attribute to one value per case. With ``training_source`` (one boolean per case: from a
    site or scanner the vendor declared it trained on), also ``independence_split``: the
    primary metrics on those cases and on the others (validation.stats.independence)."""
    y = np.asarray(y_true, dtype=int)
    s = np.asarray(scores, dtype=float)
    failed = np.isnan(s)
    source = None if training_source is None else np.asarray(training_source, dtype=bool)
    if source is not None and plan.failure_policy != "score-as-error":
        source = source[~failed]  # the cases the metrics see, as _apply_failure_policy keeps
    groups = {name: np.asarray(values, dtype=object) for name, values in groups.items()}
    y, s, groups, substituted, scoring = _apply_failure_policy(y, s, failed, groups, plan)

    methods = {"interval": plan.interval_method, "auc_method": plan.auc_interval_method}
    primary = binary_metrics(y, s, plan.threshold, level=plan.level, **methods)
    primary["roc"] = _roc(y, s)
    subgroups, fairness = subgroup_results(
        y, s, plan.threshold, groups, min_cell=plan.min_cell, level=plan.level, **methods
    )
    _adjust_p_values(fairness, plan)
    scoring["degenerate"] = degenerate_outcome(y[~substituted], s[~substituted])
    sections = {
        "primary": primary,
        "bootstrap": _bootstrap(y, s, groups, plan, fairness),
        "subgroups": subgroups,
        "fairness": fairness,
        "calibration": _calibration(y[~substituted], s[~substituted], plan),
        "scoring": scoring,
    }
    if source is not None:
        sections["independence_split"] = independence_split(
            y, s, source, plan.threshold, min_cell=plan.min_cell, level=plan.level, **methods
        )
    sections = to_jsonable(sections)
    sections["acceptance"] = _acceptance(
        sections["primary"], sections["fairness"], sections["subgroups"], plan
    )
    if scoring["degenerate"]:
        # A criterion met by a model that does not discriminate (or on no cases) is no pass.
        sections["acceptance"]["degenerate"] = scoring["degenerate"]
        sections["acceptance"]["verdict"] = "fail"
    return sections


def degenerate_outcome(y: np.ndarray, s: np.ndarray) -> list[str]:
    """What makes the scored cases unfit to judge the model, in words for the report: no case
    scored, no positive or no negative among them, or one score value for every case. Empty
    when the metrics can be read as usual."""
    if len(s) == 0:
        return ["Every case failed: the model scored none, so no metric could be computed."]
    findings = []
    if not (y == 1).any():
        findings.append(
            "No positive case was scored: sensitivity, the AUC and the positive predictive "
            "value cannot be estimated."
        )
    if not (y == 0).any():
        findings.append(
            "No negative case was scored: specificity, the AUC and the negative predictive "
            "value cannot be estimated."
        )
    if len(np.unique(s)) == 1:
        findings.append(
            f"The model returned the same score ({float(s[0]):.4g}) for every scored case: it "
            "does not discriminate, and an AUC of 0.5 carries no information."
        )
    return findings


# --- failed cases -------------------------------------------------------------------------------


def _apply_failure_policy(y, s, failed, groups, plan: Plan):
    """The cases the metrics see, their groups, which of them carry a substituted score, and
    how failures were treated."""
    n_failed = int(failed.sum())
    scoring = {
        "failure_policy": plan.failure_policy,
        "n_cases": int(len(y)),
        "n_failed": n_failed,
        "n_failed_positive": int(y[failed].sum()),
        "n_failed_negative": int((1 - y[failed]).sum()),
    }
    if plan.failure_policy == "score-as-error" and n_failed:
        ok = s[~failed]
        low = min(ok.min(initial=plan.threshold), plan.threshold) - 1.0
        high = max(ok.max(initial=plan.threshold), plan.threshold) + 1.0
        s = np.where(failed, np.where(y == 1, low, high), s)
        scoring["n_scored"] = int(len(y))
        scoring["treatment"] = (
            f"{n_failed} failed case(s) scored as errors: positives as false negatives, "
            "negatives as false positives, each ranked worst for the AUC"
        )
        return y, s, groups, failed, scoring
    scoring["n_scored"] = int(len(y) - n_failed)
    scoring["treatment"] = f"{n_failed} failed case(s) excluded from every metric and counted"
    keep = ~failed
    substituted = np.zeros(int(keep.sum()), dtype=bool)
    return y[keep], s[keep], {k: v[keep] for k, v in groups.items()}, substituted, scoring


# --- sections -----------------------------------------------------------------------------------


def _roc(y: np.ndarray, s: np.ndarray) -> dict | None:
    """The ROC curve, thinned to a bounded size for storage and plotting."""
    if len(set(y.tolist())) < 2:
        return None
    fpr, tpr, _ = roc_points(y, s)
    if len(fpr) > ROC_POINTS_STORED:
        idx = np.unique(np.linspace(0, len(fpr) - 1, ROC_POINTS_STORED).round().astype(int))
        fpr, tpr = fpr[idx], tpr[idx]
    return {"fpr": [float(v) for v in fpr], "tpr": [float(v) for v in tpr]}


def _bootstrap(y, s, groups, plan: Plan, fairness: list[dict]) -> dict[str, Any]:
    """Bootstrap intervals overall and per subgroup, and for each attribute's worst-case
    disparities (added to its fairness row), all from one set of replicates."""
    settings = {
        "replicates": plan.bootstrap_replicates,
        "seed": plan.bootstrap_seed,
        "method": plan.bootstrap_method,
        "stratified_by": "reference label",
    }
    if plan.bootstrap_replicates == 0:
        return {**settings, "overall": None, "subgroups": [], "note": "not planned"}
    try:
        dist = bootstrap_distributions(
            y,
            s,
            plan.threshold,
            seed=plan.bootstrap_seed,
            replicates=plan.bootstrap_replicates,
            groups=groups,
            metrics=ALL_METRICS,
        )
    except MetricInputError as exc:
        return {**settings, "overall": None, "subgroups": [], "note": str(exc)}
    result = bootstrap_tables(dist, method=plan.bootstrap_method, level=plan.level)
    for row in [result["overall"], *result["subgroups"]]:
        row.pop("selection_rate")  # drawn for the disparities only
    for row in result["subgroups"]:
        row["suppressed"] = row["n"] < plan.min_cell  # same rule as the subgroup table
    compared = {row["attribute"]: row["groups_compared"] for row in fairness}
    for attribute, intervals in bootstrap_disparities(dist, compared, level=plan.level).items():
        row = next(r for r in fairness if r["attribute"] == attribute)
        for key, interval in intervals.items():
            row[f"{key}_interval"] = interval
    return {**settings, **result, "note": ""}


def _calibration(y: np.ndarray, s: np.ndarray, plan: Plan) -> dict[str, Any]:
    """Calibration of the model's probabilities on the cases it actually scored (a worst score
    substituted for a failed case is not a probability)."""
    if len(s) == 0:
        return {"note": "no scored cases"}
    if s.min() < 0.0 or s.max() > 1.0:
        return {"note": "scores are not probabilities in [0, 1]: calibration not assessed"}
    summary = calibration_summary(y, s, n_bins=plan.calibration_bins, level=plan.level)
    return {**summary, "note": ""}


def _adjust_p_values(fairness: list[dict], plan: Plan) -> None:
    """Adjust the exploratory attributes' disparity p-values as one family (the protocol's
    method); pre-specified attributes keep theirs unadjusted. Adds ``*_p_adjusted``."""
    family = [
        (row, key)
        for row in fairness
        if row["attribute"] in plan.exploratory
        for key in ("tpr_p_value", "fpr_p_value")
        if row.get(key) is not None
    ]
    adjusted = (
        adjust([row[key] for row, key in family], plan.multiplicity) if family else np.array([])
    )
    for (row, key), value in zip(family, adjusted, strict=True):
        row[key.replace("_value", "_adjusted")] = float(value)
    for row in fairness:
        row["exploratory"] = row["attribute"] in plan.exploratory
        row["multiplicity"] = plan.multiplicity if row["exploratory"] else "none (pre-specified)"


def _acceptance(
    primary: dict, fairness: list[dict], subgroups: list[dict], plan: Plan
) -> dict[str, Any]:
    intervals = {k: v for k, v in primary.items() if isinstance(v, dict) and "estimate" in v}
    criteria = evaluate_criteria(plan.acceptance_criteria, intervals, level=plan.level)
    by_attribute = {row["attribute"]: row for row in fairness}
    for criterion in plan.fairness_criteria:
        row = by_attribute.get(criterion["attribute"], {})
        [judged] = evaluate_criteria(
            [criterion],
            _disparity_intervals(row),
            level=plan.level,
            subject=f"{criterion['attribute']}: ",
        )
        reason = _fairness_undecidable(criterion, row, subgroups)
        if reason:
            judged = not_judgeable(judged, reason)
        criteria.append(judged)
    return {"criteria": criteria, "verdict": overall_verdict(criteria)}


# The per-group rates a disparity compares: a difference of rates that are 0 (or undefined)
# in every group is 0 because the model never made that call, not because it treats the
# groups alike (issue 18: "TPR difference 0.000 because sensitivity is 0 in every group").
_DISPARITY_RATES = {
    "tpr_difference": ("sensitivity",),
    "fpr_difference": ("false-positive rate",),
    "equalized_odds_difference": ("sensitivity", "false-positive rate"),
    "demographic_parity_difference": ("selection rate",),
}


def _group_rate(row: Mapping[str, Any], rate: str) -> float | None:
    if rate == "selection rate":
        value = row.get("selection_rate")
        return float(value) if value is not None else None
    key = "specificity" if rate == "false-positive rate" else "sensitivity"
    interval = row.get(key)
    estimate = interval.get("estimate") if isinstance(interval, Mapping) else None
    if estimate is None or (isinstance(estimate, float) and math.isnan(estimate)):
        return None
    return 1.0 - float(estimate) if key == "specificity" else float(estimate)


def _fairness_undecidable(
    criterion: Mapping[str, Any], row: Mapping[str, Any], subgroups: list[dict]
) -> str:
    """Why a fairness criterion cannot be judged, or "" when it can: fewer than two groups
    to compare, or a rate it compares is 0 or undefined in every compared group."""
    attribute = criterion["attribute"]
    compared = [str(g) for g in row.get("groups_compared") or []]
    if len(compared) < 2:
        notes = "; ".join(row.get("notes") or []) or "fewer than two groups could be compared"
        return f"{attribute}: {notes}"
    rows = [r for r in subgroups if r["attribute"] == attribute and str(r["group"]) in compared]
    for rate in _DISPARITY_RATES.get(criterion["metric"], ()):
        values = [_group_rate(r, rate) for r in rows]
        if all(value is None or value == 0 for value in values):
            return (
                f"the {rate} is 0 or undefined in every compared {attribute} group "
                f"({', '.join(compared)}), so their difference measures nothing"
            )
    return ""


def _disparity_intervals(row: Mapping[str, Any]) -> dict[str, dict]:
    """The fairness row's disparities as intervals: TPR and FPR differences have Newcombe
    intervals, fairlearn's worst-case differences bootstrap percentile intervals (point
    estimates only when no bootstrap was planned)."""
    intervals = {}
    for key in ("tpr_difference", "fpr_difference"):
        if isinstance(row.get(key), dict):
            intervals[key] = row[key]
    for key in ("equalized_odds_difference", "demographic_parity_difference"):
        value = row.get(key)
        if isinstance(row.get(f"{key}_interval"), dict):
            intervals[key] = row[f"{key}_interval"]  # bootstrap percentile, same estimate
        elif value is not None and not math.isnan(value):
            intervals[key] = {"estimate": value, "method": FAIRLEARN_POINT}
    return intervals
