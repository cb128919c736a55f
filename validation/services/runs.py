"""Validation runs: start, then the pipeline stages that the tasks drive.

Each stage claims the run under a row lock (state check, so a re-delivered task returns early),
does its heavy work outside any transaction, writes results under unique constraints (a repeat
writes nothing twice), then advances the state and queues the next stage on commit.
"""

import functools
import time
import traceback
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from config.celery import enqueue_on_commit, raise_if_transient
from reports.services import report_draft
from validation import task_names
from validation.dicom.pixels import InputSpec, batch_inputs
from validation.errors import ApplicationError, PermissionDenied
from validation.models import (
    DatasetVersion,
    Explanation,
    ModelPackage,
    Protocol,
    ValidationRun,
)
from validation.runner.client import RunnerError
from validation.runner_pool import runner_discard, runner_for
from validation.selectors import (
    active_grant_for,
    active_grants,
    cases_for_run,
    dataset_version_training_overlap,
    is_validation_team,
    run_exemplar_cases,
    run_exemplars_allowed,
    runs_used,
)
from validation.services.protocols import protocol_lock
from validation.services.run_stages import (
    PUBLIC_FAILURE,
    run_advance,
    run_claim,
    run_comparisons_fail,
    run_fail,
    run_in_status,
)
from validation.services.scoring import run_compute_metrics
from validation.services.shards import explanation_row, shards_dispatch, shards_plan
from validation.storage import case_dicom_bytes

Status = ValidationRun.Status


def _stage(func):
    """A pipeline stage that fails its run, rather than leaving it in limbo, on any error it did
    not expect (a lost database connection is retried instead). The traceback goes to reviewers;
    the error is re-raised for the task's log."""

    @functools.wraps(func)
    def wrapper(*, run_id: int, **kwargs):
        try:
            return func(run_id=run_id, **kwargs)
        except Exception as exc:
            raise_if_transient(exc)  # a database restart: the task retries the stage
            run_fail(run_id=run_id, category="internal-error", detail=traceback.format_exc())
            raise

    return wrapper


@dataclass(frozen=True)
class PreflightCheck:
    """One pre-flight check of a run: what it checks, whether it passed, and the sentence shown
    for it. A failed `blocking` check stops `run_start` with `message` (as an ApplicationError
    with `status_code`); a non-blocking one (a warning) informs and stops nothing."""

    key: str
    label: str
    ok: bool
    message: str
    blocking: bool = True
    status_code: int = 400


def _run_caps(*, dataset_version, vendor, protocol: Protocol, granted: bool) -> list[dict]:
    """Test-set reuse is capped twice: by the protocol (`max_runs_per_vendor`) and by the
    partner's grants (`max_runs`; the most generous active grant that applies). Cancelled runs
    and the service's own failures do not count. Each cap with the runs used against it."""
    used = runs_used(dataset_version=dataset_version, vendor=vendor)
    caps = []
    if protocol.document.get("max_runs_per_vendor") is not None:
        caps.append({"cap": protocol.document["max_runs_per_vendor"], "who": "the protocol allows"})
    grant_caps = list(
        active_grants(
            dataset_version=dataset_version, vendor=vendor, protocol=protocol
        ).values_list("max_runs", flat=True)
    )
    limited = [cap for cap in grant_caps if cap is not None]
    if granted and len(limited) == len(grant_caps):  # no grant without a cap
        caps.append({"cap": max(limited), "who": "the partner's grant allows"})
    return [{**cap, "used": used} for cap in caps]


def _caps_check(caps: list[dict], used: int) -> PreflightCheck:
    for cap in caps:
        if cap["used"] >= cap["cap"]:
            return PreflightCheck(
                "caps",
                "Run caps",
                False,
                f"This vendor has used this dataset version {cap['used']} time(s); "
                f"{cap['who']} {cap['cap']}.",
                status_code=409,
            )
    if not caps:
        return PreflightCheck(
            "caps",
            "Run caps",
            True,
            f"{used} run(s) used; neither the protocol nor the grant caps them.",
        )
    parts = "; ".join(f"{c['used']} of {c['cap']} {c['who']}" for c in caps)
    return PreflightCheck("caps", "Run caps", True, f"Runs used: {parts}.")


