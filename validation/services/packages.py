"""Vendor model packages: intake (validated, content-addressed, immutable) and review."""

import hashlib
import os
import tempfile
import traceback
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from config.celery import enqueue_on_commit
from validation import task_names
from validation.errors import ApplicationError, PermissionDenied
from validation.models import ModelPackage, Organisation, Role
from validation.packaging import PackageError, manifest_errors, read_package_contents
from validation.selectors import is_validation_team, org_ids_of
from validation.services.package_smoke import SmokeFailure, SmokeResult, package_smoke_test
from validation.storage import media_put, package_relpath, package_staging_path


def _vendor_of(actor, vendor: Organisation | None) -> Organisation:
    vendor_ids = org_ids_of(actor, Role.VENDOR_MEMBER)
    if vendor is None:
        if len(vendor_ids) != 1:
            raise PermissionDenied(
                "Only a member of exactly one vendor may submit without naming it."
            )
        return Organisation.objects.get(pk=next(iter(vendor_ids)))
    if vendor.pk not in vendor_ids:
        raise PermissionDenied("You are not a member of that vendor.")
    return vendor


def package_submit(*, actor, upload, vendor: Organisation | None = None) -> ModelPackage:
    """Receive an uploaded package archive (`upload`, a binary file object): the cheap checks
    (size, archive reading, manifest schema, duplicates) run here; a refusal is audited
    (PACKAGE_REJECTED_AT_INTAKE) and raised as a 4xx with the reason, and nothing is stored.
    A package that passes is created in status `testing`, its bytes kept in the private staging
    place (`storage.package_staging_path`), and the smoke test is queued on commit
    (`package_smoke_execute`, which emits PACKAGE_SUBMITTED or PACKAGE_REJECTED_AT_INTAKE)."""
    vendor = _vendor_of(actor, vendor)
    limit = settings.PACKAGE_MAX_BYTES
    staging = Path(settings.PACKAGE_STAGING_ROOT)
    staging.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=staging, prefix=".incoming-", suffix=".tar")
    staged = Path(tmp)
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            while chunk := upload.read(1024 * 1024):
                size += len(chunk)
                if size > limit:
                    _reject(actor, vendor, f"The archive is larger than the {limit} byte limit.")
                digest.update(chunk)
                out.write(chunk)
        sha256 = digest.hexdigest()
        try:
            manifest, _model_bytes, model_format = read_package_contents(
                staged,
                max_archive_bytes=limit,
                max_total_bytes=settings.PACKAGE_MAX_UNPACKED_BYTES,
            )
        except PackageError as exc:
            _reject(actor, vendor, exc.reason)
        errors = manifest_errors(manifest, model_format=model_format)
        if errors:
            _reject(
                actor, vendor, f"the manifest is invalid ({len(errors)} problem(s))", errors=errors
            )
        _refuse_duplicates(vendor=vendor, sha256=sha256, manifest=manifest)
        if manifest.get("supersedes") is not None and _predecessor(vendor, manifest) is None:
            _reject(actor, vendor, _unknown_predecessor(manifest))
        return _package_receive(
            actor=actor,
            vendor=vendor,
            staged=staged,
            sha256=sha256,
            size=size,
            manifest=manifest,
            model_format=model_format,
        )
    finally:
        staged.unlink(missing_ok=True)  # moved to the package's staging path when received


@transaction.atomic
def _package_receive(
    *, actor, vendor, staged: Path, sha256, size, manifest, model_format
) -> ModelPackage:
    # Checked again in the transaction: two identical uploads may race through the checks, and
    # the database's unique constraints have the last word.
    _refuse_duplicates(vendor=vendor, sha256=sha256, manifest=manifest)
    predecessor = _predecessor(vendor, manifest)
    if manifest.get("supersedes") is not None and predecessor is None:
        raise ApplicationError(f"Package rejected: {_unknown_predecessor(manifest)}")
    try:
        with transaction.atomic():
            package = ModelPackage.objects.create(
                vendor=vendor,
                name=manifest["name"],
                version=manifest["version"],
                sha256=sha256,
                size_bytes=size,
                manifest=manifest,
                model_format=model_format,
                submitted_by=actor,
                status=ModelPackage.Status.TESTING,
                supersedes=predecessor,
            )
    except IntegrityError:
        _refuse_duplicates(vendor=vendor, sha256=sha256, manifest=manifest)
        raise
    # Moved before commit so that the task always finds it; a rollback of a caller's outer
    # transaction leaves an orphan in the staging place, never a `testing` row without bytes.
    os.replace(staged, package_staging_path(package.pk))
    enqueue_on_commit(task_names.PACKAGE_SMOKE_TEST, package_id=package.pk)
    return package


