"""The partner's pages without a browser: datasets, versions, imports (live progress, the
refusal list), grants (create, revoke with a reason), the usage log and its CSV."""

import csv
import io
import zipfile
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from tests.factories import (
    CaseFactory,
    DatasetVersionFactory,
    PackageFactory,
    ProtocolFactory,
    RunFactory,
)
from tests.support.people import signed_in
from validation.models import Dataset, DatasetGrant, DatasetImport, DatasetVersion
from validation.services.datasets import dataset_create, dataset_grant

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def streamed(response) -> str:
    """The body of a streaming response (the CSV)."""
    return b"".join(response.streaming_content).decode()


def cohort_zip(folder: Path, name: str = "cohort.zip") -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder))
    buffer.seek(0)
    buffer.name = name
    return buffer


def bad_zip() -> io.BytesIO:
    """A manifest with an unknown column, a bad label and a file that is not in the archive."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("manifest.csv", "case_id,file,label,colour\nA,a.dcm,3,red\nB,missing.dcm,1,b\n")
        zf.writestr("a.dcm", b"not dicom")
    buffer.seek(0)
    buffer.name = "bad.zip"
    return buffer


@pytest.fixture
def version(world):
    """A sealed version of partner A with readable and unreadable cases."""
    v = DatasetVersionFactory.create(
        dataset=Dataset.objects.create(partner=world.partner_a, name="Chest"),
        created_by=world.steward,
    )
    for i in range(6):
        CaseFactory.create(
            dataset_version=v,
            label=i % 2,
            attributes={
                "site": "North" if i < 4 else "South",
                "manufacturer": "Acme Medical",
                "sex": "F" if i % 3 else "M",
                "age": 30 + 10 * i,
            },
        )
    CaseFactory.create(dataset_version=v, read_error="not a DICOM file", file_path="")
    CaseFactory.create(dataset_version=v, read_error="not a DICOM file", file_path="")
    CaseFactory.create(dataset_version=v, read_error="identifying: burned-in text", file_path="")
    return v


# --- datasets -----------------------------------------------------------------------------------


def test_the_dataset_list_shows_only_the_stewards_datasets_with_their_counts(world, version):
    Dataset.objects.create(partner=world.partner_b, name="Other partner's secret")
    response = signed_in(world.steward).get(reverse("web:datasets"))
    body = response.content.decode()
    assert response.status_code == 200 and response.context["section"] == "datasets"
    assert "Chest" in body and "secret" not in body
    assert [d.n_versions for d in response.context["page_obj"]] == [1]


def test_creating_a_dataset_goes_through_the_service_and_is_audited(world):
    client = signed_in(world.steward)
    response = client.post(
        reverse("web:datasets"),
        {
            "partner": world.partner_a.pk,
            "name": "Mammo",
            "description": "screening",
            "identity_policy": "reject",
            "card_min_cell": 7,
        },
        headers=HTMX,
    )
    dataset = Dataset.objects.get(name="Mammo")
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("web:dataset", args=[dataset.pk])
    assert dataset.identity_policy == "reject" and dataset.card_min_cell == 7
    assert AuditEvent.objects.filter(
        action=AuditAction.DATASET_CREATED, target_id=str(dataset.pk)
    ).exists()
    # Plain POST: 303 to the dataset.
    plain = client.post(
        reverse("web:datasets"),
        {
            "partner": world.partner_a.pk,
            "name": "Other",
            "identity_policy": "deidentify",
            "card_min_cell": 5,
        },
    )
    assert plain.status_code == 303


def test_a_refused_dataset_shows_the_services_message_as_a_422_fragment(world):
    dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")
    form = {"partner": world.partner_a.pk, "name": "Chest", "identity_policy": "deidentify"}
    response = signed_in(world.steward).post(
        reverse("web:datasets"), {**form, "card_min_cell": 5}, headers=HTMX
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert "already exists" in body and "<html" not in body and 'role="alert"' in body
    plain = signed_in(world.steward).post(reverse("web:datasets"), {**form, "card_min_cell": 1})
    assert plain.status_code == 400 and "greater than or equal to 2" in plain.content.decode()
    assert Dataset.objects.count() == 1


def test_another_partner_cannot_be_chosen_when_creating(world):
    response = signed_in(world.steward).post(
        reverse("web:datasets"),
        {
            "partner": world.partner_b.pk,
            "name": "X",
            "identity_policy": "deidentify",
            "card_min_cell": 5,
        },
    )
    assert response.status_code == 400 and not Dataset.objects.filter(name="X").exists()


def test_the_dataset_page_lists_versions_and_imports(world, version):
    DatasetImport.objects.create(
        dataset=version.dataset,
        requested_by=world.steward,
        source_name="first.zip",
        status="refused",
        errors=["line 2: bad"],
    )
    body = (
        signed_in(world.steward)
        .get(reverse("web:dataset", args=[version.dataset.pk]))
        .content.decode()
    )
    assert "Version 1" in body and version.merkle_root[:10] in body
    assert "first.zip" in body and "Refused" in body and "1 problem" in body


# --- a version's profile ------------------------------------------------------------------------


def test_the_version_page_shows_the_full_root_counts_reasons_and_charts(world, version):
    response = signed_in(world.steward).get(reverse("web:dataset-version", args=[version.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert version.merkle_root in body  # in full
    profile = response.context["profile"]
    assert (profile["cases"], profile["readable"], profile["unreadable"]) == (9, 6, 3)
    assert (profile["positives"], profile["negatives"]) == (3, 3)
    assert profile["unreadable_by_reason"] == [
        ("not a DICOM file", 2),
        ("identifying: burned-in text", 1),
    ]
    charts = {c["name"]: c for c in profile["charts"]}
    assert charts["site"]["bars"] == [
        {"value": "North", "count": 4},
        {"value": "South", "count": 2},
    ]
    assert [b["value"] for b in charts["age_band"]["bars"]] == ["18-39", "40-59", "60-79", "80+"]
    assert '<meter value="4" min="0" max="4"' in body
    assert "style=" not in body
    assert "without the small-cell suppression" in body


def test_the_unreadable_files_list_is_paginated(world, version):
    for _ in range(30):
        CaseFactory.create(dataset_version=version, read_error="truncated", file_path="")
    client = signed_in(world.steward)
    first = client.get(reverse("web:dataset-version", args=[version.pk]))
    assert len(first.context["page_obj"]) == 25
    second = client.get(reverse("web:dataset-version", args=[version.pk]) + "?page=2")
    assert len(second.context["page_obj"]) == 8 and "Page 2 of 2" in second.content.decode()


def test_the_version_page_reads_in_a_bounded_number_of_queries(
    world, version, django_assert_max_num_queries
):
    client = signed_in(world.steward)
    with django_assert_max_num_queries(16):
        client.get(reverse("web:dataset-version", args=[version.pk]))


# --- imports ------------------------------------------------------------------------------------


def test_an_archive_upload_queues_an_import_that_runs_to_a_version(
    world, cohort, django_capture_on_commit_callbacks
):
    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")
    client = signed_in(world.steward)
    page = client.get(reverse("web:dataset-import-new", args=[dataset.pk])).content.decode()
    assert "data-upload" in page and "data-upload-progress" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("web:dataset-import-new", args=[dataset.pk]),
            {"file": cohort_zip(cohort.parent)},
            headers=HTMX,
        )
    job = DatasetImport.objects.get()
    assert response["HX-Redirect"] == reverse("web:dataset-import", args=[job.pk])
    poll = client.get(reverse("web:dataset-import", args=[job.pk]), headers=HTMX)
    assert poll.status_code == 286  # done: polling stops
    body = poll.content.decode()
    assert "hx-trigger" not in body and "16 / 16 files" in body and "files/s" in body
    assert reverse("web:dataset-version", args=[job.version_id]) in body
    assert AuditEvent.objects.filter(action=AuditAction.DATASET_VERSION_IMPORTED).exists()


def test_a_refused_archive_lists_every_problem_and_stores_nothing(
    world, django_capture_on_commit_callbacks
):
    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")
    client = signed_in(world.steward)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("web:dataset-import-new", args=[dataset.pk]), {"file": bad_zip()})
    job = DatasetImport.objects.get()
    assert job.status == "refused" and job.errors
    response = client.get(reverse("web:dataset-import", args=[job.pk]))
    body = response.content.decode()
    for problem in job.errors:
        assert problem.replace("'", "&#x27;") in body
    assert "Nothing was stored" in body and not DatasetVersion.objects.exists()
    assert AuditEvent.objects.filter(action=AuditAction.DATASET_IMPORT_REFUSED).exists()


def test_a_running_import_keeps_polling_and_shows_its_progress(world):
    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")
    job = DatasetImport.objects.create(
        dataset=dataset,
        requested_by=world.steward,
        source_name="big.zip",
        status="running",
        files_done=40,
        files_total=160,
    )
    response = signed_in(world.steward).get(
        reverse("web:dataset-import", args=[job.pk]), headers=HTMX
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert 'hx-trigger="every 2s, blindspot:visible"' in body and "data-poll" in body
    assert "X-Blindspot-Poll" in body and "40 / 160 files" in body and "Importing" in body
    assert '<progress value="40" max="160"' in body


def test_an_upload_without_a_file_is_refused_on_the_form(world):
    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")
    response = signed_in(world.steward).post(
        reverse("web:dataset-import-new", args=[dataset.pk]), {}, headers=HTMX
    )
    assert response.status_code == 422 and "This field is required" in response.content.decode()
    assert not DatasetImport.objects.exists()


def test_an_archive_over_the_limit_is_refused_before_anything_is_queued(world, settings):
    settings.DATASET_MAX_ARCHIVE_BYTES = 10
    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")
    response = signed_in(world.steward).post(
        reverse("web:dataset-import-new", args=[dataset.pk]), {"file": bad_zip()}, headers=HTMX
    )
    assert response.status_code == 422 and "larger than the limit" in response.content.decode()
    assert not DatasetImport.objects.exists()


# --- grants -------------------------------------------------------------------------------------


def locked_protocol(world):
    return ProtocolFactory.create(
        name="Chest protocol", locked_at=timezone.now(), sha256="a" * 64, locked_by=world.reviewer
    )


def test_a_steward_grants_a_version_through_the_service(world, version):
    protocol = locked_protocol(world)
    ProtocolFactory.create(name="Draft protocol")  # unlocked: not offered
    client = signed_in(world.steward)
    page = client.get(reverse("web:grant-new")).content.decode()
    assert "Chest protocol v1" in page and "Draft protocol" not in page and "Any protocol" in page
    assert "Vendor A" in page and "Partner B" not in page
    response = client.post(
        reverse("web:grant-new"),
        {
            "vendor": world.vendor_a.pk,
            "dataset_version": version.pk,
            "protocol": protocol.pk,
            "max_runs": 3,
            "allow_exemplars": "on",
        },
        headers=HTMX,
    )
    assert response["HX-Redirect"] == reverse("web:grants")
    grant = DatasetGrant.objects.get()
    assert (grant.vendor, grant.protocol, grant.max_runs, grant.allow_exemplars) == (
        world.vendor_a,
        protocol,
        3,
        True,
    )
    assert AuditEvent.objects.filter(action=AuditAction.DATASET_GRANTED).exists()
    listed = client.get(reverse("web:grants")).content.decode()
    assert "Vendor A" in listed and "0 / 3" in listed and "Chest protocol v1" in listed


def test_a_grant_for_any_protocol_and_the_form_refusals(world, version):
    client = signed_in(world.steward)
    client.post(
        reverse("web:grant-new"),
        {"vendor": world.vendor_a.pk, "dataset_version": version.pk, "protocol": "any"},
    )
    assert DatasetGrant.objects.get().protocol is None
    other = DatasetVersionFactory.create(
        dataset=Dataset.objects.create(partner=world.partner_b, name="B")
    )
    refused = client.post(
        reverse("web:grant-new"),
        {
            "vendor": world.partner_b.pk,
            "dataset_version": other.pk,
            "protocol": "any",
            "max_runs": 0,
        },
        headers=HTMX,
    )
    assert refused.status_code == 422
    assert refused.content.decode().count('class="errorlist"') == 3  # vendor, version, cap
    draft = DatasetVersionFactory.create(
        dataset=version.dataset, version=2, status="draft", merkle_root="", sealed_at=None
    )
    assert (
        draft
        not in client.get(reverse("web:grant-new"))
        .context["form"]
        .fields["dataset_version"]
        .queryset
    )


def test_revoking_records_the_reason_and_shows_it(world, version):
    grant = dataset_grant(actor=world.steward, dataset_version=version, vendor=world.vendor_a)
    client = signed_in(world.steward)
    empty = client.post(reverse("web:grant-revoke", args=[grant.pk]), {"reason": ""})
    assert empty.status_code == 400
    response = client.post(
        reverse("web:grant-revoke", args=[grant.pk]), {"reason": "Ethics approval ended"}
    )
    assert response.status_code == 303
    grant.refresh_from_db()
    assert grant.revoked_at is not None
    event = AuditEvent.objects.get(action=AuditAction.DATASET_GRANT_REVOKED)
    assert event.payload["reason"] == "Ethics approval ended"
    listed = client.get(reverse("web:grants")).content.decode()
    assert "Revoked" in listed and "Reason: Ethics approval ended" in listed
    again = client.post(
        reverse("web:grant-revoke", args=[grant.pk]), {"reason": "twice"}, headers=HTMX
    )
    assert again.status_code == 422 and "already revoked" in again.content.decode()


def test_revoking_needs_a_post(world, version):
    grant = dataset_grant(actor=world.steward, dataset_version=version, vendor=world.vendor_a)
    assert (
        signed_in(world.steward).get(reverse("web:grant-revoke", args=[grant.pk])).status_code
        == 405
    )


def test_the_api_revokes_with_a_reason_too(world, version):
    from rest_framework.test import APIClient

    grant = dataset_grant(actor=world.steward, dataset_version=version, vendor=world.vendor_a)
    api = APIClient()
    api.force_authenticate(world.steward)
    response = api.post(f"/api/v1/grants/{grant.pk}/revoke/", {"reason": "done"}, format="json")
    assert response.status_code == 200
    assert (
        AuditEvent.objects.get(action=AuditAction.DATASET_GRANT_REVOKED).payload["reason"] == "done"
    )


def test_runs_used_counts_the_vendors_runs_on_each_grant(
    world, version, django_assert_max_num_queries
):
    dataset_grant(actor=world.steward, dataset_version=version, vendor=world.vendor_a, max_runs=5)
    dataset_grant(actor=world.steward, dataset_version=version, vendor=None)
    package = PackageFactory.create(vendor=world.vendor_a)
    RunFactory.create(package=package, dataset_version=version)
    RunFactory.create(package=package, dataset_version=version, status="cancelled")
    client = signed_in(world.steward)
    with django_assert_max_num_queries(16):
        response = client.get(reverse("web:grants"))
    used = [(r["grant"].vendor_id, r["used"]) for r in response.context["rows"]]
    assert used == [(None, None), (world.vendor_a.pk, 1)]
    assert "1 / 5" in response.content.decode() and "Any vendor" in response.content.decode()


# --- usage --------------------------------------------------------------------------------------


@pytest.fixture
def usage_runs(world, version):
    other_dataset = DatasetVersionFactory.create(
        dataset=Dataset.objects.create(partner=world.partner_a, name="Knee")
    )
    package = PackageFactory.create(vendor=world.vendor_a, name='=HYPERLINK("x")', version="2.0")
    a = RunFactory.create(
        package=package, dataset_version=version, requested_by=world.vendor_user, cases_total=6
    )
    b = RunFactory.create(package=package, dataset_version=other_dataset, status="issued")
    hidden = RunFactory.create(
        dataset_version=DatasetVersionFactory.create(
            dataset=Dataset.objects.create(partner=world.partner_b, name="Theirs")
        )
    )
    return a, b, hidden


def test_the_usage_log_lists_runs_on_the_stewards_datasets_filterable(world, version, usage_runs):
    a, b, hidden = usage_runs
    client = signed_in(world.steward)
    everything = client.get(reverse("web:usage"))
    assert {r.pk for r in everything.context["page_obj"]} == {a.pk, b.pk}
    body = everything.content.decode()
    assert "Vendor A" in body and "Theirs" not in body and "vendor_a_user" in body
    one = client.get(reverse("web:usage") + f"?dataset={version.dataset.pk}")
    assert [r.pk for r in one.context["page_obj"]] == [a.pk]
    assert f"usage.csv?dataset={version.dataset.pk}" in one.content.decode()
    theirs = Dataset.objects.get(name="Theirs")
    assert client.get(reverse("web:usage") + f"?dataset={theirs.pk}").status_code == 404


def test_the_usage_csv_is_escaped_and_guarded_against_formulas(world, version, usage_runs):
    a, b, _hidden = usage_runs
    response = signed_in(world.steward).get(reverse("web:usage-csv"))
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(streamed(response))))
    assert {int(r["run"]) for r in rows} == {a.pk, b.pk}
    row = next(r for r in rows if int(r["run"]) == a.pk)
    assert row["package"] == '\'=HYPERLINK("x") 2.0'  # quoted, and not a formula
    assert row["vendor"] == "Vendor A" and row["requested_by"] == "vendor_a_user"
    assert row["dataset"] == "Chest" and row["cases"] == "6" and row["status"] == "queued"
    filtered = signed_in(world.steward).get(
        reverse("web:usage-csv") + f"?dataset={version.dataset.pk}"
    )
    lines = streamed(filtered).strip().splitlines()
    assert len(lines) == 2


def test_the_usage_log_paginates_on_the_server(world, version):
    package = PackageFactory.create(vendor=world.vendor_a)
    RunFactory.create_batch(27, package=package, dataset_version=version)
    client = signed_in(world.steward)
    assert len(client.get(reverse("web:usage")).context["page_obj"]) == 25
    assert len(client.get(reverse("web:usage") + "?page=2").context["page_obj"]) == 2


def test_the_import_rate_counts_from_when_a_worker_took_it_not_from_the_upload(world):
    from datetime import timedelta

    from django.utils import timezone

    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")
    job = DatasetImport.objects.create(
        dataset=dataset, requested_by=world.steward, source_name="big.zip", status="queued"
    )
    page = signed_in(world.steward).get(reverse("web:dataset-import", args=[job.pk]))
    assert "waiting for a worker" in page.content.decode()
    # An hour in the queue, then 10 s of work for 50 files: 5 files/s, not 0.01.
    DatasetImport.objects.filter(pk=job.pk).update(
        created_at=timezone.now() - timedelta(hours=1),
        started_at=timezone.now() - timedelta(seconds=10),
        status="running",
        files_done=50,
        files_total=100,
    )
    body = signed_in(world.steward).get(reverse("web:dataset-import", args=[job.pk])).content
    assert b"5.0 files/s" in body and b"since a worker took it" in body


def test_a_worker_taking_an_import_records_when(world, tmp_path):
    from validation.services.dataset_imports import _claim

    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")
    job = DatasetImport.objects.create(
        dataset=dataset, requested_by=world.steward, source_name="a.zip"
    )
    assert job.started_at is None
    assert _claim(job.pk, "cpu@test") == 1
    job.refresh_from_db()
    assert job.started_at is not None and job.started_at == job.heartbeat_at
