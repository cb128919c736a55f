"""Vendor model packages: intake (validated, content-addressed, immutable) and review."""

import hashlib
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from validation.errors import ApplicationError, PermissionDenied
from validation.models import ModelPackage, Organisation, Role
from validation.packaging import PackageError, manifest_errors, read_package_contents
from validation.selectors import is_validation_team, org_ids_of
from validation.services.package_smoke import SmokeResult, package_smoke_test
from validation.storage import media_put, package_relpath


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
    """Validate an uploaded package archive and store it content-addressed. `upload` is a
    binary file object. Nothing is stored unless every check passes; a rejection is audited
    (PACKAGE_REJECTED_AT_INTAKE) and raised as a 4xx with the reason. Emits PACKAGE_SUBMITTED."""
    vendor = _vendor_of(actor, vendor)
    limit = settings.PACKAGE_MAX_BYTES
    with tempfile.TemporaryDirectory(prefix="blindspot-intake-") as tmp:
        staged = Path(tmp) / "upload.tar"
        digest, size = hashlib.sha256(), 0
        with open(staged, "wb") as out:
            while chunk := upload.read(1024 * 1024):
                size += len(chunk)
                if size > limit:
                    _reject(actor, vendor, f"The archive is larger than the {limit} byte limit.")
                digest.update(chunk)
                out.write(chunk)
        sha256 = digest.hexdigest()
        try:
            manifest, model_bytes, model_format = read_package_contents(
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
        try:
            smoke = package_smoke_test(
                sha256=sha256, manifest=manifest, model_bytes=model_bytes, model_format=model_format
            )
        except ApplicationError as exc:
            if exc.status_code >= 500:
                raise
            _reject(
                actor, vendor, exc.message.removeprefix("Smoke test failed: "), errors=exc.errors
            )
        return _package_store(
            actor=actor,
            vendor=vendor,
            staged=staged,
            sha256=sha256,
            size=size,
            manifest=manifest,
            model_format=model_format,
            smoke=smoke,
        )


def _reject(actor, vendor, message: str, errors=None):
    """Audit the refusal in its own transaction (it must outlive the error) and raise."""
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=AuditAction.PACKAGE_REJECTED_AT_INTAKE,
            target=vendor,
            payload={"reason": message[:500], "errors": (errors or [])[:50]},
        )
    raise ApplicationError(f"Package rejected: {message}", errors=errors, audited=True)


def _refuse_duplicates(*, vendor, sha256: str, manifest: dict) -> None:
    # Judged within the vendor: another vendor's identical bytes must not answer differently
    # from novel bytes (that would confirm what a competitor submitted). Both rows then name
    # one content-addressed file, which is never deleted while a package names it.
    if ModelPackage.objects.filter(vendor=vendor, sha256=sha256).exists():
        raise ApplicationError(
            "This exact package (same SHA-256) has already been submitted.", status_code=409
        )
    name, version = manifest["name"], manifest["version"]
    if ModelPackage.objects.filter(vendor=vendor, name=name, version=version).exists():
        raise ApplicationError(
            f"{name} {version} already exists; a changed model needs a new version.",
            status_code=409,
        )


@transaction.atomic
def _package_store(
    *, actor, vendor, staged, sha256, size, manifest, model_format, smoke: SmokeResult
) -> ModelPackage:
    # Checked again under the transaction: two identical uploads may race through the smoke test.
    _refuse_duplicates(vendor=vendor, sha256=sha256, manifest=manifest)
    name, version = manifest["name"], manifest["version"]
    package = ModelPackage.objects.create(
        vendor=vendor,
        name=name,
        version=version,
        sha256=sha256,
        size_bytes=size,
        manifest=manifest,
        model_format=model_format,
        submitted_by=actor,
        smoke_load_seconds=smoke.load_seconds,
        smoke_batch_seconds=smoke.batch_seconds,
    )
    # Written last and named by content: a rollback leaves at worst an orphan with the same
    # bytes a retry would write, never a half-written or mislabelled file.
    media_put(package_relpath(sha256), staged)
    audit_record(
        actor=actor,
        action=AuditAction.PACKAGE_SUBMITTED,
        target=package,
        payload={
            "sha256": sha256,
            "name": name,
            "version": version,
            "smoke": {
                "load_seconds": smoke.load_seconds,
                "batch_seconds": smoke.batch_seconds,
                "isolation": smoke.isolation,
            },
        },
    )
    return package


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