def _reject(actor, vendor, message: str, errors=None):
    """Audit the refusal in its own transaction (it must outlive the error) and raise."""
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=AuditAction.PACKAGE_REJECTED_AT_INTAKE,
            target=vendor,
            payload={"reason": message[:500], "errors": (errors or [])[:50]},
        )
    raise ApplicationError(
        f"Package rejected: {message}", errors=errors, audited=True, errors_at="manifest"
    )


def _refuse_duplicates(*, vendor, sha256: str, manifest: dict) -> None:
    # Judged within the vendor: another vendor's identical bytes must not answer differently
    # from novel bytes (that would confirm what a competitor submitted). Both rows then name
    # one content-addressed file, which is never deleted while a package names it. A refused
    # package blocks nothing.
    current = ModelPackage.objects.exclude(status=ModelPackage.Status.REFUSED)
    if current.filter(vendor=vendor, sha256=sha256).exists():
        raise ApplicationError(
            "This exact package (same SHA-256) has already been submitted.", status_code=409
        )
    name, version = manifest["name"], manifest["version"]
    taken = current.filter(vendor=vendor, name=name, version=version).first()
    if taken is not None:
        raise ApplicationError(
            f"{name} {version} was already submitted with other bytes (SHA-256 "
            f"{taken.sha256[:12]}...); a changed model needs a new version number.",
            status_code=409,
        )


def _predecessor(vendor: Organisation, manifest: dict) -> ModelPackage | None:
    """The package the manifest's `supersedes` names: this vendor's model of the same name at
    that version (not one the smoke test refused: that version was never submitted)."""
    version = manifest.get("supersedes")
    if version is None:
        return None
    return (
        ModelPackage.objects.exclude(status=ModelPackage.Status.REFUSED)
        .filter(vendor=vendor, name=manifest["name"], version=version)
        .first()
    )


def _unknown_predecessor(manifest: dict) -> str:
    return (
        f"it supersedes {manifest['name']} {manifest['supersedes']}, which this vendor never "
        f"submitted under that name; name a version you submitted, or leave out `supersedes`."
    )


# What the vendor reads when the smoke test could not be completed for a reason of ours.
_NOT_TESTED = {
    "no-isolation": "No sandbox was available to test the package; submit it again later.",
    "lost": "The uploaded archive was lost before it could be tested; submit it again.",
    "worker-lost": (
        "The smoke test was interrupted {attempts} times without finishing; submit it again."
    ),
    "internal": "The smoke test failed for a reason on our side; submit the package again.",
}


def package_smoke_execute(*, package_id: int) -> None:
    """The smoke test of a package in `testing` (the `package_smoke_test` task, queue `gpu`):
    claims it under a row lock (counting the delivery), runs `package_smoke_test` in the
    sandboxed runner outside any transaction, then, under the lock again and only if the
    package is still `testing`, stores it content-addressed as `submitted` (PACKAGE_SUBMITTED)
    or marks it `refused` with a vendor-safe category and reasons and the runner's detail for
    the team (PACKAGE_REJECTED_AT_INTAKE). A re-delivered task finds the package decided and
    returns; a delivery whose worker was lost is re-delivered (acks late), and after
    PACKAGE_SMOKE_MAX_ATTEMPTS claims the package is refused rather than tested forever."""
    with transaction.atomic():
        package = (
            ModelPackage.objects.select_for_update()
            .filter(pk=package_id, status=ModelPackage.Status.TESTING)
            .first()
        )
        if package is None:
            return
        if package.smoke_attempts >= settings.PACKAGE_SMOKE_MAX_ATTEMPTS:
            _smoke_refuse(
                package,
                "worker-lost",
                _NOT_TESTED["worker-lost"].format(attempts=package.smoke_attempts),
                detail="the smoke-test task was delivered again after each interruption",
            )
            return
        package.smoke_attempts += 1
        package.save(update_fields=["smoke_attempts"])
    staged = package_staging_path(package.pk)
    if not staged.is_file():
        _smoke_decide(package_id, refusal=("lost", _NOT_TESTED["lost"], f"{staged} is missing"))
        return
    try:
        manifest, model_bytes, model_format = read_package_contents(
            staged,
            max_archive_bytes=settings.PACKAGE_MAX_BYTES,
            max_total_bytes=settings.PACKAGE_MAX_UNPACKED_BYTES,
        )
        smoke = package_smoke_test(
            sha256=package.sha256,
            manifest=manifest,
            model_bytes=model_bytes,
            model_format=model_format,
        )
    except SmokeFailure as exc:
        _smoke_decide(package_id, refusal=(exc.category, exc.message, exc.detail))
        return
    except ApplicationError as exc:
        category = "no-isolation" if exc.status_code == 503 else "internal"
        _smoke_decide(package_id, refusal=(category, _NOT_TESTED[category], exc.message))
        return
    except Exception:
        # Our bug, not the vendor's: refused with a plain message (the team reads the
        # traceback), never left `testing`; raised again for the worker's log.
        _smoke_decide(
            package_id, refusal=("internal", _NOT_TESTED["internal"], traceback.format_exc())
        )
        raise
    _smoke_decide(package_id, smoke=smoke)


