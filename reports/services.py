"""Drafting, signing (21 CFR Part 11), issuing and downloading reports.

Signing is short: the signature and its audit event, one row lock. The last required signature
marks the report `issuing` and queues `report_issue` on the `reports` queue after the commit;
that task renders the PDF with no lock held, writes the files atomically and issues the report
in one transaction (a re-delivered task finds it issued and returns; a failure removes the
files it wrote)."""

import hashlib
import logging
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from config.celery import enqueue_on_commit
from reports.canonical import canonical_json, content_sha256, document_sha256
from reports.comparison_document import comparison_document_build
from reports.dicom import NotAReportObject
from reports.document import report_document_build
from reports.models import Report, Signature
from reports.page_images import PageImageError, report_page_images, report_page_images_made
from reports.rendering import render_pdf
from reports.selectors import PdfVerification, report_dicom, report_verification
from reports.signing import public_key_fingerprint, sign_digest
from validation import task_names
from validation.errors import ApplicationError, PermissionDenied
from validation.models import ComparisonRun, Membership, Organisation, Role, ValidationRun
from validation.selectors import is_validation_team
from validation.storage import media_path, media_put

log = logging.getLogger(__name__)

# Which role may give which signature meaning.
MEANING_ROLES: dict[str, str] = {
    Signature.Meaning.REVIEWED: Role.REVIEWER,
    Signature.Meaning.APPROVED: Role.QA_APPROVER,
}
# The order in which signatures are given (21 CFR 11.50: the meaning of each signature): the
# QA approval approves a reviewed report, so the review comes first.
SIGNING_ORDER: tuple[str, ...] = (Signature.Meaning.REVIEWED, Signature.Meaning.APPROVED)


def signatures_missing(required: list[str], given: set[str]) -> list[str]:
    """The required signature meanings not yet given, in the order they must be given."""
    rank = {meaning: i for i, meaning in enumerate(SIGNING_ORDER)}
    return sorted((m for m in required if m not in given), key=lambda m: rank.get(m, len(rank)))


def report_draft(*, run: ValidationRun) -> Report:
    """Build the report document for a run that has finished its analysis. Must run inside
    the caller's transaction. Idempotent: returns the existing draft. Emits REPORT_DRAFTED."""
    existing = Report.objects.filter(run=run, version=1, comparison__isnull=True).first()
    if existing is not None:
        return existing
    report = _new_version(run, version=1)
    audit_record(
        actor=None,
        action=AuditAction.REPORT_DRAFTED,
        target=report,
        payload={"content_sha256": report.content_sha256},
    )
    return report


def comparison_report_draft(*, comparison: ComparisonRun) -> Report:
    """Build the comparison report of a scored comparison run (its `result` stored). Must run
    inside the caller's transaction. Its `run` is the comparison's candidate run, so the paths
    that scope, list and sign reports by run read it as they read that run's report.
    Idempotent: returns the existing draft. Emits REPORT_DRAFTED."""
    existing = Report.objects.filter(comparison=comparison, version=1).first()
    if existing is not None:
        return existing
    report = _new_version(comparison.candidate, version=1, comparison=comparison)
    audit_record(
        actor=None,
        action=AuditAction.REPORT_DRAFTED,
        target=report,
        payload={"content_sha256": report.content_sha256, "comparison": comparison.pk},
    )
    return report


def _new_version(
    run: ValidationRun,
    *,
    version: int,
    supersedes: Report | None = None,
    reason: str = "",
    comparison: ComparisonRun | None = None,
) -> Report:
    """A report draft built from the run's (or the comparison's) stored results; a correction
    names the version it supersedes and why."""
    if comparison is not None:
        document = comparison_document_build(
            comparison,
            report_ref=f"C-{comparison.pk:06d}",
            version=version,
            generated_at=timezone.now(),
        )
    else:
        document = report_document_build(
            run, report_ref=f"R-{run.pk:06d}", version=version, generated_at=timezone.now()
        )
    if supersedes is not None:
        document["report"]["supersedes"] = {
            "version": supersedes.version,
            "document_sha256": supersedes.issued_document_sha256,
            "reason": reason[:2000],
        }
    return Report.objects.create(
        run=run,
        comparison=comparison,
        version=version,
        supersedes=supersedes,
        document=document,
        content_sha256=content_sha256(document),
        required_signatures=run.protocol.document.get(
            "required_signatures", ["reviewed", "approved"]
        ),
    )


