"""Part 11 signing, issuing and the immutability of issued reports (ORM, queryset, SQL)."""

import hashlib

import pypdf
import pytest
from django.db import DatabaseError, connection, transaction

from audit.immutability import ImmutableRecordError
from audit.models import AuditAction, AuditEvent
from reports.canonical import document_sha256
from reports.models import Report, Signature
from reports.services import report_sign
from reports.signing import public_key_pem, verify_digest
from tests.factories import PASSWORD, member
from validation.errors import ApplicationError, PermissionDenied
from validation.models import Role, ValidationRun
from validation.storage import media_path

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_wrong_password_signs_nothing_and_is_audited(world, report):
    with pytest.raises(PermissionDenied, match="password"):
        report_sign(actor=world.reviewer, report=report, password="wrong", meaning="reviewed")
    assert not Signature.objects.exists()
    refused = AuditEvent.objects.get(action=AuditAction.REPORT_SIGNATURE_REFUSED)
    assert refused.actor == world.reviewer and refused.target_id == str(report.pk)


def test_one_person_cannot_give_both_signatures(world, report):
    both = member(world.validator, Role.QA_APPROVER, username="both")
    from validation.models import Membership

    Membership.objects.create(user=both, organisation=world.validator, role=Role.REVIEWER)
    report_sign(actor=both, report=report, password=PASSWORD, meaning="reviewed")
    with pytest.raises(ApplicationError, match="two signatures"):
        report_sign(actor=both, report=report, password=PASSWORD, meaning="approved")
    report.refresh_from_db()
    assert report.status == Report.Status.AWAITING_SIGNATURE


def test_signature_needs_the_matching_role(world, report):
    with pytest.raises(PermissionDenied, match="qa_approver"):
        report_sign(actor=world.reviewer, report=report, password=PASSWORD, meaning="approved")
    with pytest.raises(PermissionDenied):
        report_sign(actor=world.vendor_user, report=report, password=PASSWORD, meaning="reviewed")


def test_two_signatures_issue_a_signed_frozen_pdf(
    world, report, django_capture_on_commit_callbacks
):
    report_sign(actor=world.reviewer, report=report, password=PASSWORD, meaning="reviewed")
    with django_capture_on_commit_callbacks(execute=True):  # the issue task, after the commit
        report_sign(actor=world.qa, report=report, password=PASSWORD, meaning="approved")
    report.refresh_from_db()
    assert report.status == Report.Status.ISSUED and report.issued_at
    pdf = media_path(report.pdf_path).read_bytes()
    assert hashlib.sha256(pdf).hexdigest() == report.pdf_sha256
    assert verify_digest(report.issued_document_sha256, report.service_signature, public_key_pem())
    issued_json = media_path(report.pdf_path.removesuffix(".pdf") + ".json").read_bytes()
    import json

    issued = json.loads(issued_json)
    without_integrity = {k: v for k, v in issued.items() if k != "integrity"}
    assert document_sha256(without_integrity) == report.issued_document_sha256
    text = "".join(p.extract_text() for p in pypdf.PdfReader(media_path(report.pdf_path)).pages)
    assert "Rita Reviewer" in text and "Quinn Approver" in text
    assert ValidationRun.objects.get(pk=report.run_id).status == ValidationRun.Status.ISSUED
    actions = list(
        AuditEvent.objects.filter(
            target_id=str(report.pk), target_type="reports.Report"
        ).values_list("action", flat=True)
    )
    assert actions == [
        AuditAction.REPORT_SIGNED,
        AuditAction.REPORT_SIGNED,
        AuditAction.REPORT_ISSUED,
    ]

    # Frozen: model, queryset, raw SQL.
    report.document = {"tampered": True}
    with pytest.raises(ImmutableRecordError):
        report.save()
    with pytest.raises(ImmutableRecordError):
        report.delete()
    with pytest.raises(ImmutableRecordError):
        Report.objects.filter(pk=report.pk).update(pdf_sha256="0" * 64)
    for sql in (
        "UPDATE reports_report SET pdf_sha256 = 'x' WHERE id = %s",
        "DELETE FROM reports_report WHERE id = %s",
        "UPDATE reports_signature SET printed_name = 'x' WHERE report_id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, [report.pk])
    with pytest.raises(ApplicationError, match="no longer awaiting"):
        report_sign(actor=world.reviewer, report=report, password=PASSWORD, meaning="reviewed")
