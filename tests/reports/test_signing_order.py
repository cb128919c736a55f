"""21 CFR 11.50, the meaning of signatures: the QA approval approves a reviewed report, so the
reviewer's review comes first. An approval before the review is refused and audited; the API and
the PDF say which signature is missing."""

import io

import pypdf
import pytest
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from reports.canonical import UNHASHED_KEYS
from reports.models import Signature
from reports.rendering import render_pdf
from reports.services import report_sign
from tests.factories import PASSWORD
from tests.support.sample_document import sample_document
from validation.errors import ApplicationError

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_the_approval_before_the_review_is_refused_and_audited(world, report):
    with pytest.raises(ApplicationError, match="'reviewed'") as refused:
        report_sign(actor=world.qa, report=report, password=PASSWORD, meaning="approved")
    assert refused.value.status_code == 409
    assert not Signature.objects.filter(report=report).exists()
    event = AuditEvent.objects.get(action=AuditAction.REPORT_SIGNATURE_REFUSED)
    assert event.actor == world.qa and event.target_id == str(report.pk)
    assert event.payload["meaning"] == "approved" and "reviewed" in event.payload["reason"]

    report_sign(actor=world.reviewer, report=report, password=PASSWORD, meaning="reviewed")
    report_sign(actor=world.qa, report=report, password=PASSWORD, meaning="approved")
    assert list(report.signatures.values_list("meaning", flat=True)) == ["reviewed", "approved"]


def test_the_api_says_which_signature_is_missing(world, report):
    client = APIClient()
    client.force_authenticate(world.qa)
    assert client.get(f"/api/v1/reports/{report.pk}/").json()["missing_signatures"] == [
        "reviewed",
        "approved",
    ]
    refused = client.post(
        f"/api/v1/reports/{report.pk}/sign/", {"password": PASSWORD, "meaning": "approved"}
    )
    assert refused.status_code == 409
    assert "'reviewed'" in refused.json()["detail"]

    report_sign(actor=world.reviewer, report=report, password=PASSWORD, meaning="reviewed")
    assert client.get(f"/api/v1/reports/{report.pk}/").json()["missing_signatures"] == ["approved"]


def _pdf_text(document: dict) -> str:
    return " ".join(
        page.extract_text() for page in pypdf.PdfReader(io.BytesIO(render_pdf(document))).pages
    )


def test_the_pdf_says_which_signature_is_missing():
    document = {k: v for k, v in sample_document().items() if k not in UNHASHED_KEYS}
    document["report"]["required_signatures"] = ["reviewed", "approved"]
    draft = " ".join(_pdf_text(document).split())
    assert "Missing signature(s)" in draft and "approval): reviewed, approved." in draft

    document["signatures"] = [
        {
            "name": "Rita Reviewer",
            "role": "reviewer",
            "meaning": "reviewed",
            "signed_at": "2026-01-01T00:00:00Z",
        }
    ]
    reviewed = " ".join(_pdf_text(document).split())
    assert "Rita Reviewer" in reviewed and "approval): approved." in reviewed

    document["signatures"].append(
        {
            "name": "Quinn Approver",
            "role": "qa_approver",
            "meaning": "approved",
            "signed_at": "2026-01-01T01:00:00Z",
        }
    )
    assert "Missing signature" not in " ".join(_pdf_text(document).split())