def report_sign(*, actor, report: Report, password: str, meaning: str) -> Signature:
    """Part 11 signature: the signer re-enters their password; the signature records printed
    name, time and meaning and binds to the content hash. One person cannot give two
    signatures on a report, and the QA approval comes only after the reviewer's review. A wrong
    password or an approval before the review is refused and audited
    (REPORT_SIGNATURE_REFUSED). When every required signature is present the report becomes
    `issuing` and `report_issue` is queued on commit; nothing is rendered here. Emits
    REPORT_SIGNED."""
    if not actor.check_password(password):
        _refusal_record(actor, report, meaning, "wrong password")
        raise PermissionDenied("The password is not correct; nothing was signed.", audited=True)
    try:
        return _signature_record(actor=actor, report=report, meaning=meaning)
    except _OutOfOrder as exc:
        _refusal_record(actor, report, meaning, f"out of order; missing: {', '.join(exc.missing)}")
        raise ApplicationError(
            f"The {meaning!r} signature comes after the {' and '.join(map(repr, exc.missing))} "
            f"signature(s), which are missing; nothing was signed.",
            status_code=409,
            audited=True,
        ) from None


def _refusal_record(actor, report: Report, meaning: str, reason: str) -> None:
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=AuditAction.REPORT_SIGNATURE_REFUSED,
            target=report,
            payload={"meaning": str(meaning)[:32], "reason": reason},
        )


class _OutOfOrder(Exception):
    def __init__(self, missing: list[str]) -> None:
        super().__init__(missing)
        self.missing = missing


@transaction.atomic
def _signature_record(*, actor, report: Report, meaning: str) -> Signature:
    report = Report.objects.select_for_update().get(pk=report.pk)
    if report.status != Report.Status.AWAITING_SIGNATURE:
        raise ApplicationError("This report is no longer awaiting signatures.", status_code=409)
    if meaning not in report.required_signatures:
        raise ApplicationError(f"This report does not ask for a {meaning!r} signature.")
    role = MEANING_ROLES[meaning]
    if not Membership.objects.filter(
        user=actor, role=role, organisation__kind=Organisation.Kind.VALIDATOR
    ).exists():
        raise PermissionDenied(f"A {meaning!r} signature needs the {role} role.")
    if report.signatures.filter(signer=actor).exists():
        raise ApplicationError("One person cannot give two signatures on the same report.")
    given = set(report.signatures.values_list("meaning", flat=True))
    if meaning in given:
        raise ApplicationError(
            f"The {meaning!r} signature has already been given.", status_code=409
        )
    missing = signatures_missing(report.required_signatures, given)
    earlier = missing[: missing.index(meaning)]
    if earlier:
        raise _OutOfOrder(earlier)
    signature = Signature.objects.create(
        report=report,
        signer=actor,
        printed_name=actor.get_full_name() or actor.get_username(),
        role=role,
        meaning=meaning,
        content_sha256=report.content_sha256,
        signed_at=timezone.now(),
    )
    audit_record(
        actor=actor,
        action=AuditAction.REPORT_SIGNED,
        target=report,
        payload={"meaning": meaning, "content_sha256": report.content_sha256},
    )
    if set(report.required_signatures) <= given | {meaning}:
        Report.objects.filter(pk=report.pk).update(status=Report.Status.ISSUING)
        enqueue_on_commit(task_names.REPORT_ISSUE, report_id=report.pk)
    return signature


