"""The issued report as a DICOM Encapsulated PDF object: what it carries, that it is valid
(pydicom, dciodvfy), deterministic, and verified like the PDF (issued, altered PDF, altered
metadata, not an Encapsulated PDF) by the service, the command, the API and the web page."""

import io
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from pydicom import dcmread
from pydicom.data import get_testdata_file
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from reports.dicom import (
    ENCAPSULATED_PDF_STORAGE,
    IMPLEMENTATION_CLASS_UID,
    PATIENT_NAME,
    PRIVATE_CREATOR,
    PRIVATE_GROUP,
    NotAReportObject,
    dicom_make,
    dicom_read,
)
from reports.models import Report
from reports.selectors import report_dicom, report_dicom_identity, report_verification
from reports.services import report_correct, report_dicom_download, report_draft, report_verify
from tests.reports.test_verification import _issue, _pdf, _run_with_results
from validation.errors import ApplicationError

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def issued(world):
    return _issue(world, report_draft(run=_run_with_results()))


def _ct_image() -> bytes:
    """A real CT image object from pydicom's test files: DICOM, but not a report."""
    return Path(str(get_testdata_file("CT_small.dcm", read=False))).read_bytes()


def _rewritten(data: bytes, **changes) -> bytes:
    ds = dcmread(io.BytesIO(data))
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_the_object_carries_the_pdf_and_the_reports_identifiers_and_no_patient(world, issued):
    data = report_dicom(issued)
    ds = dcmread(io.BytesIO(data))
    pdf = _pdf(issued)
    assert ds.SOPClassUID == ENCAPSULATED_PDF_STORAGE == ds.file_meta.MediaStorageSOPClassUID
    assert ds.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID  # not pydicom's
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert bytes(ds.EncapsulatedDocument)[: ds.EncapsulatedDocumentLength] == pdf
    assert ds.EncapsulatedDocumentLength == len(pdf)
    assert ds.DocumentTitle == f"Blindspot validation report {issued.reference} version 1"
    assert issued.reference in ds.SeriesDescription and ds.SeriesNumber == 1
    assert ds.AccessionNumber == ds.StudyID == issued.reference
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)
    assert block[0x03].value == issued.issued_document_sha256
    assert block[0x04].value == issued.pdf_sha256
    assert block[0x05].value == issued.service_signature
    # No patient: the documented convention, the dataset version's id and Merkle root prefix.
    dataset = issued.run.dataset_version
    assert str(ds.PatientName) == PATIENT_NAME
    assert ds.PatientID == f"BLINDSPOT-DSV{dataset.pk}-{dataset.merkle_root[:16]}"
    assert ds.PatientIdentityRemoved == "YES" and ds.BurnedInAnnotation == "NO"
    case_ids = set(dataset.cases.values_list("case_id", flat=True))
    assert not any(case_id.encode() in data.replace(pdf, b"") for case_id in case_ids)
    assert ds.ContentDate == issued.issued_at.strftime("%Y%m%d")
    for keyword in (  # the IOD's Type 1 and 2 attributes, module by module
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "ReferringPhysicianName",
        "Modality",
        "SeriesInstanceUID",
        "Manufacturer",
        "ConversionType",
        "InstanceNumber",
        "ContentTime",
        "AcquisitionDateTime",
        "ConceptNameCodeSequence",
        "SOPInstanceUID",
    ):
        assert keyword in ds, keyword
    assert ds.Modality == "DOC" and ds.ConversionType == "WSD"


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools is not installed")
def test_dciodvfy_finds_no_error_in_the_object(world, issued, tmp_path):
    path = tmp_path / "report.dcm"
    path.write_bytes(report_dicom(issued))
    checked = subprocess.run(
        ["dciodvfy", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    out = checked.stdout + checked.stderr
    assert "EncapsulatedPDF" in out  # it recognised the IOD
    assert "Error" not in out, out
    # The check has teeth: the same object without its Type 1 Modality is an error.
    broken = dcmread(io.BytesIO(path.read_bytes()))
    del broken.Modality
    broken.save_as(tmp_path / "broken.dcm", enforce_file_format=True)
    checked = subprocess.run(
        ["dciodvfy", str(tmp_path / "broken.dcm")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Error" in checked.stdout + checked.stderr


def test_the_same_report_gives_the_same_bytes_and_uids_follow_its_hashes(world, issued):
    first = report_dicom(issued)
    assert report_dicom(Report.objects.get(pk=issued.pk)) == first
    identity = report_dicom_identity(issued)
    other = dicom_make(pdf=_pdf(issued), identity=replace(identity, pdf_sha256="0" * 64))
    a, b = dcmread(io.BytesIO(first)), dcmread(io.BytesIO(other))
    assert a.SOPInstanceUID != b.SOPInstanceUID
    assert a.StudyInstanceUID == b.StudyInstanceUID  # one study per run's report
    assert a.SOPInstanceUID.startswith("2.25.") and len(a.SOPInstanceUID) <= 64


def test_the_issued_object_verifies_and_its_pdf_is_the_issued_pdf(world, issued):
    data = report_dicom(issued)
    result = report_verification(data)
    assert result.status == "issued-current" and result.report == issued
    assert result.format == "dicom" and result.pdf_sha256 == issued.pdf_sha256
    assert dicom_read(data).pdf == _pdf(issued)


def test_a_changed_byte_in_the_pdf_inside_is_altered(world, issued):
    data = bytearray(report_dicom(issued))
    start = bytes(data).index(b"%PDF")
    data[start + len(_pdf(issued)) // 2] ^= 0x01
    result = report_verification(bytes(data))
    assert result.status == "altered" and result.report == issued
    assert result.pdf_sha256 != issued.pdf_sha256


def test_changed_metadata_around_the_issued_pdf_is_altered(world, issued):
    data = _rewritten(report_dicom(issued), PatientName="DOE^JANE", SeriesNumber=7)
    assert dicom_read(data).pdf == _pdf(issued)  # the PDF alone would verify
    result = report_verification(data)
    assert result.status == "altered" and result.report == issued
    assert "PatientName" in result.detail and "SeriesNumber" in result.detail
    # An object re-made around another PDF, still naming the report, is altered too.
    other = dicom_make(pdf=b"%PDF-1.4\nforged\n%%EOF\n", identity=report_dicom_identity(issued))
    forged = report_verification(other)
    assert forged.status == "altered" and forged.report == issued


def test_a_dicom_object_that_is_not_an_encapsulated_pdf_is_refused(world, issued):
    with pytest.raises(ApplicationError, match="not Encapsulated PDF Storage"):
        report_verify(actor=world.auditor, data=_ct_image())
    not_pdf = _rewritten(report_dicom(issued), MIMETypeOfEncapsulatedDocument="text/xml")
    with pytest.raises(NotAReportObject, match="not a PDF"):
        dicom_read(not_pdf)
    with pytest.raises(NotAReportObject, match="does not parse"):
        dicom_read(bytes(128) + b"DICM" + b"\x02\x00\x00\x00garbage")
    assert not AuditEvent.objects.filter(action=AuditAction.REPORT_VERIFIED).exists()


def test_a_superseded_reports_object_verifies_as_superseded(world, issued):
    old = report_dicom(issued)
    correction = _issue(world, report_correct(actor=world.reviewer, report=issued, reason="Typo."))
    result = report_verification(old)
    assert result.status == "superseded" and result.current == correction
    assert report_verification(report_dicom(correction)).status == "issued-current"


def test_the_download_service_audits_like_the_pdf_and_refuses_drafts(world, issued):
    data = report_dicom_download(actor=world.vendor_user, report=issued)
    assert data == report_dicom(issued)
    event = AuditEvent.objects.get(action=AuditAction.REPORT_DOWNLOADED)
    assert event.actor == world.vendor_user and event.payload["format"] == "dicom"
    draft = report_correct(actor=world.reviewer, report=issued, reason="Typo.")
    with pytest.raises(ApplicationError, match="not been issued"):
        report_dicom_download(actor=world.reviewer, report=draft)
    api = APIClient()
    api.force_authenticate(world.reviewer)
    problem = api.get(f"/api/v1/reports/{draft.pk}/dicom/")
    assert problem.status_code == 409
    assert problem["Content-Type"] == "application/problem+json"
    assert AuditEvent.objects.filter(action=AuditAction.REPORT_DOWNLOADED).count() == 1


def test_the_command_api_and_page_verify_the_object(world, issued, tmp_path, capsys):
    good = tmp_path / "report.dcm"
    good.write_bytes(report_dicom(issued))
    call_command("report_verify", str(good))
    out = capsys.readouterr().out
    assert "ISSUED AND CURRENT" in out and "DICOM" in out
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(_rewritten(good.read_bytes(), PatientName="DOE^JANE"))
    with pytest.raises(SystemExit) as exited:
        call_command("report_verify", str(bad))
    assert exited.value.code == 2 and "PatientName" in capsys.readouterr().out

    api = APIClient()
    api.force_authenticate(world.auditor)
    response = api.get(f"/api/v1/reports/{issued.pk}/dicom/")
    assert response.status_code == 200 and response["Content-Type"] == "application/dicom"
    assert f"{issued.reference}-v1.dcm" in response["Content-Disposition"]
    assert response.content == good.read_bytes()
    upload = io.BytesIO(response.content)
    upload.name = "report.dcm"
    body = api.post("/api/v1/reports/verify/", {"file": upload}, format="multipart").json()
    assert body["status"] == "issued-current" and body["format"] == "dicom"
    assert body["pdf_sha256"] == issued.pdf_sha256 != body["file_sha256"]
    image = io.BytesIO(_ct_image())
    image.name = "image.dcm"
    refused = api.post("/api/v1/reports/verify/", {"file": image}, format="multipart")
    assert refused.status_code == 400 and "Encapsulated PDF" in refused.json()["detail"]

    page = Client()
    page.force_login(world.reviewer)
    detail = page.get(reverse("web:report", args=[issued.pk])).content.decode()
    assert reverse("web:report-dicom", args=[issued.pk]) in detail
    download = page.get(reverse("web:report-dicom", args=[issued.pk]))
    assert download.status_code == 200 and download.content == good.read_bytes()
    with bad.open("rb") as handle:
        verdict = page.post(reverse("web:verify"), {"file": handle}).content.decode()
    assert "Not genuine: altered" in verdict and "PatientName" in verdict
    assert "This DICOM object is not one Blindspot issued" in verdict
    ct = tmp_path / "image.dcm"
    ct.write_bytes(_ct_image())
    with ct.open("rb") as handle:
        refused_page = page.post(reverse("web:verify"), {"file": handle})
    assert refused_page.status_code == 400
    assert "not Encapsulated PDF Storage" in refused_page.content.decode()
