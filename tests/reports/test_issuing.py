"""Issuing leaves the signing request: the last signature marks the report `issuing` and queues
the issue task on the `reports` queue after the commit; the task renders with no lock held,
writes the files atomically, issues once however often it is delivered, and a failure after
rendering leaves no file behind. Real WeasyPrint, real files, real Celery task (eager)."""

from pathlib import Path

import pytest
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from config.celery import QueuedTask
from reports import services
from reports.models import Report
from reports.services import report_sign
from reports.tasks import report_issue
from tests.factories import PASSWORD
from validation import task_names
from validation.models import ValidationRun

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def _report_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / "reports"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _issued_events(report: Report) -> int:
    return AuditEvent.objects.filter(
        action=AuditAction.REPORT_ISSUED, target_id=str(report.pk)
    ).count()


def test_the_signing_request_answers_at_once_and_does_not_render(
    world, report, settings, django_capture_on_commit_callbacks
):
    report_sign(actor=world.reviewer, report=report, password=PASSWORD, meaning="reviewed")
    client = APIClient()
    client.force_authenticate(world.qa)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.post(
            f"/api/v1/reports/{report.pk}/sign/", {"password": PASSWORD, "meaning": "approved"}
        )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "issuing" and body["pdf_sha256"] == "" and body["issued_at"] is None
    assert body["missing_signatures"] == []
    assert _report_files(settings) == []  # nothing rendered or written in the request
    issue = [q for q in queued if isinstance(q, QueuedTask)]
    assert [(q.name, q.kwargs) for q in issue] == [
        (task_names.REPORT_ISSUE, {"report_id": report.pk})
    ]
    from config.celery import app

    assert app.amqp.router.route({}, task_names.REPORT_ISSUE)["queue"].name == "reports"

    for callback in queued:  # the commit happens: the (eager) task issues the report
        callback()
    report.refresh_from_db()
    assert report.status == Report.Status.ISSUED and report.issued_at is not None
    assert ValidationRun.objects.get(pk=report.run_id).status == ValidationRun.Status.ISSUED
    detail = client.get(f"/api/v1/reports/{report.pk}/").json()
    assert detail["status"] == "issued" and detail["pdf_sha256"] == report.pdf_sha256


def _signed(world, report, django_capture_on_commit_callbacks) -> None:
    report_sign(actor=world.reviewer, report=report, password=PASSWORD, meaning="reviewed")
    with django_capture_on_commit_callbacks(execute=False):
        report_sign(actor=world.qa, report=report, password=PASSWORD, meaning="approved")
    report.refresh_from_db()
    assert report.status == Report.Status.ISSUING


def test_a_redelivered_issue_task_issues_once(
    world, report, settings, django_capture_on_commit_callbacks
):
    _signed(world, report, django_capture_on_commit_callbacks)
    report_issue.apply(kwargs={"report_id": report.pk}).get()
    report.refresh_from_db()
    first = (report.pdf_path, report.pdf_sha256, report.issued_at)
    files = _report_files(settings)
    report_issue.apply(kwargs={"report_id": report.pk}).get()  # the broker delivers it again
    report.refresh_from_db()
    assert (report.pdf_path, report.pdf_sha256, report.issued_at) == first
    assert [p.suffix for p in _report_files(settings)] == [".json", ".pdf"]
    assert _report_files(settings) == files
    assert _issued_events(report) == 1
    assert report_issue.apply(kwargs={"report_id": 10**9}).successful()  # a missing row: return


def test_a_failure_after_rendering_leaves_no_file(
    world, report, settings, monkeypatch, django_capture_on_commit_callbacks
):
    _signed(world, report, django_capture_on_commit_callbacks)
    real_audit = services.audit_record

    def audit_fails_at_issue(**kwargs):
        if kwargs["action"] == AuditAction.REPORT_ISSUED:
            raise RuntimeError("the database went away")  # injected fault after rendering
        return real_audit(**kwargs)

    monkeypatch.setattr(services, "audit_record", audit_fails_at_issue)
    with pytest.raises(RuntimeError, match="went away"):
        services.report_issue(report_id=report.pk)
    assert _report_files(settings) == []
    report.refresh_from_db()
    assert report.status == Report.Status.ISSUING and report.pdf_path == ""
    assert _issued_events(report) == 0

    monkeypatch.setattr(services, "audit_record", real_audit)
    services.report_issue(report_id=report.pk)  # the retry issues it
    report.refresh_from_db()
    assert report.status == Report.Status.ISSUED
    assert len(_report_files(settings)) == 2 and _issued_events(report) == 1