def _training_check(*, package: ModelPackage, dataset_version: DatasetVersion) -> PreflightCheck:
    declared = (package.manifest or {}).get("training_data") or {}
    overlap = dataset_version_training_overlap(
        dataset_version,
        sites=declared.get("sites") or [],
        scanners=declared.get("scanners") or [],
    )
    label = "Cases from declared training sites or scanners"
    if not declared.get("sites") and not declared.get("scanners"):
        return PreflightCheck(
            "training", label, True, "The vendor declared no training sites or scanners.", False
        )
    if overlap["count"] == 0:
        return PreflightCheck(
            "training",
            label,
            True,
            f"None of the {overlap['total']} cases comes from a site or scanner the vendor "
            "declared for training.",
            False,
        )
    return PreflightCheck(
        "training",
        label,
        False,
        f"{overlap['count']} of {overlap['total']} cases ({overlap['share']:.0%}) come from "
        "sites or scanners the vendor declared for training: the result may overstate how the "
        "model does on data it has not seen.",
        False,
    )


def run_preflight(
    *,
    package: ModelPackage,
    dataset_version: DatasetVersion,
    protocol: Protocol,
    warnings: bool = True,
) -> list[PreflightCheck]:
    """Every check `run_start` makes before it queues a run, in its order (approval, seal,
    grant, caps), each with pass or fail and its sentence, then the warning on cases from the
    vendor's declared training sites or scanners (shown, never blocking). The launcher shows
    them before anything starts; `run_start` refuses on the first failed blocking one (and
    skips the warnings, `warnings=False`, which read every case's attributes)."""
    vendor = package.vendor
    checks = [
        PreflightCheck(
            "approval",
            "Package approved",
            package.status == ModelPackage.Status.APPROVED,
            "The package is approved for validation."
            if package.status == ModelPackage.Status.APPROVED
            else "The package has not been approved for validation.",
        ),
        PreflightCheck(
            "seal",
            "Dataset version sealed",
            dataset_version.status == DatasetVersion.Status.SEALED,
            "The dataset version is sealed."
            if dataset_version.status == DatasetVersion.Status.SEALED
            else "The dataset version is not sealed.",
        ),
    ]
    grant = active_grant_for(dataset_version=dataset_version, vendor=vendor, protocol=protocol)
    checks.append(
        PreflightCheck(
            "grant",
            "Grant for this vendor and protocol",
            grant is not None,
            f"The partner granted {vendor.name} use of this version under this protocol."
            if grant is not None
            else "The partner has not granted this vendor use of this dataset under this protocol.",
        )
    )
    caps = _run_caps(
        dataset_version=dataset_version, vendor=vendor, protocol=protocol, granted=grant is not None
    )
    checks.append(_caps_check(caps, runs_used(dataset_version=dataset_version, vendor=vendor)))
    if warnings:
        checks.append(_training_check(package=package, dataset_version=dataset_version))
    return checks


@transaction.atomic
def run_start(
    *, actor, package: ModelPackage, dataset_version: DatasetVersion, protocol: Protocol
) -> ValidationRun:
    """Queue a blind validation. Preconditions: the actor is on the validation team, the
    package is approved, the dataset version is sealed and granted to the vendor, and the
    vendor is under the run caps: `run_preflight`, the checks the launcher shows. Locks the
    protocol on first use. Emits RUN_QUEUED and DATASET_USED (the partner's usage log)."""
    if not is_validation_team(actor):
        raise PermissionDenied("Only the validation team starts runs.")
    checks = run_preflight(
        package=package, dataset_version=dataset_version, protocol=protocol, warnings=False
    )
    for check in checks:
        if check.blocking and not check.ok:
            raise ApplicationError(check.message, status_code=check.status_code)
    protocol = protocol_lock(actor=actor, protocol=protocol)
    run = ValidationRun.objects.create(
        package=package,
        dataset_version=dataset_version,
        protocol=protocol,
        requested_by=actor,
        cases_total=dataset_version.cases.count(),
    )
    audit_record(
        actor=actor,
        action=AuditAction.RUN_QUEUED,
        target=run,
        payload={
            "package": package.sha256,
            "dataset_version": dataset_version.pk,
            "protocol": protocol.sha256,
        },
    )
    audit_record(
        actor=actor,
        action=AuditAction.DATASET_USED,
        target=dataset_version,
        payload={
            "run": run.pk,
            "package": f"{package.name} {package.version}",
            "vendor": package.vendor.name,
            "protocol": str(protocol),
        },
    )
    enqueue_on_commit(task_names.RUN_INFER, run_id=run.pk)
    return run


