"""Reads of reports, scoped: vendors their own issued reports, partners those of runs on their
data, the validation team and auditors all."""

import hashlib
import io
import re
from dataclasses import dataclass, replace

from django.db.models import OuterRef, Q, QuerySet, Subquery
from pypdf import PdfReader

from reports.dicom import (
    ReportIdentity,
    dicom_differences,
    dicom_make,
    dicom_read,
    looks_like_dicom,
)
from reports.models import Report
from reports.signing import verify_digest
from validation.models import Role
from validation.selectors import get_or_404, is_auditor, is_validation_team, org_ids_of
from validation.storage import media_path


def reports_visible_to(user) -> QuerySet[Report]:
    qs = Report.objects.select_related("run__package__vendor", "run__dataset_version__dataset")
    if is_validation_team(user) or is_auditor(user):
        return qs
    return qs.filter(status=Report.Status.ISSUED).filter(
        Q(run__package__vendor_id__in=org_ids_of(user, Role.VENDOR_MEMBER))
        | Q(run__dataset_version__dataset__partner_id__in=org_ids_of(user, Role.PARTNER_STEWARD))
    )


def report_get_visible(*, user, pk) -> Report:
    return get_or_404(reports_visible_to(user), pk)


def report_is_current(report: Report) -> bool:
    return _successor(report) is None


def _successor(report: Report) -> Report | None:
    """The issued version that supersedes this one, if any."""
    return Report.objects.filter(supersedes=report, issued_at__isnull=False).first()


# --- verification of a PDF someone holds ---------------------------------------------------------

_HEX64 = re.compile(rb"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")


@dataclass(frozen=True)
class PdfVerification:
    """What the service knows about a PDF or the report's DICOM object: ``issued-current``,
    ``superseded`` (with the version that replaced it and the current one), ``altered`` (it
    names an issued report, but its bytes are not that report's PDF or DICOM object) or
    ``unknown``. `pdf_sha256` is the PDF's (the encapsulated one for DICOM); `file_sha256` the
    file's as given."""

    status: str
    pdf_sha256: str
    report: Report | None = None
    superseded_by: Report | None = None
    current: Report | None = None
    detail: str = ""
    format: str = "pdf"  # or "dicom"
    file_sha256: str = ""

    def as_dict(self) -> dict:
        def ref(report: Report | None) -> dict | None:
            if report is None:
                return None
            return {
                "reference": report.reference,
                "version": report.version,
                "issued_at": report.issued_at.isoformat() if report.issued_at else None,
                "document_sha256": report.issued_document_sha256,
                "pdf_sha256": report.pdf_sha256,
            }

        return {
            "status": self.status,
            "format": self.format,
            "file_sha256": self.file_sha256 or self.pdf_sha256,
            "pdf_sha256": self.pdf_sha256,
            "report": ref(self.report),
            "superseded_by": ref(self.superseded_by),
            "current": ref(self.current),
            "detail": self.detail,
        }


def report_verification(data: bytes) -> PdfVerification:
    """What a file is: a DICOM Part 10 object goes to `_dicom_verification` (raises
    NotAReportObject for any DICOM object but an Encapsulated PDF), anything else is read as
    a PDF."""
    if looks_like_dicom(data):
        return _dicom_verification(data)
    return _pdf_verification(data)


def _pdf_verification(data: bytes) -> PdfVerification:
    """Compare a PDF's bytes with the issued record. An exact SHA-256 match is one of ours
    (its service signature is checked too); otherwise, a PDF that names an issued report's
    document hash (in its metadata or text) has been altered; anything else is unknown."""
    digest = hashlib.sha256(data).hexdigest()
    issued = Report.objects.filter(issued_at__isnull=False)
    report = issued.filter(pdf_sha256=digest).first()
    if report is not None:
        if not verify_digest(report.issued_document_sha256, report.service_signature):
            return PdfVerification(
                "altered", digest, report, detail="the record's service signature does not verify"
            )
        newer = _successor(report)
        if newer is None:
            return PdfVerification("issued-current", digest, report, current=report)
        return PdfVerification(
            "superseded", digest, report, superseded_by=newer, current=_current(newer)
        )
    candidates = _claimed_hashes(data)
    by_hash = {
        r.issued_document_sha256: r for r in issued.filter(issued_document_sha256__in=candidates)
    }
    claimed = next((by_hash[h] for h in candidates if h in by_hash), None)
    if claimed is not None:
        return PdfVerification(
            "altered",
            digest,
            claimed,
            current=_current(claimed),
            detail=f"it names {claimed.reference} version {claimed.version}, but its bytes are "
            f"not that report's PDF (SHA-256 {claimed.pdf_sha256})",
        )
    return PdfVerification("unknown", digest, detail="no issued report matches this file")


