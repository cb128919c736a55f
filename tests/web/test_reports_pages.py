"""The reports pages without a browser: the list (current and superseded, paginated), the
detail, the audited PDF download, "verify a PDF" (genuine, superseded, altered, unknown; htmx
fragments and refusals), and the dataset cards."""

import hashlib

import pytest
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from reports.dicom import dicom_read
from reports.models import Report, Signature
from reports.services import report_sign
from reports.signing import public_key_fingerprint, sign_digest
from tests.factories import PASSWORD, CaseFactory, DatasetVersionFactory, RunFactory
from tests.support.people import signed_in
from tests.web.console_sign_helpers import drafted_real_report, vendor_run
from validation.models import DatasetGrant, ValidationRun
from validation.storage import media_path, media_put

pytestmark = pytest.mark.django_db


def stored_report(
    run: ValidationRun,
    pdf: bytes,
    *,
    version: int = 1,
    supersedes: Report | None = None,
    document: dict | None = None,
) -> Report:
    """An issued report row as the issue task leaves it: its PDF in storage, hashed, and the
    document hash signed with the service key (so verification checks it for real)."""
    document_sha256 = hashlib.sha256(b"document" + pdf).hexdigest()
    relative = f"reports/{run.pk}-v{version}.pdf"
    media_put(relative, pdf)
    return Report.objects.create(
        run=run,
        version=version,
        supersedes=supersedes,
        document=document or {"schema_version": "1.0"},
        content_sha256=hashlib.sha256(b"content" + pdf).hexdigest(),
        status=Report.Status.ISSUED,
        issued_at=timezone.now(),
        issued_document_sha256=document_sha256,
        pdf_sha256=hashlib.sha256(pdf).hexdigest(),
        pdf_path=relative,
        service_signature=sign_digest(document_sha256),
        required_signatures=["reviewed", "approved"],
    )


def issued_real_report(world) -> Report:
    """A report of a vendor A run issued the way the service issues one: real metric results,
    signed by the reviewer then QA, rendered by WeasyPrint (the issue task, eager here)."""
    report = drafted_real_report(world)
    report_sign(actor=world.reviewer, report=report, password=PASSWORD, meaning="reviewed")
    with TestCase.captureOnCommitCallbacks(execute=True):
        report_sign(actor=world.qa, report=report, password=PASSWORD, meaning="approved")
    report.refresh_from_db()
    assert report.status == Report.Status.ISSUED
    return report


# --- the list ------------------------------------------------------------------------------------


def test_the_list_shows_a_vendor_its_issued_reports_current_and_superseded(world):
    run = vendor_run(world)
    old = stored_report(run, b"%PDF-1.7 old")
    new = stored_report(run, b"%PDF-1.7 new", version=2, supersedes=old)
    Signature.objects.create(
        report=new,
        signer=world.reviewer,
        printed_name="Rita Reviewer",
        role="reviewer",
        meaning="reviewed",
        content_sha256=new.content_sha256,
        signed_at=timezone.now(),
    )
    theirs = stored_report(RunFactory.create(package__vendor=world.vendor_b), b"%PDF-1.7 b")
    response = signed_in(world.vendor_user).get(reverse("web:reports"))
    assert response.status_code == 200
    body = response.content.decode()
    assert response.context["section"] == "reports"
    assert f'href="/reports/{old.pk}/"' in body and f'href="/reports/{new.pk}/"' in body
    assert f'href="/reports/{theirs.pk}/"' not in body
    assert run.package.name in body and run.dataset_version.dataset.name in body
    assert f'superseded</span> by <a href="/reports/{new.pk}/">v2</a>' in body
    assert 'badge badge--ok">current' in body
    assert "Rita Reviewer (reviewed)" in body
    assert 'badge badge--ok">issued' in body


def test_the_list_paginates_on_the_server_in_a_fixed_number_of_queries(
    world, django_assert_max_num_queries
):
    for i in range(27):
        stored_report(vendor_run(world), f"%PDF-1.7 {i}".encode())
    client = signed_in(world.vendor_user)
    with django_assert_max_num_queries(16):
        first = client.get(reverse("web:reports"))
    assert len(first.context["rows"]) == 25
    assert "Page 1 of 2 (27 in all)" in first.content.decode()
    second = client.get(reverse("web:reports") + "?page=2")
    assert len(second.context["rows"]) == 2


def test_the_team_sees_a_report_awaiting_signature_without_a_download(world):
    run = vendor_run(world, status=ValidationRun.Status.AWAITING_SIGNATURE)
    draft = Report.objects.create(
        run=run,
        document={"x": 1},
        content_sha256="c" * 64,
        required_signatures=["reviewed", "approved"],
    )
    client = signed_in(world.reviewer)
    listed = client.get(reverse("web:reports")).content.decode()
    assert "awaiting signature" in listed and "not yet" in listed
    detail = client.get(reverse("web:report", args=[draft.pk]))
    body = detail.content.decode()
    assert detail.status_code == 200
    assert "Download PDF" not in body and "Still to sign: reviewed, approved." in body
    assert client.get(reverse("web:report-pdf", args=[draft.pk])).status_code == 404
    assert not AuditEvent.objects.filter(action=AuditAction.REPORT_DOWNLOADED).exists()