@transaction.atomic
def run_cancel(*, actor, run: ValidationRun) -> ValidationRun:
    """A reviewer stops a run. A shard notices within RUN_WATCH_INTERVAL_S, even mid-batch: its
    watcher kills the model process (`services.shards`); other stages stop at their next batch.
    Emits RUN_CANCELLED."""
    if not is_validation_team(actor):
        raise PermissionDenied("Only the validation team cancels runs.")
    run = ValidationRun.objects.select_for_update().get(pk=run.pk)
    if run.status in ValidationRun.TERMINAL or run.status == Status.AWAITING_SIGNATURE:
        raise ApplicationError(f"A run that is {run.status} cannot be cancelled.", status_code=409)
    run.status, run.finished_at = Status.CANCELLED, timezone.now()
    run.save()
    audit_record(actor=actor, action=AuditAction.RUN_CANCELLED, target=run)
    run_comparisons_fail(run, "was cancelled.")
    return run


def _batches(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


@_stage
def run_infer(*, run_id: int) -> None:
    """Start inference: claim the run (queued -> running) and emit RUN_STARTED in the same
    transaction, so a re-delivered task, which finds the run running, never writes it twice;
    stop the run instead if the grant was revoked meanwhile; cut it into shards and queue them
    (`services.shards`); the shard that finishes last moves the run to scoring. A re-delivered
    task queues the unfinished shards again, which costs nothing: predictions are unique per
    (run, case)."""
    with transaction.atomic():
        run = ValidationRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status not in (Status.QUEUED, Status.RUNNING):
            return
        if run.status == Status.QUEUED:
            grant = active_grant_for(
                dataset_version=run.dataset_version,
                vendor=run.package.vendor,
                protocol=run.protocol,
            )
            if grant is None:
                run_fail(
                    run_id=run_id,
                    category="grant-revoked",
                    detail="The partner revoked the grant before inference started.",
                )
                return
            run.status, run.started_at = Status.RUNNING, timezone.now()
            run.save(update_fields=["status", "started_at"])
            audit_record(actor=None, action=AuditAction.RUN_STARTED, target=run)
    with transaction.atomic():
        shards = shards_plan(run)
        if not shards:
            run_fail(run_id=run_id, category="internal-error", detail="The dataset has no cases.")
            return
        shards_dispatch(run, shards)


@_stage
def run_score(*, run_id: int) -> None:
    """Compute and store the aggregate metrics. Moves scoring -> explaining. Emits RUN_SCORED."""
    run = run_claim(run_id, {Status.SCORING})
    if run is None:
        return
    began = time.perf_counter()
    summary = run_compute_metrics(run)
    run_advance(
        run,
        from_status=Status.SCORING,
        to_status=Status.EXPLAINING,
        action=AuditAction.RUN_SCORED,
        stage="scoring",
        seconds=time.perf_counter() - began,
        payload=summary,
        next_task=task_names.RUN_EXPLAIN,
    )


@_stage
def run_explain(*, run_id: int, batch_size: int = 32) -> None:
    """Grad-CAM for the cases the protocol names (default: all readable positives) and, where
    the grant allows exemplar images, for the report's exemplars (`stats.exemplars`: true
    positives, false negatives and false positives), with pointing-game and ROI energy
    agreement. Maps already stored are skipped, so a repeat computes nothing twice. Moves
    explaining -> reporting. Emits RUN_EXPLAINED."""
    run = run_claim(run_id, {Status.EXPLAINING})
    if run is None:
        return
    began = time.perf_counter()
    manifest = run.package.manifest
    spec = InputSpec.from_dict(manifest["input"])
    wanted = run.protocol.document.get("explain", {}).get("cases", "positives")
    if manifest.get("gradcam_target_layer") is None:
        wanted = "none"  # ONNX packages: no module tree to explain (the report says so)
    done = set(run.explanations.values_list("case_id", flat=True))
    scored = set(run.predictions.filter(error_category="").values_list("case_id", flat=True))
    # The report's exemplars (chosen now that outcomes are known) need maps too: false
    # positives are reference-negative, so the shards, which explain positives, made none.
    exemplars: set[int] = set()
    if wanted != "none" and run_exemplars_allowed(run):
        exemplars = {case.pk for _pick, case in run_exemplar_cases(run)[0]}
    cases = [
        c
        for c in cases_for_run(run)
        if c.pk in scored
        and c.pk not in done
        and ((wanted == "positives" and c.label == 1) or c.pk in exemplars)
    ]
    try:
        for batch in _batches(cases, batch_size):
            if not run_in_status(run_id, Status.EXPLAINING):
                return
            x, errors = batch_inputs([case_dicom_bytes(c) for c in batch], spec)
            _logits, cams = runner_for(run.package).gradcam(
                x,
                manifest["gradcam_target_layer"],
                manifest["output"]["positive_index"],
                reshape=manifest.get("gradcam_reshape"),
            )
            rows = [
                explanation_row(run, case, cam)
                for case, cam, error in zip(batch, cams, errors, strict=True)
                if error is None
            ]
            Explanation.objects.bulk_create(rows, ignore_conflicts=True)
    except RunnerError as exc:
        # The validation stands without its explanations: the report says which limit stopped
        # them; the maps already stored stay. The runner that failed is not reused.
        if exc.category in {"crash", "timeout", "oom"}:
            runner_discard(run.package)
        failure = explain_failure_describe(exc)
        with transaction.atomic():
            if not ValidationRun.objects.filter(pk=run_id, status=Status.EXPLAINING).update(
                explain_failure=failure, error_detail=exc.detail[-8000:]
            ):
                return
    else:
        failure = {}
    n_maps = run.explanations.count()
    run_advance(
        run,
        from_status=Status.EXPLAINING,
        to_status=Status.REPORTING,
        action=AuditAction.RUN_EXPLAINED,
        stage="explaining",
        seconds=time.perf_counter() - began,
        payload={
            "maps": n_maps,
            "target_layer": manifest.get("gradcam_target_layer"),
            **({"failed": failure} if failure else {}),
        },
        next_task=task_names.RUN_REPORT,
    )


def explain_failure_describe(exc: RunnerError) -> dict:
    """A failed explanation stage as the report states it: the stage, the category, a message
    safe for the vendor, and the limit the model hit with its value (None when no limit was
    involved, e.g. a crash)."""
    limit = None
    if exc.category == "oom":
        mib = settings.RUNNER_MEMORY_LIMIT_BYTES / 2**20
        limit = {"name": "memory (RLIMIT_DATA)", "value": f"{mib:.0f} MiB"}
    elif exc.category == "timeout" and "CPU time limit" in exc.detail:
        limit = {"name": "CPU time (RLIMIT_CPU)", "value": f"{settings.RUNNER_CPU_LIMIT_S:g} s"}
    elif exc.category == "timeout":
        limit = {"name": "time per batch", "value": f"{settings.RUNNER_BATCH_TIMEOUT_S:g} s"}
    return {
        "stage": "explaining",
        "category": exc.category,
        "message": PUBLIC_FAILURE.get(exc.category, "The model runner failed."),
        "limit": limit,
    }


@_stage
def run_report(*, run_id: int) -> None:
    """Assemble the report document. Moves reporting -> awaiting-signature; the document and
    the state change commit together. Emits REPORT_DRAFTED."""
    began = time.perf_counter()
    with transaction.atomic():
        run = ValidationRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != Status.REPORTING:
            return
        run.finished_at = timezone.now()
        report_draft(run=run)
        run.stage_seconds = {
            **run.stage_seconds,
            "reporting": round(time.perf_counter() - began, 3),
        }
        run.status = Status.AWAITING_SIGNATURE
        run.save()