def _dicom_verification(data: bytes) -> PdfVerification:
    """The encapsulated PDF is verified as a PDF; when it is an issued report's, the object
    must also be byte for byte the one `report_dicom` makes for that report (changed metadata
    is `altered`, naming the attributes). An unknown PDF in an object whose private block
    names an issued report's document hash is `altered` too."""
    read = dicom_read(data)
    file_sha = hashlib.sha256(data).hexdigest()
    inner = replace(_pdf_verification(read.pdf), format="dicom", file_sha256=file_sha)
    if inner.report is not None and inner.status in ("issued-current", "superseded"):
        expected = dicom_make(pdf=read.pdf, identity=report_dicom_identity(inner.report))
        if expected == data:
            return inner
        try:
            changed = ", ".join(dicom_differences(expected, data)[:12]) or "its encoding"
        except Exception:
            changed = "its encoding"
        return PdfVerification(
            "altered",
            inner.pdf_sha256,
            inner.report,
            current=_current(inner.report),
            detail=f"its PDF is {inner.report.reference} version {inner.report.version}, but "
            f"the DICOM object is not the one the service made for it (differs in: {changed})",
            format="dicom",
            file_sha256=file_sha,
        )
    if inner.status == "unknown" and read.claimed.get("document_sha256"):
        claimed = Report.objects.filter(
            issued_at__isnull=False, issued_document_sha256=read.claimed["document_sha256"]
        ).first()
        if claimed is not None:
            return PdfVerification(
                "altered",
                inner.pdf_sha256,
                claimed,
                current=_current(claimed),
                detail=f"it names {claimed.reference} version {claimed.version}, but its PDF "
                f"is not that report's (SHA-256 {claimed.pdf_sha256})",
                format="dicom",
                file_sha256=file_sha,
            )
    return inner


def report_dicom_identity(report: Report) -> ReportIdentity:
    """The frozen identifiers an issued report's DICOM object carries."""
    software = ((report.document.get("identity") or {}).get("software") or {}).get("blindspot")
    dataset = report.run.dataset_version
    return ReportIdentity(
        reference=report.reference,
        version=report.version,
        document_sha256=report.issued_document_sha256,
        pdf_sha256=report.pdf_sha256,
        service_signature=report.service_signature,
        issued_at=report.issued_at,  # type: ignore[arg-type]  # issued reports only
        dataset_version_id=dataset.pk,
        merkle_root=dataset.merkle_root,
        software_version=str(software or ""),
    )


def report_dicom(report: Report) -> bytes:
    """An issued report as a DICOM Encapsulated PDF object (reports.dicom), made from its
    stored PDF: the same report always gives the same bytes."""
    pdf = media_path(report.pdf_path).read_bytes()
    return dicom_make(pdf=pdf, identity=report_dicom_identity(report))


def _current(report: Report) -> Report:
    """The newest issued version of the chain (a version can only supersede an older one, so
    the chain ends)."""
    while (newer := _successor(report)) is not None:
        report = newer
    return report


def _claimed_hashes(data: bytes) -> list[str]:
    """Document hashes the file carries, the metadata's own entry first (a correction also
    prints the hash of the version it supersedes): the entry when the PDF still parses, then
    every 64-hex-digit string in its bytes (the metadata is stored uncompressed)."""
    found: list[str] = []
    try:
        metadata = PdfReader(io.BytesIO(data)).metadata
        value = metadata.get("/blindspotdocumentsha256") if metadata is not None else None
        if value:
            found.append(str(value))
    except Exception:  # noqa: S110 - a damaged PDF is data: it simply does not parse
        pass
    found += [m.decode("ascii") for m in _HEX64.findall(data)]
    return list(dict.fromkeys(found))


# --- for the web pages ---------------------------------------------------------------------


def reports_listed(user) -> QuerySet[Report]:
    """`reports_visible_to`, each row with the issued version that supersedes it
    (`successor_id`, `successor_version`: None while current) and its signatures prefetched:
    a page of reports in a fixed number of queries, whatever its length."""
    successor = Report.objects.filter(supersedes=OuterRef("pk"), issued_at__isnull=False)
    return (
        reports_visible_to(user)
        .select_related("run__package", "run__dataset_version__dataset__partner")
        .prefetch_related("signatures")
        .defer("document")  # the whole report's content: not needed for a row
        .annotate(
            successor_id=Subquery(successor.values("pk")[:1]),
            successor_version=Subquery(successor.values("version")[:1]),
        )
    )


def report_successor(report: Report) -> Report | None:
    """The issued version that supersedes `report`, if any."""
    return _successor(report)


def reports_awaiting_signature() -> QuerySet[Report]:
    """Report versions that wait for a signature, oldest first, with their signatures (the
    review console's queue: whose signature is next follows from `signatures_missing`)."""
    return (
        Report.objects.filter(status=Report.Status.AWAITING_SIGNATURE)
        .select_related("run__package__vendor", "run__dataset_version__dataset")
        .prefetch_related("signatures")
        .order_by("created_at", "id")
    )
