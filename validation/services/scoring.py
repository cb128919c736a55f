"""Turning a run's predictions into the aggregate results the report and the API show."""

from collections import Counter

import numpy as np
from django.db import IntegrityError, transaction

from validation.ml.acceptance import bin_label, evaluate_criteria
from validation.ml.metrics import (
    binary_metrics,
    fairness_summary,
    roc_points,
    subgroup_table,
    to_jsonable,
)
from validation.models import MetricResult, Prediction, ValidationRun

ROC_POINTS_STORED = 200


def _attribute_values(cases, spec: dict) -> list:
    name = spec["attribute"]
    values = [case.attributes.get(name) for case in cases]
    if spec.get("bins"):
        return [bin_label(v, spec["bins"]) if isinstance(v, int | float) else None for v in values]
    return values


def _thin_roc(fpr: np.ndarray, tpr: np.ndarray) -> dict:
    """Keep the curve's shape at a bounded size for storage and plotting."""
    if len(fpr) > ROC_POINTS_STORED:
        idx = np.unique(np.linspace(0, len(fpr) - 1, ROC_POINTS_STORED).round().astype(int))
        fpr, tpr = fpr[idx], tpr[idx]
    return {"fpr": [float(v) for v in fpr], "tpr": [float(v) for v in tpr]}


def run_compute_metrics(run: ValidationRun) -> dict:
    """Compute the primary, subgroup, fairness, failure and acceptance sections and store each
    as a MetricResult (unique per run and section, so a repeat stores nothing twice). Returns
    a small summary for the audit event."""
    protocol = run.protocol.document
    level = protocol.get("confidence_level", 0.95)
    min_cell = protocol["min_cell_size"]
    threshold = float(run.package.manifest["threshold"])
    predictions = list(Prediction.objects.filter(run=run).select_related("case"))
    scored = [p for p in predictions if p.error_category == ""]
    failures = Counter(p.error_category for p in predictions if p.error_category)
    cases = [p.case for p in scored]
    y = np.array([c.label for c in cases], dtype=int)
    s = np.array([p.score for p in scored], dtype=float)

    primary = to_jsonable(binary_metrics(y, s, threshold, level=level))
    fpr, tpr, _ = roc_points(y, s)
    primary["roc"] = _thin_roc(fpr, tpr)
    groups = {spec["attribute"]: _attribute_values(cases, spec) for spec in protocol["subgroups"]}
    subgroups = to_jsonable(subgroup_table(y, s, threshold, groups, min_cell=min_cell, level=level))
    fairness = to_jsonable(
        fairness_summary(y, s, threshold, groups, min_cell=min_cell, level=level)
    )
    intervals = {k: v for k, v in primary.items() if isinstance(v, dict) and "estimate" in v}
    acceptance = evaluate_criteria(protocol["acceptance_criteria"], intervals)
    sections = {
        "primary": primary,
        "subgroups": subgroups,
        "fairness": fairness,
        "failures": {
            "policy": protocol.get("failure_policy", "exclude-and-report"),
            "n_cases": len(predictions),
            "n_scored": len(scored),
            "by_category": [{"category": k, "n": v} for k, v in sorted(failures.items())],
        },
        "acceptance": {
            "criteria": acceptance,
            "verdict": "pass" if all(c["passed"] for c in acceptance) else "fail",
        },
    }
    for section, value in sections.items():
        try:
            with transaction.atomic():
                MetricResult.objects.create(run=run, section=section, value=value)
        except IntegrityError:
            pass  # already stored by an earlier delivery of this task
    return {
        "scored": len(scored),
        "failed": sum(failures.values()),
        "verdict": sections["acceptance"]["verdict"],
    }
