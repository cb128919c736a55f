"""The run's stage transitions, shared by the pipeline stages (`services.runs`) and the shards
(`services.shards`): claim a run in an expected state, advance it (state, stage time, audit
event and the next stage's task in one transaction), read its state, fail it with a message safe
for its vendor. Every transition takes the run's row lock, so two deliveries of the same stage
move the run once.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from config.celery import enqueue_on_commit
from validation import task_names
from validation.models import ComparisonRun, ValidationRun

Status = ValidationRun.Status

# A run in one of these states has its predictions and metrics stored: a comparison that pairs
# it with another can be scored once both are.
SCORED_STATUSES = frozenset(
    {Status.EXPLAINING, Status.REPORTING, Status.AWAITING_SIGNATURE, Status.ISSUED}
)

# What a vendor may read when its model fails on partner data: the category, never stderr.
PUBLIC_FAILURE = {
    "load-failed": "The model could not be loaded.",
    "timeout": "The model did not answer within the time limit.",
    "oom": "The model exceeded the memory limit.",
    "crash": "The model process crashed.",
    "bad-output": "The model returned output that does not match its manifest.",
    "bad-input": "The runner refused the prepared input.",
    "no-isolation": "No sandbox is available on the worker; the run was not started.",
    "internal-error": "The validation service hit an internal error; the team has been notified.",
    "grant-revoked": "The data partner withdrew permission to use this dataset before the run.",
}


def run_claim(
    run_id: int, expected: set[str], new_status: str | None = None, **fields
) -> ValidationRun | None:
    """Lock the run; return it if its state is one of `expected` (moving it to `new_status`
    with `fields`), else None (missing, already past this stage, or cancelled)."""
    with transaction.atomic():
        run = ValidationRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status not in expected:
            return None
        if new_status and run.status != new_status:
            run.status = new_status
            for key, value in fields.items():
                setattr(run, key, value)
            run.save()
        return run


def run_advance(
    run: ValidationRun,
    *,
    from_status: str,
    to_status: str,
    action: str,
    stage: str,
    seconds: float,
    payload: dict,
    next_task: str | None,
) -> bool:
    """Move the run from `from_status` to `to_status` under its row lock, record the stage's
    seconds, emit `action`, and queue the task named `next_task` on commit. False (and nothing
    written) when the run is no longer in `from_status`: another delivery advanced it, or it
    was cancelled or failed."""
    with transaction.atomic():
        locked = ValidationRun.objects.select_for_update().get(pk=run.pk)
        if locked.status != from_status:
            return False
        locked.status = to_status
        locked.stage_seconds = {**locked.stage_seconds, stage: round(seconds, 3)}
        locked.save()
        audit_record(actor=None, action=action, target=locked, payload=payload)
        if next_task is not None:
            enqueue_on_commit(next_task, run_id=run.pk)
        if to_status in SCORED_STATUSES and from_status not in SCORED_STATUSES:
            _comparisons_scored(locked)
    return True


def _comparisons(run: ValidationRun):
    """The comparisons this run is part of, not yet final, locked (in id order)."""
    return (
        ComparisonRun.objects.select_for_update()
        .filter(Q(baseline=run) | Q(candidate=run))
        .exclude(status__in=ComparisonRun.TERMINAL)
        .order_by("pk")
    )


def _comparisons_scored(run: ValidationRun) -> None:
    """The run has been scored (inside the transaction that says so): queue the paired
    analysis of each comparison whose other run is scored too. The comparison's row lock
    orders two runs that finish scoring at once, so the later one sees the earlier's commit."""
    for comparison in _comparisons(run):
        other_id = (
            comparison.candidate_id if comparison.baseline_id == run.pk else comparison.baseline_id
        )
        other = ValidationRun.objects.filter(pk=other_id).values_list("status", flat=True).first()
        if other in SCORED_STATUSES:
            enqueue_on_commit(task_names.COMPARISON_SCORE, comparison_id=comparison.pk)


def run_in_status(run_id: int, status: str) -> bool:
    """Whether the run is in `status` now (a plain read: stages ask it between batches, and a
    cancel or failure that lands after the read stops them at the next batch)."""
    return ValidationRun.objects.filter(pk=run_id, status=status).exists()


@transaction.atomic
def run_fail(*, run_id: int, category: str, detail: str = "") -> None:
    """Mark a run failed with a message safe for its vendor; details stay for reviewers.
    A run already final is left as it is. Emits RUN_FAILED."""
    run = ValidationRun.objects.select_for_update().filter(pk=run_id).first()
    if run is None or run.status in ValidationRun.TERMINAL:
        return
    run.status = Status.FAILED
    run.error_public = PUBLIC_FAILURE.get(category, "The run failed.")
    run.error_detail = detail[-8000:]
    run.failure_category = category[:32]
    run.finished_at = timezone.now()
    run.save()
    audit_record(
        actor=None, action=AuditAction.RUN_FAILED, target=run, payload={"category": category}
    )
    run_comparisons_fail(run, f"failed: {run.error_public}")


def run_comparisons_fail(run: ValidationRun, what: str) -> None:
    """Inside the transaction that ends `run` (failed or cancelled): each comparison it is part
    of cannot be scored and fails, saying which run and why. Emits COMPARISON_FAILED."""
    for comparison in _comparisons(run):
        role = "baseline" if comparison.baseline_id == run.pk else "candidate"
        comparison.status = ComparisonRun.Status.FAILED
        comparison.error_public = f"The {role} run {what}"[:500]
        comparison.save(update_fields=["status", "error_public"])
        audit_record(
            actor=None,
            action=AuditAction.COMPARISON_FAILED,
            target=comparison,
            payload={"run": run.pk, "role": role, "status": run.status},
        )
