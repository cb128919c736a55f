"""A partner steward's journeys in a real browser: create a dataset, import an archive with the
upload progress bar and follow the import live on a real worker, read the version; see every
problem of a bad archive with nothing stored; grant the version and revoke it with a reason;
download the usage log."""

import csv
import io
import re
import zipfile
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from audit.models import AuditAction, AuditEvent
from tests.factories import PASSWORD, PackageFactory, ProtocolFactory, RunFactory
from tests.support.browser import look, sign_in
from validation.models import DatasetGrant, DatasetImport, DatasetVersion


@pytest.fixture
def archives(cohort, tmp_path) -> tuple[Path, Path]:
    good = tmp_path / "cohort.zip"
    with zipfile.ZipFile(good, "w") as zf:
        for path in sorted(cohort.parent.rglob("*")):
            zf.write(path, path.relative_to(cohort.parent))
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("manifest.csv", "case_id,file,label\nA,a.dcm,3\nB,missing.dcm,1\nB,a.dcm,0\n")
        zf.writestr("a.dcm", b"not dicom")
    return good, bad


def test_a_steward_imports_an_archive_reads_the_version_and_sees_a_refusal_listed(
    web, live_server, world, archives, celery_worker_thread
):
    good, bad = archives
    sign_in(web, live_server.url, "steward_a", PASSWORD)
    web.get_by_role("navigation", name="Main").get_by_role("link", name="Datasets").click()
    expect(web.get_by_role("heading", level=1)).to_have_text("Datasets")
    look(web, "partner-datasets-empty")

    web.get_by_label("Name").fill("Chest X-ray")
    web.get_by_label("Description").fill("Screening, three sites")
    web.get_by_role("button", name="Create dataset").click()
    expect(web.get_by_role("heading", level=1)).to_have_text("Chest X-ray")
    look(web, "partner-dataset-empty")

    web.get_by_role("link", name="Import a version").click()
    expect(web.get_by_role("heading", level=1)).to_contain_text("Import a version")
    look(web, "partner-import-upload")
    web.get_by_label("Archive", exact=True).set_input_files(str(good))
    web.get_by_role("button", name="Upload and import").click()
    # The upload's progress bar was shown, then htmx followed HX-Redirect to the import.
    expect(web).to_have_url(re.compile(r"/datasets/imports/\d+/$"))
    progress = web.locator("#import-progress")
    expect(progress).to_contain_text("Done", timeout=60_000)
    expect(progress).to_contain_text("16 / 16 files")
    expect(progress).to_contain_text("files/s")
    expect(progress).not_to_have_attribute("hx-trigger", re.compile("every"))  # polling stopped
    look(web, "partner-import-done")

    version = DatasetVersion.objects.get()
    web.get_by_role("link", name="Open version 1").click()
    expect(web.get_by_role("heading", level=1)).to_contain_text("version 1")
    expect(web.get_by_text(version.merkle_root)).to_be_visible()
    expect(web.locator("figure.chart")).to_have_count(4)
    expect(web.locator("figure.chart meter").first).to_be_visible()
    look(web, "partner-version")
    web.set_viewport_size({"width": 1920, "height": 1080})
    look(web, "partner-version-1920")
    web.set_viewport_size({"width": 1280, "height": 900})

    # A bad archive: every problem listed, nothing stored.
    web.get_by_role("link", name="Chest X-ray").click()
    look(web, "partner-dataset")
    web.get_by_role("link", name="Import a version").click()
    web.get_by_label("Archive", exact=True).set_input_files(str(bad))
    web.get_by_role("button", name="Upload and import").click()
    expect(web).to_have_url(re.compile(r"/datasets/imports/\d+/$"))
    expect(progress).to_contain_text("Refused", timeout=60_000)
    job = DatasetImport.objects.get(source_name="bad.zip")
    assert len(job.errors) >= 2, job.errors
    problems = web.locator("#import-progress ol.problems li")
    expect(problems).to_have_count(len(job.errors))
    for problem in job.errors:
        expect(web.locator("#import-progress")).to_contain_text(problem)
    expect(progress).to_contain_text("Nothing was stored")
    look(web, "partner-import-refused")
    assert DatasetVersion.objects.count() == 1


def test_a_steward_grants_a_version_revokes_it_with_a_reason_and_downloads_the_usage_log(
    web, live_server, world, cohort
):
    from validation.services.datasets import dataset_create, dataset_version_import

    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest X-ray")
    version = dataset_version_import(actor=world.steward, dataset=dataset, source=cohort)
    ProtocolFactory.create(
        name="Chest protocol", locked_at=timezone.now(), sha256="b" * 64, locked_by=world.reviewer
    )
    package = PackageFactory.create(vendor=world.vendor_a, name="@Finder", version="1.0")
    RunFactory.create(
        package=package, dataset_version=version, requested_by=world.vendor_user, cases_total=16
    )

    sign_in(web, live_server.url, "steward_a", PASSWORD)
    web.get_by_role("navigation", name="Main").get_by_role("link", name="Grants").click()
    expect(web.get_by_role("heading", level=1)).to_have_text("Grants")
    look(web, "partner-grants-empty")
    web.get_by_role("link", name="Grant a version").click()
    look(web, "partner-grant-new")
    web.get_by_label("Vendor").select_option(label="Vendor A")
    web.get_by_label("Dataset version").select_option(label="Chest X-ray v1 (Partner A)")
    web.get_by_label("Protocol").select_option(label="Chest protocol v1")
    web.get_by_label("Run cap").fill("3")
    web.get_by_label("Exemplar images allowed").check()
    web.get_by_role("button", name="Grant").click()
    expect(web).to_have_url(re.compile(r"/grants/$"))
    row = web.get_by_role("row").filter(has_text="Vendor A")
    expect(row).to_contain_text("1 / 3")
    expect(row).to_contain_text("Active")
    look(web, "partner-grants")

    row.get_by_text("Revoke…").click()
    row.get_by_label("Reason for revoking").fill("Ethics approval withdrawn")
    row.get_by_role("button", name="Revoke grant").click()
    expect(web.get_by_role("row").filter(has_text="Vendor A")).to_contain_text(
        "Reason: Ethics approval withdrawn"
    )
    look(web, "partner-grants-revoked")
    assert DatasetGrant.objects.get().revoked_at is not None
    event = AuditEvent.objects.get(action=AuditAction.DATASET_GRANT_REVOKED)
    assert event.payload["reason"] == "Ethics approval withdrawn"

    web.get_by_role("navigation", name="Main").get_by_role("link", name="Usage log").click()
    expect(web.get_by_role("row").filter(has_text="Vendor A")).to_contain_text("@Finder 1.0")
    web.get_by_label("Dataset").select_option(label="Chest X-ray (Partner A)")
    web.get_by_role("button", name="Filter").click()
    expect(web).to_have_url(re.compile(rf"/usage/\?dataset={dataset.pk}$"))
    look(web, "partner-usage")
    with web.expect_download() as download:
        web.get_by_role("link", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [(r["vendor"], r["package"], r["cases"]) for r in rows] == [
        ("Vendor A", "'@Finder 1.0", "16")
    ]
