"""Reports: the list a person may read, one report with its signatures, the audited PDF
download, and "verify a PDF" by upload. The same selectors and services as reports/api.py."""

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods

from reports.models import Report
from reports.selectors import (
    report_get_visible,
    report_successor,
    reports_listed,
    reports_visible_to,
)
from reports.services import (
    MAX_VERIFY_BYTES,
    report_dicom_download,
    report_download,
    report_verify,
)
from reports.signing import public_key_fingerprint
from validation.errors import ApplicationError
from web.access import TEAM_ROLES, roles
from web.views.flow import page_of

STATUS_BADGES = {
    Report.Status.AWAITING_SIGNATURE: ("awaiting signature", "warn"),
    Report.Status.ISSUING: ("issuing", "info"),
    Report.Status.ISSUED: ("issued", "ok"),
}

VERDICTS = {
    "issued-current": ("Genuine and current", "ok"),
    "superseded": ("Genuine, but superseded", "warn"),
    "altered": ("Not genuine: altered", "bad"),
    "unknown": ("Not issued by Blindspot", "bad"),
}


def _badge(report: Report) -> tuple[str, str]:
    return STATUS_BADGES.get(Report.Status(report.status), (report.status, "neutral"))


@login_required
@require_GET
def report_list(request: HttpRequest) -> HttpResponse:
    page = page_of(request, reports_listed(request.user))
    rows = [(report, _badge(report)) for report in page.object_list]
    return render(
        request,
        "web/reports/list.html",
        {"title": "Reports", "section": "reports", "page_obj": page, "rows": rows},
    )


@login_required
@require_GET
def report_detail(request: HttpRequest, pk: int) -> HttpResponse:
    report = report_get_visible(user=request.user, pk=pk)
    signatures = list(report.signatures.all())
    successor = report_successor(report) if report.issued_at else None
    context = {
        "title": f"{report.reference} version {report.version}",
        "section": "reports",
        "report": report,
        "badge": _badge(report),
        "signatures": signatures,
        "successor": successor,
        "predecessor": report.supersedes if report.supersedes_id else None,
        "missing": [
            m for m in report.required_signatures if m not in {s.meaning for s in signatures}
        ],
        "issued": report.status == Report.Status.ISSUED,
        # The team signs and corrects on the console's signing page; auditors read it there.
        "console": bool(roles(request) & TEAM_ROLES),
    }
    return render(request, "web/reports/detail.html", context)


@login_required
@require_GET
def report_pdf(request: HttpRequest, pk: int) -> FileResponse:
    """The issued PDF, recorded (REPORT_DOWNLOADED; CASE_DATA_VIEWED when it shows exemplars).
    A report not yet issued has no PDF: 404."""
    report = report_get_visible(user=request.user, pk=pk)
    if report.status != Report.Status.ISSUED:
        raise Http404("This report has not been issued yet.")
    path = report_download(actor=request.user, report=report)
    if not path.is_file():
        raise Http404("The report's PDF is missing from storage.")
    return FileResponse(
        open(path, "rb"),
        as_attachment=True,
        filename=f"{report.reference}-v{report.version}.pdf",
        content_type="application/pdf",
    )


@login_required
@require_GET
def report_dicom(request: HttpRequest, pk: int) -> HttpResponse:
    """The issued report as a DICOM Encapsulated PDF object, recorded like the PDF. A report
    not yet issued has none: 404."""
    report = report_get_visible(user=request.user, pk=pk)
    if report.status != Report.Status.ISSUED:
        raise Http404("This report has not been issued yet.")
    try:
        data = report_dicom_download(actor=request.user, report=report)
    except FileNotFoundError:
        raise Http404("The report's PDF is missing from storage.") from None
    response = HttpResponse(data, content_type="application/dicom")
    filename = f"{report.reference}-v{report.version}.dcm"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
@require_http_methods(["GET", "POST"])
def verify(request: HttpRequest) -> HttpResponse:
    """Any signed-in person may ask whether a PDF is one the service issued (REPORT_VERIFIED).
    The report's identity and hashes are named only to those who may see that report."""
    context: dict = {
        "title": "Verify a PDF",
        "section": "verify",
        "fingerprint": public_key_fingerprint(),
        "max_mib": MAX_VERIFY_BYTES // 2**20,
    }
    status = 200
    if request.method == "POST":
        try:
            context["result"] = _verification(request)
        except ApplicationError as exc:
            context["problems"] = [exc.message, *exc.errors]
            status = 422 if request.htmx else 400  # type: ignore[attr-defined]
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "web/reports/verify.html#verify", context, status=status)
    return render(request, "web/reports/verify.html", context, status=status)


def _verification(request: HttpRequest) -> dict:
    upload = request.FILES.get("file")
    if upload is None:
        raise ApplicationError("Choose a PDF file to verify.")
    if upload.size is not None and upload.size > MAX_VERIFY_BYTES:
        raise ApplicationError("The file is larger than any report the service issues.")
    result = report_verify(actor=request.user, data=upload.read())
    visible = (
        result.report is not None
        and reports_visible_to(request.user).filter(pk=result.report.pk).exists()
    )
    label, tone = VERDICTS[result.status]
    return {
        "status": result.status,
        "label": label,
        "tone": tone,
        "genuine": result.status in ("issued-current", "superseded"),
        "filename": upload.name,
        "pdf_sha256": result.pdf_sha256,
        "visible": visible,
        "report": result.report if visible else None,
        "superseded_by": result.superseded_by if visible else None,
        "current": result.current if visible else None,
        "detail": result.detail if visible or result.report is None else "",
        "format": result.format,
        "file_sha256": result.file_sha256 or result.pdf_sha256,
    }
