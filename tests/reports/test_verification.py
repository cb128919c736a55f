"""Corrections that supersede an issued report, and verifying a PDF someone holds: issued and
current, superseded (by which version), altered, or unknown. Command, API and audit."""

import io

import numpy as np
import pypdf
import pytest
from django.core.management import call_command
from django.test import TestCase
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from reports.models import Report
from reports.selectors import report_verification
from reports.services import report_correct, report_draft, report_sign
from tests.factories import PASSWORD, RunFactory
from validation.errors import ApplicationError, PermissionDenied
from validation.management.commands.demo import PROTOCOL
from validation.models import MetricResult, ValidationRun
from validation.protocol_document import with_defaults
from validation.stats.evaluation import Plan, evaluate
from validation.storage import media_path

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def _run_with_results():
    """A run whose stored results come from the real metric engine on synthetic scores."""
    run = RunFactory.create(
        status=ValidationRun.Status.REPORTING, protocol__document=with_defaults(PROTOCOL)
    )
    protocol = run.protocol.document
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 120)
    scores = np.clip(0.25 + 0.5 * y + rng.normal(0, 0.2, 120), 0, 1)
    groups = {spec["attribute"]: rng.choice(["a", "b"], 120) for spec in protocol["subgroups"]}
    plan = Plan.from_protocol(protocol, threshold=float(run.package.manifest["threshold"]))
    sections = evaluate(y, scores, groups, plan)
    sections.pop("scoring")
    sections["failures"] = {"by_category": [], "n_cases": 120, "n_scored": 120}
    for section, value in sections.items():
        MetricResult.objects.create(run=run, section=section, value=value)
    return run


def _issue(world, report: Report) -> Report:
    report_sign(actor=world.reviewer, report=report, password=PASSWORD, meaning="reviewed")
    # The issue task runs once the signature commits (eager: in this process).
    with TestCase.captureOnCommitCallbacks(execute=True):
        report_sign(actor=world.qa, report=report, password=PASSWORD, meaning="approved")
    report.refresh_from_db()
    assert report.status == Report.Status.ISSUED
    return report


def _pdf(report: Report) -> bytes:
    return media_path(report.pdf_path).read_bytes()


@pytest.fixture
def issued(world):
    return _issue(world, report_draft(run=_run_with_results()))


def test_an_issued_pdf_verifies_and_one_changed_byte_does_not(world, issued):
    pdf = _pdf(issued)
    result = report_verification(pdf)
    assert result.status == "issued-current" and result.report == issued
    changed = bytearray(pdf)
    changed[len(changed) // 2] ^= 0x01  # one byte inside a content stream
    altered = report_verification(bytes(changed))
    assert altered.status == "altered" and altered.report == issued
    assert issued.reference in altered.detail
    assert report_verification(b"%PDF-1.7\nnot ours").status == "unknown"


def test_a_correction_supersedes_the_old_version_and_both_stay_retrievable(world, issued):
    old_pdf = _pdf(issued)
    correction = report_correct(
        actor=world.reviewer, report=issued, reason="Site label corrected by the partner."
    )
    assert correction.version == 2 and correction.supersedes == issued
    # Until the correction is issued, the old version is still the current one.
    assert report_verification(old_pdf).status == "issued-current"
    correction = _issue(world, correction)
    old = report_verification(old_pdf)
    assert old.status == "superseded"
    assert old.superseded_by == correction and old.current == correction
    new = report_verification(_pdf(correction))
    assert new.status == "issued-current" and new.report == correction
    text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(_pdf(correction))).pages)
    flat = " ".join(text.split())  # the PDF wraps lines wherever the column ends
    assert "Supersedes" in flat and "Site label corrected by the partner." in flat
    assert issued.issued_document_sha256 in "".join(text.split())
    assert media_path(issued.pdf_path).read_bytes() == old_pdf  # the old file is kept
    drafted = AuditEvent.objects.get(action=AuditAction.REPORT_CORRECTION_DRAFTED)
    assert drafted.actor == world.reviewer and drafted.payload["supersedes_version"] == 1


def test_corrections_are_refused_without_a_reason_a_role_or_an_issued_report(world, issued):
    with pytest.raises(PermissionDenied):
        report_correct(actor=world.vendor_user, report=issued, reason="mine")
    with pytest.raises(ApplicationError, match="needs a reason"):
        report_correct(actor=world.reviewer, report=issued, reason="  ")
    draft = report_correct(actor=world.reviewer, report=issued, reason="typo")
    with pytest.raises(ApplicationError, match="already has a correction"):
        report_correct(actor=world.reviewer, report=issued, reason="again")
    with pytest.raises(ApplicationError, match="Only an issued report"):
        report_correct(actor=world.reviewer, report=draft, reason="not yet issued")


def test_report_verify_command_says_what_the_file_is(world, issued, tmp_path, capsys):
    good = tmp_path / "good.pdf"
    good.write_bytes(_pdf(issued))
    call_command("report_verify", str(good))
    assert "ISSUED AND CURRENT" in capsys.readouterr().out
    bad = tmp_path / "bad.pdf"
    pdf = _pdf(issued)
    bad.write_bytes(pdf[:1000] + bytes([pdf[1000] ^ 0x20]) + pdf[1001:])
    with pytest.raises(SystemExit) as exited:
        call_command("report_verify", str(bad))
    assert exited.value.code == 2 and "ALTERED" in capsys.readouterr().out
    other = tmp_path / "other.pdf"
    other.write_bytes(b"%PDF-1.4 something else")
    with pytest.raises(SystemExit) as exited:
        call_command("report_verify", str(other))
    assert exited.value.code == 3 and "UNKNOWN" in capsys.readouterr().out
    verified = AuditEvent.objects.filter(action=AuditAction.REPORT_VERIFIED)
    assert [e.payload["status"] for e in verified.order_by("id")] == [
        "issued-current",
        "altered",
        "unknown",
    ]


def test_verify_and_correct_through_the_api(world, issued):
    client = APIClient()
    client.force_authenticate(world.auditor)
    upload = io.BytesIO(_pdf(issued))
    upload.name = "report.pdf"
    response = client.post("/api/v1/reports/verify/", {"file": upload}, format="multipart")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "issued-current"
    assert body["report"]["reference"] == issued.reference and body["report"]["version"] == 1

    # An auditor sees every report but may not correct one; another vendor does not see it.
    response = client.post(f"/api/v1/reports/{issued.pk}/correct/", {"reason": "x"})
    assert response.status_code == 403
    client.force_authenticate(world.vendor_user)
    response = client.post(f"/api/v1/reports/{issued.pk}/correct/", {"reason": "x"})
    assert response.status_code == 404
    # Another vendor holding the file learns the answer, not the report's identity or history.
    upload = io.BytesIO(_pdf(issued))
    upload.name = "report.pdf"
    response = client.post("/api/v1/reports/verify/", {"file": upload}, format="multipart")
    body = response.json()
    assert body["status"] == "issued-current"
    assert body["report"] is None and body["current"] is None and body["detail"] == ""
    client.force_authenticate(world.reviewer)
    response = client.post(f"/api/v1/reports/{issued.pk}/correct/", {"reason": "Typo in site."})
    assert response.status_code == 201 and response.json()["version"] == 2
