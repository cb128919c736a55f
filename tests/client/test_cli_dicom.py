"""`blindspot report download --dicom` and `blindspot report verify` on the .dcm, against a live
server: the issued object verifies (the offline signature check reads the PDF inside), an object
with changed metadata is altered."""

import io

import pytest
from django.db import transaction
from pydicom import dcmread

from reports.services import report_draft
from tests.reports.test_verification import _issue, _run_with_results
from validation.services.tokens import api_token_create

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_the_report_downloaded_as_dicom_verifies_and_changed_metadata_does_not(
    cli, world, tmp_path
):
    with transaction.atomic():  # report_draft runs inside its caller's transaction
        draft = report_draft(run=_run_with_results())
    report = _issue(world, draft)
    token = api_token_create(actor=world.auditor, name="test")[1]
    downloaded = cli("report", "download", str(report.pk), "--dicom", token=token)
    assert downloaded.returncode == 0, downloaded.stderr
    dcm = tmp_path / f"{report.reference}-v1.dcm"
    assert dcm.read_bytes()[128:132] == b"DICM"
    verified = cli("report", "verify", str(dcm), token=token)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "the issued, current version" in verified.stdout
    assert "signature of document" in verified.stdout and "verifies" in verified.stdout

    ds = dcmread(io.BytesIO(dcm.read_bytes()))
    ds.PatientName = "DOE^JANE"
    altered = tmp_path / "altered.dcm"
    ds.save_as(altered, enforce_file_format=True)
    checked = cli("report", "verify", str(altered), token=token)
    assert checked.returncode == 1
    assert "ALTERED: not the issued DICOM object" in checked.stdout
    assert "PatientName" in checked.stdout