def report_issue(*, report_id: int) -> None:
    """Issue a fully signed report (status `issuing`, queued by `report_sign` after commit):
    add the signatures and the service's Ed25519 signature, render the PDF with no lock held,
    then in one transaction write the PDF and its JSON (each a temp file + rename) and freeze
    the row. Returns early when the report is missing or not `issuing` (a re-delivered task
    issues once); a failure after rendering removes the files it wrote. Emits REPORT_ISSUED."""
    report = Report.objects.filter(pk=report_id).first()
    if report is None or report.status != Report.Status.ISSUING:
        return
    issued, digest, signature = _issued_document(report)
    pdf = render_pdf(issued)  # seconds: outside any transaction and lock
    pdf_sha = hashlib.sha256(pdf).hexdigest()
    relative = f"reports/{report.reference}-v{report.version}-{pdf_sha[:12]}.pdf"
    written: list[Path] = []
    try:
        with transaction.atomic():
            report = Report.objects.select_for_update().get(pk=report_id)
            if report.status != Report.Status.ISSUING:
                return  # issued meanwhile by another delivery
            if _issued_document(report)[1] != digest:
                raise ApplicationError("The signatures changed while the report was rendered.")
            written.append(media_put(relative, pdf))
            written.append(
                media_put(relative.removesuffix(".pdf") + ".json", canonical_json(issued))
            )
            report.status = Report.Status.ISSUED
            report.issued_document_sha256 = digest
            report.service_signature = signature
            report.pdf_path, report.pdf_sha256 = relative, pdf_sha
            report.issued_at = timezone.now()
            report.save()
            if report.comparison_id is not None:
                ComparisonRun.objects.filter(pk=report.comparison_id).update(
                    status=ComparisonRun.Status.ISSUED
                )
            else:
                ValidationRun.objects.filter(pk=report.run_id).update(
                    status=ValidationRun.Status.ISSUED
                )
            audit_record(
                actor=None,
                action=AuditAction.REPORT_ISSUED,
                target=report,
                payload={"document_sha256": digest, "pdf_sha256": pdf_sha},
            )
    except BaseException:
        for path in written:  # content-addressed names no committed report points to
            path.unlink(missing_ok=True)
        raise


def _issued_document(report: Report) -> tuple[dict, str, str]:
    """The document as issued: signatures, then the integrity block with the service's
    signature; its digest and that signature."""
    signatures = [
        {
            "name": s.printed_name,
            "role": s.role,
            "meaning": s.meaning,
            "signed_at": s.signed_at.isoformat().replace("+00:00", "Z"),
        }
        for s in report.signatures.order_by("id")
    ]
    issued = {**report.document, "signatures": signatures}
    digest = document_sha256(issued)
    signature = sign_digest(digest)
    issued["integrity"] = {
        "document_sha256": digest,
        "content_sha256": report.content_sha256,
        "service_signature": signature,
        "public_key_fingerprint": public_key_fingerprint(),
    }
    return issued, digest, signature


@transaction.atomic
def report_download(*, actor, report: Report):
    """Record the download (REPORT_DOWNLOADED) and return the PDF's path. The caller has
    already scoped `report` to the actor with reports.selectors. A PDF that shows Grad-CAM
    exemplars shows case-level images of partner data: that read is also a CASE_DATA_VIEWED
    event (on the run: who, what, how many cases)."""
    _download_record(actor, report, "pdf")
    return media_path(report.pdf_path)


@transaction.atomic
def report_dicom_download(*, actor, report: Report) -> bytes:
    """Record the download of an issued report as its DICOM Encapsulated PDF object and return
    the object's bytes (reports.selectors.report_dicom): audited exactly like the PDF, whose
    exact bytes it carries (REPORT_DOWNLOADED with format "dicom"; CASE_DATA_VIEWED when the
    PDF shows exemplars). The caller has scoped `report` to the actor."""
    _download_record(actor, report, "dicom")
    return report_dicom(report)


def _download_record(actor, report: Report, format: str) -> None:
    if report.status != Report.Status.ISSUED:
        raise ApplicationError("The report has not been issued yet.", status_code=409)
    audit_record(
        actor=actor,
        action=AuditAction.REPORT_DOWNLOADED,
        target=report,
        payload={"pdf_sha256": report.pdf_sha256, "format": format},
    )
    exemplars = len((report.document.get("explainability") or {}).get("exemplars") or [])
    if exemplars:
        audit_record(
            actor=actor,
            action=AuditAction.CASE_DATA_VIEWED,
            target=report.run,
            payload={
                "what": "Grad-CAM exemplars of partner images, in the issued report's PDF"
                + (" (as DICOM)" if format == "dicom" else ""),
                "report": f"{report.reference} v{report.version}",
                "cases": exemplars,
            },
        )


