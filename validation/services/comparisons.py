"""Comparison runs (issue 18 item 13, a predetermined change control plan): two versions of one
vendor's model validated on the same sealed cases under one locked protocol that pre-registers
the comparison, then compared case by case and reported in a signed comparison report.

`comparison_start` starts the runs through `run_start`, so every check a run has (grant, caps,
approval, seal, protocol lock, audit) applies to each. The run stages advance as usual; when
the second of the two has been scored, `run_stages.run_advance` queues `comparison_score`.
"""

from __future__ import annotations

import numpy as np
from django.db import transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from reports.services import comparison_report_draft
from validation.errors import ApplicationError, PermissionDenied
from validation.models import (
    ComparisonRun,
    DatasetVersion,
    ModelPackage,
    Prediction,
    Protocol,
    ValidationRun,
)
from validation.selectors import is_validation_team
from validation.services.run_stages import SCORED_STATUSES
from validation.services.runs import run_start
from validation.stats.comparison import evaluate_comparison

Status = ComparisonRun.Status


def lineage_reaches(candidate: ModelPackage, baseline: ModelPackage) -> bool:
    """Whether `baseline` is `candidate` 's predecessor, or its predecessor's, and so on (intake
    keeps a lineage within one vendor and model name, and a version can only name an older
    row, so the walk ends)."""
    seen: set[int] = set()
    package = candidate.supersedes
    while package is not None and package.pk not in seen:
        if package.pk == baseline.pk:
            return True
        seen.add(package.pk)
        package = package.supersedes
    return False


def _refuse(message: str, status_code: int = 400) -> None:
    raise ApplicationError(message, status_code=status_code)


def _baseline_run_check(
    run: ValidationRun, *, dataset_version: DatasetVersion, protocol: Protocol
) -> None:
    if run.dataset_version_id != dataset_version.pk:
        _refuse(
            "The baseline run used another dataset version: a comparison pairs the two "
            "versions' outputs on the same sealed cases."
        )
    if run.protocol_id != protocol.pk:
        _refuse("The baseline run followed another protocol than the comparison's.")
    if run.status in (ValidationRun.Status.FAILED, ValidationRun.Status.CANCELLED):
        _refuse(f"The baseline run is {run.status}; start a new one.", 409)
    earlier = ComparisonRun.objects.filter(baseline=run).first()
    if earlier is not None:
        _refuse(
            f"The baseline run is already the baseline of comparison {earlier.reference}; "
            "name the baseline package to start it again.",
            409,
        )


@transaction.atomic
def comparison_start(
    *,
    actor,
    candidate: ModelPackage,
    dataset_version: DatasetVersion,
    protocol: Protocol,
    baseline: ModelPackage | None = None,
    baseline_run: ValidationRun | None = None,
) -> ComparisonRun:
    """Start a comparison of `candidate` against `baseline` on `dataset_version` under
    `protocol`. Preconditions: the actor is on the validation team; the protocol pre-registers
    a comparison (its `comparison` block); the candidate's lineage (`supersedes`, recorded at
    intake) reaches the baseline, so both are one vendor's model of one name. The baseline is
    either a package, whose run is started here, or `baseline_run`, an earlier run of it that
    is neither failed nor cancelled, on the same dataset version under the same protocol. The
    candidate's run (and the baseline's) start through `run_start`, which applies its own
    checks and audit events (RUN_QUEUED, DATASET_USED) and locks the protocol. Emits
    COMPARISON_STARTED. Scoring follows by itself once both runs are scored."""
    if not is_validation_team(actor):
        raise PermissionDenied("Only the validation team starts comparisons.")
    if (baseline is None) == (baseline_run is None):
        _refuse("Name the baseline either as a package or as an earlier run of it.")
    if baseline_run is not None:
        _baseline_run_check(baseline_run, dataset_version=dataset_version, protocol=protocol)
        baseline = baseline_run.package
    assert baseline is not None
    comparison_plan = (protocol.document or {}).get("comparison")
    if not comparison_plan:
        _refuse(
            "The protocol pre-registers no comparison (its `comparison` block: endpoints, "
            "hypotheses and margins); write a protocol version that does."
        )
    if baseline.pk == candidate.pk:
        _refuse("A package cannot be compared with itself.")
    if not lineage_reaches(candidate, baseline):
        _refuse(
            f"{candidate.name} {candidate.version} does not succeed {baseline.name} "
            f"{baseline.version}: its manifest's `supersedes` lineage does not reach it."
        )
    if baseline_run is None:
        baseline_run = run_start(
            actor=actor, package=baseline, dataset_version=dataset_version, protocol=protocol
        )
    candidate_run = run_start(
        actor=actor, package=candidate, dataset_version=dataset_version, protocol=protocol
    )
    comparison = ComparisonRun.objects.create(
        baseline=baseline_run, candidate=candidate_run, requested_by=actor
    )
    audit_record(
        actor=actor,
        action=AuditAction.COMPARISON_STARTED,
        target=comparison,
        payload={
            "baseline": {"run": baseline_run.pk, "package": baseline.sha256},
            "candidate": {"run": candidate_run.pk, "package": candidate.sha256},
            "dataset_version": dataset_version.pk,
            "protocol": candidate_run.protocol.sha256,
            "plan": comparison_plan,
        },
    )
    return comparison