# --- the detail and the download -----------------------------------------------------------------


def test_the_detail_shows_hashes_signatures_and_the_successor(world):
    run = vendor_run(world)
    old = stored_report(run, b"%PDF-1.7 old")
    new = stored_report(run, b"%PDF-1.7 new", version=2, supersedes=old)
    client = signed_in(world.vendor_user)
    body = client.get(reverse("web:report", args=[old.pk])).content.decode()
    assert old.pdf_sha256 in body and old.content_sha256 in body
    assert old.issued_document_sha256 in body
    assert f'superseded by <a href="/reports/{new.pk}/">version 2</a>' in body
    assert f'href="/reports/{old.pk}/pdf/"' in body
    newer = client.get(reverse("web:report", args=[new.pk])).content.decode()
    assert "This is the current version" in newer
    assert f'<a href="/reports/{old.pk}/">version 1</a>' in newer


def test_a_real_issued_report_shows_its_signatures_and_downloads_audited(world):
    report = issued_real_report(world)
    client = signed_in(world.vendor_user)
    detail = client.get(reverse("web:report", args=[report.pk])).content.decode()
    for signature in report.signatures.all():
        assert signature.printed_name in detail and signature.meaning in detail
    response = client.get(reverse("web:report-pdf", args=[report.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == (
        f'attachment; filename="{report.reference}-v{report.version}.pdf"'
    )
    data = response.getvalue()
    assert data == media_path(report.pdf_path).read_bytes()
    event = AuditEvent.objects.get(action=AuditAction.REPORT_DOWNLOADED)
    assert event.actor == world.vendor_user and event.target_id == str(report.pk)
    assert event.payload == {"pdf_sha256": report.pdf_sha256, "format": "pdf"}
    # The same PDF as a DICOM object, linked beside it and recorded the same way.
    assert reverse("web:report-dicom", args=[report.pk]) in detail
    response = client.get(reverse("web:report-dicom", args=[report.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "application/dicom"
    assert dicom_read(response.content).pdf == data
    events = AuditEvent.objects.filter(action=AuditAction.REPORT_DOWNLOADED).order_by("id")
    assert events[1].payload == {"pdf_sha256": report.pdf_sha256, "format": "dicom"}


def test_downloading_a_report_with_exemplars_records_the_case_data_read(world):
    report = stored_report(
        vendor_run(world),
        b"%PDF-1.7 exemplars",
        document={"explainability": {"exemplars": [{"case": 1}, {"case": 2}]}},
    )
    response = signed_in(world.steward).get(reverse("web:report-pdf", args=[report.pk]))
    assert response.status_code == 200
    assert response.getvalue() == b"%PDF-1.7 exemplars"
    viewed = AuditEvent.objects.get(action=AuditAction.CASE_DATA_VIEWED)
    assert viewed.actor == world.steward and viewed.payload["cases"] == 2


# --- verify a PDF --------------------------------------------------------------------------------


def _verify(client, data: bytes, name="report.pdf", **headers):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(
        reverse("web:verify"),
        {"file": SimpleUploadedFile(name, data, content_type="application/pdf")},
        headers=headers,
    )


def test_the_verify_page_has_an_upload_form_with_progress_and_the_key_fingerprint(world):
    response = signed_in(world.auditor).get(reverse("web:verify"))
    body = response.content.decode()
    assert response.status_code == 200 and response.context["section"] == "verify"
    assert "data-upload" in body and "data-upload-progress" in body and "data-upload-text" in body
    assert 'hx-encoding="multipart/form-data"' in body
    assert public_key_fingerprint() in body


def test_a_genuine_pdf_verifies_and_one_changed_byte_does_not(world):
    report = issued_real_report(world)
    pdf = media_path(report.pdf_path).read_bytes()
    client = signed_in(world.vendor_user)
    genuine = _verify(client, pdf, **{"HX-Request": "true"})
    body = genuine.content.decode()
    assert genuine.status_code == 200 and "<html" not in body  # the fragment alone
    assert "Genuine and current" in body and report.pdf_sha256 in body
    assert f"{report.reference} version {report.version}" in body
    assert public_key_fingerprint() in body
    changed = bytearray(pdf)
    changed[len(changed) // 2] ^= 0x01
    altered = _verify(client, bytes(changed)).content.decode()
    assert "Not genuine: altered" in altered
    assert hashlib.sha256(bytes(changed)).hexdigest() in altered
    assert f"it names {report.reference} version {report.version}" in altered
    answers = AuditEvent.objects.filter(action=AuditAction.REPORT_VERIFIED)
    assert [e.payload["status"] for e in answers] == ["issued-current", "altered"]
    assert all(e.actor == world.vendor_user for e in answers)


def test_a_superseded_pdf_names_the_version_that_replaced_it(world):
    run = vendor_run(world)
    old = stored_report(run, b"%PDF-1.7 old")
    new = stored_report(run, b"%PDF-1.7 new", version=2, supersedes=old)
    body = _verify(signed_in(world.vendor_user), b"%PDF-1.7 old").content.decode()
    assert "Genuine, but superseded" in body
    assert f'<a href="/reports/{new.pk}/">version 2</a>' in body


def test_an_unknown_pdf_is_not_genuine(world):
    response = _verify(signed_in(world.steward), b"%PDF-1.7 made elsewhere")
    body = response.content.decode()
    assert response.status_code == 200
    assert "Not issued by Blindspot" in body and "no issued report matches this file" in body


def test_verifying_another_organisations_pdf_gives_the_verdict_but_names_nothing(world):
    report = stored_report(vendor_run(world), b"%PDF-1.7 vendor A's")
    body = _verify(signed_in(world.other_vendor_user), b"%PDF-1.7 vendor A's").content.decode()
    assert "Genuine and current" in body
    assert report.reference not in body and f"/reports/{report.pk}/" not in body


def test_a_missing_or_oversized_file_is_refused_and_shown(world, monkeypatch):
    client = signed_in(world.vendor_user)
    plain = client.post(reverse("web:verify"), {})
    assert plain.status_code == 400 and "Choose a PDF file to verify." in plain.content.decode()
    assert "<html" in plain.content.decode()
    htmx = client.post(reverse("web:verify"), {}, headers={"HX-Request": "true"})
    assert htmx.status_code == 422 and "<html" not in htmx.content.decode()
    assert 'role="alert"' in htmx.content.decode()
    monkeypatch.setattr("web.views.reports.MAX_VERIFY_BYTES", 10)
    big = _verify(client, b"%PDF-1.7 more than ten bytes", **{"HX-Request": "true"})
    assert big.status_code == 422
    assert "larger than any report" in big.content.decode()
    assert not AuditEvent.objects.filter(action=AuditAction.REPORT_VERIFIED).exists()


# --- dataset cards -------------------------------------------------------------------------------


def granted_version(world, *, cases: int = 14):
    version = DatasetVersionFactory.create(modality="CR")
    dataset = version.dataset
    dataset.partner = world.partner_a
    dataset.card_min_cell = 5
    dataset.save()
    for i in range(cases):
        CaseFactory.create(
            dataset_version=version,
            label=i % 2,
            attributes={
                "sex": "F" if i < 9 else "M",
                "age": 30 if i < 12 else 70,
                "site": "North" if i < 10 else "South",
                "manufacturer": "Acme",
            },
        )
    DatasetGrant.objects.create(
        dataset_version=version, vendor=world.vendor_a, granted_by=world.steward
    )
    return version


def test_a_vendor_sees_the_cards_of_versions_granted_to_it(world):
    mine = granted_version(world)
    other = DatasetVersionFactory.create()
    response = signed_in(world.vendor_user).get(reverse("web:dataset-cards"))
    body = response.content.decode()
    assert response.status_code == 200 and response.context["section"] == "dataset-cards"
    assert f'href="/dataset-cards/{mine.pk}/"' in body
    assert f'href="/dataset-cards/{other.pk}/"' not in body
    assert '<td class="num">14</td>' in body


def test_a_card_shows_distributions_as_bars_with_small_cells_suppressed(world):
    version = granted_version(world)
    body = signed_in(world.vendor_user).get(reverse("web:dataset-card", args=[version.pk]))
    text = body.content.decode()
    assert body.status_code == 200
    assert '<meter min="0" max="14" value="9"' in text  # 9 F of 14 readable
    assert '<meter min="0" max="14" value="14"' in text  # one manufacturer
    # 4 South is under 5; so that the total cannot give it away, the 10 North is hidden too.
    site = text.split('id="h-site"')[1].split("</section>")[0]
    assert "North" in site and "South" in site
    assert site.count("fewer than 5") == 2 and "<meter" not in site
    age = text.split('id="h-age_band"')[1].split("</section>")[0]
    assert "60-79" in age and age.count("fewer than 5") == 2
    assert "style=" not in text


def test_a_revoked_grant_hides_the_card(world):
    version = granted_version(world)
    DatasetGrant.objects.filter(dataset_version=version).update(revoked_at=timezone.now())
    client = signed_in(world.vendor_user)
    assert client.get(reverse("web:dataset-card", args=[version.pk])).status_code == 404
