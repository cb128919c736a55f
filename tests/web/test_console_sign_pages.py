"""The console's signing page without a browser: the draft as page images (rendered, cached
by content hash, served to the team only), whose turn it is, the Part 11 form (wrong
password, the same person twice, out of order: each refusal shown and audited), the live
status with 286 once issued, and corrections of an issued report."""

import pytest
from django.test import TestCase
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from reports.canonical import UNHASHED_KEYS, content_sha256
from reports.models import Report, Signature
from reports.page_images import report_page_images
from reports.services import report_pages_make, report_sign
from tests.factories import PASSWORD, RunFactory
from tests.support.people import signed_in
from tests.support.sample_document import sample_document
from tests.web.console_sign_helpers import drafted_real_report
from tests.web.test_reports_pages import issued_real_report
from validation.models import Membership, Role, ValidationRun

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n"
HTMX_HEADERS = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def _private_var(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"


@pytest.fixture
def draft(world):
    return drafted_real_report(world)


def streamed(response) -> bytes:
    return b"".join(response.streaming_content)


def sign_url(report) -> str:
    return reverse("web:console-report-sign", args=[report.pk])


def submit_url(report) -> str:
    return reverse("web:console-report-sign-submit", args=[report.pk])


def status_url(report) -> str:
    return reverse("web:console-report-sign-status", args=[report.pk])


def test_the_page_shows_the_draft_as_page_images_and_the_reviewers_turn(
    world, draft, settings, django_capture_on_commit_callbacks
):
    # The first view finds no images: it queues their making (a reports worker's job; eager
    # here, run when the request's transaction commits) and says they are coming, live.
    with django_capture_on_commit_callbacks(execute=True) as queued:
        first = signed_in(world.reviewer).get(sign_url(draft))
    assert [c.name for c in queued] == ["reports.tasks.report_pages_make"]
    assert first.context["pages_pending"] and not list(first.context["pages"])
    assert "A reports worker is rendering the pages" in first.content.decode()
    assert (
        'hx-get="' + reverse("web:console-report-pages", args=[draft.pk]) in first.content.decode()
    )
    fragment = signed_in(world.reviewer).get(
        reverse("web:console-report-pages", args=[draft.pk]), headers={"HX-Request": "true"}
    )
    assert fragment.status_code == 286 and b"Page 1 of" in fragment.content

    response = signed_in(world.reviewer).get(sign_url(draft))
    assert response.status_code == 200
    assert response.context["section"] == "console-sign"
    pages = list(response.context["pages"])
    assert len(pages) >= 2
    html = response.content.decode()
    page1 = reverse("web:console-report-page", args=[draft.pk, 1])
    assert f'src="{page1}"' in html
    assert f'alt="Page 1 of {len(pages)} of {draft.reference} version 1"' in html
    assert "Next: the <strong>reviewed</strong> signature, by a reviewer." in html
    assert "Rita Reviewer" in html  # the printed name on the form
    assert "Sign as reviewed" in html and 'type="password"' in html
    assert draft.content_sha256 in html
    # cached by the draft's content hash, in a private folder under VAR_DIR
    folder = settings.VAR_DIR / "cache" / "report-pages" / f"draft-{draft.content_sha256}"
    assert sorted(p.name for p in folder.iterdir())[0] == "page-1.png"

    image = signed_in(world.qa).get(page1)
    assert image.status_code == 200
    assert image["Content-Type"] == "image/png"
    assert streamed(image).startswith(PNG)
    assert "private" in image["Cache-Control"]
    missing = reverse("web:console-report-page", args=[draft.pk, len(pages) + 1])
    assert signed_in(world.qa).get(missing).status_code == 404


def test_the_images_are_made_once_per_content(world, draft):
    first = report_page_images(draft)
    stamp = first[0].stat().st_mtime_ns
    assert report_page_images(draft) == first
    assert first[0].stat().st_mtime_ns == stamp


def test_opening_pages_with_exemplars_is_a_case_data_event(world, draft):
    run = RunFactory.create(status=ValidationRun.Status.AWAITING_SIGNATURE)
    document = {k: v for k, v in sample_document().items() if k not in UNHASHED_KEYS}
    shown = Report.objects.create(
        run=run,
        document=document,
        content_sha256=content_sha256(document),
        required_signatures=["reviewed", "approved"],
    )
    exemplars = len(document["explainability"]["exemplars"])
    assert exemplars
    report_pages_make(report_id=shown.pk)  # a reports worker made the images
    signed_in(world.auditor).get(sign_url(shown))
    viewed = AuditEvent.objects.get(action=AuditAction.CASE_DATA_VIEWED, actor=world.auditor)
    assert viewed.target_id == str(run.pk)
    assert viewed.payload["cases"] == exemplars
    # the drafted report of a grant without exemplars shows no case-level image: no event
    report_pages_make(report_id=draft.pk)
    signed_in(world.qa).get(sign_url(draft))
    assert not AuditEvent.objects.filter(action=AuditAction.CASE_DATA_VIEWED, actor=world.qa)


def test_a_qa_approver_waits_for_the_review(world, draft):
    html = signed_in(world.qa).get(sign_url(draft)).content.decode()
    assert (
        "the reviewed signature comes first"
        in html.replace("<strong>", "").replace("</strong>", "")
        or "It is the reviewer&#x27;s turn" in html
    )
    assert "Sign as" not in html


def test_an_auditor_reads_without_a_form(world, draft):
    html = signed_in(world.auditor).get(sign_url(draft)).content.decode()
    assert "Auditors read the record; they do not sign." in html
    assert '<form method="post" action="' + submit_url(draft) not in html
    assert (
        signed_in(world.auditor).post(submit_url(draft), {"password": PASSWORD}).status_code == 403
    )


def test_a_wrong_password_is_refused_shown_and_audited(world, draft):
    response = signed_in(world.reviewer).post(
        submit_url(draft), {"password": "wrong"}, headers=HTMX_HEADERS
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert "Not signed." in html
    assert "The password is not correct; nothing was signed." in html
    assert 'id="sign-form"' in html and "<html" not in html  # the fragment only
    assert not draft.signatures.exists()
    refusal = AuditEvent.objects.get(action=AuditAction.REPORT_SIGNATURE_REFUSED)
    assert refusal.payload["reason"] == "wrong password"


def test_a_plain_post_with_an_empty_password_gets_the_whole_page(world, draft):
    response = signed_in(world.reviewer).post(submit_url(draft), {"password": ""})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert "<html" in response.content.decode()


def test_the_reviewer_signs_and_the_page_says_a_different_person_approves(world, draft):
    client = signed_in(world.reviewer)
    response = client.post(submit_url(draft), {"password": PASSWORD}, headers=HTMX_HEADERS)
    assert response.status_code == 200
    assert response["HX-Redirect"] == sign_url(draft)
    signature = Signature.objects.get(report=draft)
    assert (signature.meaning, signature.printed_name) == ("reviewed", "Rita Reviewer")
    assert AuditEvent.objects.filter(
        action=AuditAction.REPORT_SIGNED, actor=world.reviewer
    ).exists()

    # the reviewer also holds the QA role: still not the approver of their own review
    Membership.objects.create(
        user=world.reviewer, organisation=world.validator, role=Role.QA_APPROVER
    )
    html = client.get(sign_url(draft)).content.decode()
    assert "You signed this report as reviewed." in html
    assert "must come from a different person" in html
    assert "Sign as approved" not in html
    refused = client.post(submit_url(draft), {"password": PASSWORD}, headers=HTMX_HEADERS)
    assert refused.status_code == 422
    assert "One person cannot give two signatures on the same report." in refused.content.decode()
    assert draft.signatures.count() == 1


def test_an_approval_before_the_review_is_refused_by_the_service(world, draft):
    response = signed_in(world.qa).post(submit_url(draft), {"password": PASSWORD})
    assert response.status_code == 400
    assert "comes after the &#x27;reviewed&#x27; signature" in response.content.decode()
    assert not draft.signatures.exists()


def test_the_last_signature_issues_the_report_and_the_status_stops_polling(world, draft):
    report_sign(actor=world.reviewer, report=draft, password=PASSWORD, meaning="reviewed")
    with TestCase.captureOnCommitCallbacks(execute=False) as queued:
        response = signed_in(world.qa).post(submit_url(draft), {"password": PASSWORD})
    assert response.status_code == 303
    draft.refresh_from_db()
    assert draft.status == Report.Status.ISSUING
    fragment = signed_in(world.qa).get(status_url(draft), headers=HTMX_HEADERS)
    assert fragment.status_code == 200
    assert 'hx-trigger="every 2s, blindspot:visible"' in fragment.content.decode()
    assert "issuing" in fragment.content.decode()

    for callback in queued:  # the issue task, as the worker runs it
        callback()
    draft.refresh_from_db()
    assert draft.status == Report.Status.ISSUED
    fragment = signed_in(world.qa).get(status_url(draft), headers=HTMX_HEADERS)
    assert fragment.status_code == 286
    html = fragment.content.decode()
    assert "hx-trigger" not in html and "issued" in html and "Quinn Approver" in html
    page = signed_in(world.qa).get(sign_url(draft)).content.decode()
    assert "Your signature" not in page
    assert "pdf-" + draft.pdf_sha256 in str(report_page_images(draft)[0])


def test_a_correction_is_drafted_from_the_issued_report(world):
    issued = issued_real_report(world)
    client = signed_in(world.reviewer)
    html = client.get(sign_url(issued)).content.decode()
    assert "Correct this report" in html
    empty = client.post(
        reverse("web:console-report-correct", args=[issued.pk]),
        {"reason": " "},
        headers=HTMX_HEADERS,
    )
    assert empty.status_code == 422
    assert "This field is required." in empty.content.decode()
    response = client.post(
        reverse("web:console-report-correct", args=[issued.pk]),
        {"reason": "The site names were swapped."},
        headers=HTMX_HEADERS,
    )
    correction = Report.objects.get(supersedes=issued)
    assert response["HX-Redirect"] == sign_url(correction)
    assert AuditEvent.objects.filter(
        action=AuditAction.REPORT_CORRECTION_DRAFTED, actor=world.reviewer
    ).exists()
    html = client.get(sign_url(correction)).content.decode()
    assert "The site names were swapped." in html and "Sign as reviewed" in html
    again = client.post(
        reverse("web:console-report-correct", args=[issued.pk]),
        {"reason": "again"},
        headers=HTMX_HEADERS,
    )
    assert again.status_code == 422
    assert "already has a correction" in again.content.decode()
    assert (
        "Correct this report" not in signed_in(world.auditor).get(sign_url(issued)).content.decode()
    )


def test_the_page_is_a_fixed_number_of_queries(world, draft, django_assert_max_num_queries):
    client = signed_in(world.reviewer)
    client.get(sign_url(draft))
    with django_assert_max_num_queries(14):
        assert client.get(sign_url(draft)).status_code == 200