def comparison_inputs(comparison: ComparisonRun) -> dict:
    """Both runs' scores by case, in case order (the order the single-run analysis uses): NaN
    where a run failed on the case or has no score for it, which `evaluate_comparison`
    excludes from both and counts. Also each package's threshold and the raw values of the
    protocol's subgroup attributes (binned by the statistics as the protocol says)."""
    baseline, candidate = comparison.baseline, comparison.candidate
    scores = {
        run.pk: dict(
            Prediction.objects.filter(run=run, error_category="").values_list("case_id", "score")
        )
        for run in (baseline, candidate)
    }
    cases = list(baseline.dataset_version.cases.order_by("case_id"))
    protocol = candidate.protocol.document
    return {
        "labels": np.array([case.label for case in cases], dtype=int),
        "scores_baseline": np.array(
            [scores[baseline.pk].get(case.pk, np.nan) for case in cases], dtype=float
        ),
        "scores_candidate": np.array(
            [scores[candidate.pk].get(case.pk, np.nan) for case in cases], dtype=float
        ),
        "threshold_baseline": float(baseline.package.manifest["threshold"]),
        "threshold_candidate": float(candidate.package.manifest["threshold"]),
        "groups": {
            spec["attribute"]: [case.attributes.get(spec["attribute"]) for case in cases]
            for spec in protocol.get("subgroups", [])
        },
    }


def comparison_score(*, comparison_id: int) -> None:
    """The paired analysis (task `comparison_score`, queued when the second run is scored):
    claims the comparison under its row lock (running -> scoring; a re-delivery that finds it
    past scoring returns), pairs both runs' predictions by case, calls
    `validation.stats.comparison.evaluate_comparison` outside any transaction, then in one
    transaction stores the result, drafts the comparison report and moves the comparison to
    awaiting-signature. Emits COMPARISON_SCORED (and REPORT_DRAFTED)."""
    with transaction.atomic():
        comparison = (
            ComparisonRun.objects.select_for_update()
            .select_related("baseline__package", "candidate__package", "candidate__protocol")
            .filter(pk=comparison_id)
            .first()
        )
        if comparison is None or comparison.status not in (Status.RUNNING, Status.SCORING):
            return
        if not {comparison.baseline.status, comparison.candidate.status} <= SCORED_STATUSES:
            return  # queued early; the second run's scoring queues it again
        comparison.status = Status.SCORING
        comparison.save(update_fields=["status"])
    inputs = comparison_inputs(comparison)
    result = evaluate_comparison(
        inputs.pop("labels"),
        inputs.pop("scores_baseline"),
        inputs.pop("scores_candidate"),
        plan=comparison.candidate.protocol.document,
        **inputs,
    )
    with transaction.atomic():
        comparison = ComparisonRun.objects.select_for_update().get(pk=comparison_id)
        if comparison.status != Status.SCORING:
            return
        comparison.result = result
        comparison.scored_at = timezone.now()
        comparison.status = Status.AWAITING_SIGNATURE
        comparison.save(update_fields=["result", "scored_at", "status"])
        audit_record(
            actor=None,
            action=AuditAction.COMPARISON_SCORED,
            target=comparison,
            payload={
                "n_cases": result["n_cases"],
                "n_excluded": result["n_excluded"],
                "verdict": result["verdict"],
                "decisions": [
                    {"metric": e["metric"], "passed": e["passed"]} for e in result["endpoints"]
                ],
            },
        )
        comparison_report_draft(comparison=comparison)
