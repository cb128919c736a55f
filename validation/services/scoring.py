"""Turning a run's predictions into the aggregate results the report and the API show."""

from collections import Counter

import numpy as np
from django.db import IntegrityError, transaction

from validation.models import MetricResult, Prediction, ValidationRun
from validation.stats.acceptance import subgroup_values
from validation.stats.evaluation import Plan, evaluate


def _attribute_values(cases, spec: dict) -> list:
    return subgroup_values([case.attributes.get(spec["attribute"]) for case in cases], spec)


def run_compute_metrics(run: ValidationRun) -> dict:
    """Compute every section the protocol plans (validation.stats.evaluation) and the failures
    table, and store each as a MetricResult (unique per run and section, so a repeat stores
    nothing twice). Returns a small summary for the audit event."""
    protocol = run.protocol.document
    plan = Plan.from_protocol(protocol, threshold=float(run.package.manifest["threshold"]))
    # In case order: the seeded bootstrap resamples by position, so an order that followed the
    # writes (shards finish in any order) would change the intervals from one run to the next.
    predictions = list(
        Prediction.objects.filter(run=run).select_related("case").order_by("case__case_id")
    )
    failures = Counter(p.error_category for p in predictions if p.error_category)
    cases = [p.case for p in predictions]
    y = np.array([c.label for c in cases], dtype=int)
    s = np.array([np.nan if p.error_category else p.score for p in predictions], dtype=float)
    groups = {spec["attribute"]: _attribute_values(cases, spec) for spec in protocol["subgroups"]}
    sections = evaluate(y, s, groups, plan)
    scoring = sections.pop("scoring")
    sections["failures"] = {
        "policy": scoring.pop("failure_policy"),
        **scoring,  # n_cases, n_scored, n_failed (positive, negative), treatment
        "by_category": [{"category": k, "n": v} for k, v in sorted(failures.items())],
    }
    for section, value in sections.items():
        try:
            with transaction.atomic():
                MetricResult.objects.create(run=run, section=section, value=value)
        except IntegrityError:
            pass  # already stored by an earlier delivery of this task
    return {
        "scored": scoring["n_scored"],
        "failed": scoring["n_failed"],
        "verdict": sections["acceptance"]["verdict"],
    }
