"""A real PACS accepts the report's DICOM object: Orthanc (Debian `orthanc`) stores it, files it
under the documented patient, serves back the PDF inside, and the object it returns still
verifies as the issued report. Skipped where the Orthanc binary is absent."""

import json
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

from reports.dicom import PATIENT_NAME
from reports.selectors import report_dicom, report_verification
from reports.services import report_draft
from tests.reports.test_verification import _issue, _pdf, _run_with_results

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db,
    pytest.mark.skipif(shutil.which("Orthanc") is None, reason="orthanc is not installed"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def orthanc(tmp_path):
    port = _free_port()
    config = tmp_path / "orthanc.json"
    config.write_text(
        json.dumps(
            {
                "Name": "blindspot-test",
                "StorageDirectory": str(tmp_path / "db"),
                "IndexDirectory": str(tmp_path / "db"),
                "HttpPort": port,
                "DicomServerEnabled": False,
                "RemoteAccessAllowed": False,
                "AuthenticationEnabled": False,
                "Plugins": [],
            }
        )
    )
    log = (tmp_path / "orthanc.log").open("wb")
    server = subprocess.Popen(["Orthanc", str(config)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/system", timeout=1).read()  # noqa: S310
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("Orthanc did not start: " + (tmp_path / "orthanc.log").read_text())
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def _call(url: str, data: bytes | None = None) -> bytes:
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return response.read()


def test_orthanc_stores_the_object_and_gives_back_one_that_verifies(world, orthanc):
    report = _issue(world, report_draft(run=_run_with_results()))
    data = report_dicom(report)
    stored = json.loads(_call(f"{orthanc}/instances", data))
    assert stored["Status"] == "Success", stored
    instance = f"{orthanc}/instances/{stored['ID']}"
    tags = json.loads(_call(f"{instance}/simplified-tags"))
    assert tags["SOPClassUID"] == "1.2.840.10008.5.1.4.1.1.104.1"
    assert tags["PatientName"] == PATIENT_NAME and tags["AccessionNumber"] == report.reference
    assert _call(f"{instance}/pdf") == _pdf(report)  # Orthanc's own Encapsulated PDF reader
    back = _call(f"{instance}/file")
    result = report_verification(back)
    assert result.status == "issued-current" and result.report == report