@transaction.atomic
def report_correct(*, actor, report: Report, reason: str) -> Report:
    """Draft a correction: a new version of an issued report, rebuilt from the run's stored
    results, that names the version it supersedes and why. It is signed and issued like any
    report; from then on the old version verifies as superseded. Both stay retrievable.
    Emits REPORT_CORRECTION_DRAFTED."""
    if not is_validation_team(actor):
        raise PermissionDenied("Only the validation team corrects reports.")
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("A correction needs a reason; it is printed in the new version.")
    report = Report.objects.select_for_update().get(pk=report.pk)
    if report.issued_at is None:
        raise ApplicationError("Only an issued report can be corrected; sign this one instead.")
    if Report.objects.filter(supersedes=report).exists():
        raise ApplicationError(
            "This version already has a correction; correct the newest version instead.",
            status_code=409,
        )
    comparison = report.comparison
    versions = Report.objects.filter(run=report.run, comparison=comparison)
    correction = _new_version(
        report.run,
        version=versions.count() + 1,
        supersedes=report,
        reason=reason,
        comparison=comparison,
    )
    audit_record(
        actor=actor,
        action=AuditAction.REPORT_CORRECTION_DRAFTED,
        target=correction,
        payload={
            "supersedes_version": report.version,
            "content_sha256": correction.content_sha256,
            "reason": reason[:500],
        },
    )
    return correction


MAX_VERIFY_BYTES = 50 * 2**20


@transaction.atomic
def report_verify(*, actor, data: bytes) -> PdfVerification:
    """Say what the service knows of a PDF or of a report's DICOM object
    (reports.selectors.report_verification) and record that it was asked (REPORT_VERIFIED,
    with the file's hashes, its format and the answer). Refuses, with the reason, a file over
    MAX_VERIFY_BYTES and a DICOM object that is not an Encapsulated PDF (nothing recorded)."""
    if len(data) > MAX_VERIFY_BYTES:
        raise ApplicationError("The file is larger than any report the service issues.")
    try:
        result = report_verification(data)
    except NotAReportObject as exc:
        raise ApplicationError(
            f"This DICOM object cannot be a Blindspot report: {exc}. Only the report's "
            "Encapsulated PDF object (or the PDF itself) can be verified."
        ) from None
    audit_record(
        actor=actor,
        action=AuditAction.REPORT_VERIFIED,
        target=result.report,
        payload={
            "pdf_sha256": result.pdf_sha256,
            "status": result.status,
            "format": result.format,
            "file_sha256": result.file_sha256 or result.pdf_sha256,
        },
    )
    return result


@transaction.atomic
def report_pages_viewed(*, actor, report: Report) -> None:
    """Record that `actor` opened a report's pages in the console (its page images). A report
    that shows Grad-CAM exemplars shows case-level images of partner data: that read is a
    CASE_DATA_VIEWED event on the run, like a download of the issued PDF. The caller has
    scoped `report` to the actor with reports.selectors."""
    exemplars = len((report.document.get("explainability") or {}).get("exemplars") or [])
    if not exemplars:
        return
    audit_record(
        actor=actor,
        action=AuditAction.CASE_DATA_VIEWED,
        target=report.run,
        payload={
            "what": "Grad-CAM exemplars of partner images, in the report's page images",
            "report": f"{report.reference} v{report.version}",
            "cases": exemplars,
        },
    )


def report_pages_make(*, report_id: int) -> None:
    """Make a report's page images (a reports worker's job: a draft is rendered first, seconds).
    A failure is kept beside the cache for the pages that wait on it, and logged."""
    report = Report.objects.filter(pk=report_id).first()
    if report is None:
        return
    try:
        report_page_images(report)
    except PageImageError as exc:
        log.error("report %s: page images failed: %s", report_id, exc)


def report_pages_request(*, report: Report) -> list[Path] | None:
    """The report's page images if made; otherwise queue their making on a reports worker and
    answer None (the console shows them when they are ready). With no broker (the embedded
    default) the task runs at once, so they are there on return. Raises PageImageError."""
    pages = report_page_images_made(report)
    if pages:
        return pages
    enqueue_on_commit(task_names.REPORT_PAGES, report_id=report.pk)
    return report_page_images_made(report) or None