@transaction.atomic
def _smoke_decide(
    package_id: int,
    *,
    smoke: SmokeResult | None = None,
    refusal: tuple[str, str, str] | None = None,
) -> None:
    package = (
        ModelPackage.objects.select_for_update()
        .filter(pk=package_id, status=ModelPackage.Status.TESTING)
        .first()
    )
    if package is None:  # decided by another delivery meanwhile
        return
    if refusal is not None:
        _smoke_refuse(package, *refusal)
        return
    assert smoke is not None
    staged = package_staging_path(package.pk)
    package.status = ModelPackage.Status.SUBMITTED
    package.smoke_load_seconds = smoke.load_seconds
    package.smoke_batch_seconds = smoke.batch_seconds
    package.save(update_fields=["status", "smoke_load_seconds", "smoke_batch_seconds"])
    # Named by content: a rollback leaves at worst an orphan with the same bytes a retry would
    # write, never a half-written or mislabelled file.
    media_put(package_relpath(package.sha256), staged)
    audit_record(
        actor=package.submitted_by,
        action=AuditAction.PACKAGE_SUBMITTED,
        target=package,
        payload={
            "sha256": package.sha256,
            "name": package.name,
            "version": package.version,
            "smoke": {
                "load_seconds": smoke.load_seconds,
                "batch_seconds": smoke.batch_seconds,
                "isolation": smoke.isolation,
            },
        },
    )
    transaction.on_commit(lambda: staged.unlink(missing_ok=True))


def _smoke_refuse(package: ModelPackage, category: str, reason: str, detail: str = "") -> None:
    """Mark a locked `testing` package refused (inside the caller's transaction): the vendor
    reads `category` and `reason`; `detail` is for the team only, and so is left out of the
    audit payload (auditors read the package)."""
    package.status = ModelPackage.Status.REFUSED
    package.refusal_category = category
    package.refusal_reasons = [reason]
    package.refusal_detail = detail
    package.save(update_fields=["status", "refusal_category", "refusal_reasons", "refusal_detail"])
    audit_record(
        actor=package.submitted_by,
        action=AuditAction.PACKAGE_REJECTED_AT_INTAKE,
        target=package,
        payload={"reason": reason[:500], "category": category, "errors": []},
    )
    staged = package_staging_path(package.pk)
    transaction.on_commit(lambda: staged.unlink(missing_ok=True))


@transaction.atomic
def package_review(*, actor, package: ModelPackage, approve: bool, note: str = "") -> ModelPackage:
    """A reviewer approves or rejects a submitted package. Emits PACKAGE_APPROVED/REJECTED."""
    if not is_validation_team(actor):
        raise PermissionDenied("Only the validation team reviews packages.")
    package = ModelPackage.objects.select_for_update().get(pk=package.pk)
    if package.status != ModelPackage.Status.SUBMITTED:
        raise ApplicationError(f"The package has already been {package.status}.", status_code=409)
    if not approve and not note.strip():
        raise ApplicationError("A rejection needs a reason the vendor can read.")
    package.status = ModelPackage.Status.APPROVED if approve else ModelPackage.Status.REJECTED
    package.reviewed_by, package.reviewed_at, package.review_note = actor, timezone.now(), note
    package.save()
    action = AuditAction.PACKAGE_APPROVED if approve else AuditAction.PACKAGE_REJECTED
    audit_record(actor=actor, action=action, target=package, payload={"note": note})
    return package
