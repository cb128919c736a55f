"""Partner datasets through the API as a steward, a vendor and the validation team use them:
create, import an archive, grant, cap, revoke, read the usage log and the vendor's card."""

import io
import zipfile
from pathlib import Path

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from tests.factories import PackageFactory, protocol_document
from validation.errors import ApplicationError
from validation.models import DatasetVersion, ModelPackage, ValidationRun
from validation.services import runs
from validation.services.datasets import dataset_create, dataset_grant, dataset_version_import
from validation.services.protocols import protocol_create
from validation.stats.disclosure import counts_disclosed

pytestmark = pytest.mark.django_db


def _client(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def _zip(folder: Path) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder))
    buffer.seek(0)
    buffer.name = "cohort.zip"
    return buffer


def test_a_steward_creates_a_dataset_and_imports_an_archive(
    world, cohort, settings, django_capture_on_commit_callbacks
):
    steward = _client(world.steward)
    created = steward.post(
        "/api/v1/datasets/",
        {"partner": world.partner_a.pk, "name": "Chest", "identity_policy": "deidentify"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    dataset_id = created.json()["id"]
    assert (
        _client(world.other_steward)
        .post("/api/v1/datasets/", {"partner": world.partner_a.pk, "name": "X"}, format="json")
        .status_code
        == 404  # another's partner answers like a missing one (issue 14, item 4)
    )
    assert _client(world.vendor_user).get("/api/v1/datasets/").json()["results"] == []

    with django_capture_on_commit_callbacks(execute=True):
        accepted = steward.post(
            f"/api/v1/datasets/{dataset_id}/imports/",
            {"file": _zip(cohort.parent)},
            format="multipart",
        )
    assert accepted.status_code == 202, accepted.json()
    job = steward.get(f"/api/v1/dataset-imports/{accepted.json()['id']}/").json()
    assert job["status"] == "done", job
    assert job["files_done"] == job["files_total"] == 16
    assert job["version"] is not None and job["source_name"] == "cohort.zip"
    detail = steward.get(f"/api/v1/datasets/{dataset_id}/").json()
    assert detail["versions"][0]["cases"] == 16 and detail["versions"][0]["unreadable_cases"] == 0
    # The upload is gone once imported; nothing waits in the staging area.
    incoming = Path(settings.SEQUESTERED_ROOT) / "incoming"
    assert [p for p in incoming.rglob("*") if p.is_file()] == []
    assert (
        _client(world.other_steward)
        .get(f"/api/v1/dataset-imports/{accepted.json()['id']}/")
        .status_code
        == 404
    )


def test_a_refused_archive_import_says_why_and_stores_nothing(
    world, settings, django_capture_on_commit_callbacks
):
    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")
    upload = io.BytesIO()
    with zipfile.ZipFile(upload, "w") as zf:
        zf.writestr("manifest.csv", "case_id,file,label\nA,a.dcm,3\n")
        zf.writestr("a.dcm", b"not dicom")
    upload.seek(0)
    upload.name = "bad.zip"
    with django_capture_on_commit_callbacks(execute=True):
        accepted = _client(world.steward).post(
            f"/api/v1/datasets/{dataset.pk}/imports/", {"file": upload}, format="multipart"
        )
    job = _client(world.steward).get(f"/api/v1/dataset-imports/{accepted.json()['id']}/").json()
    assert job["status"] == "refused" and "nothing was imported" in job["message"]
    assert job["errors"] == ["line 2: label must be 0 or 1, got '3'"]
    assert not DatasetVersion.objects.exists()
    assert [p for p in Path(settings.SEQUESTERED_ROOT).rglob("*") if p.is_file()] == []


@pytest.fixture
def granted(world, cohort):
    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")
    version = dataset_version_import(actor=world.steward, dataset=dataset, source=cohort)
    protocol = protocol_create(actor=world.reviewer, name="P", document=protocol_document())
    other = protocol_create(actor=world.reviewer, name="Q", document=protocol_document())
    package = PackageFactory.create(
        vendor=world.vendor_a,
        status=ModelPackage.Status.APPROVED,
        reviewed_by=world.reviewer,
        reviewed_at=timezone.now(),
    )
    return dataset, version, protocol, other, package


def test_grants_scope_protocol_and_cap_runs_and_revocation_stops_queued_runs(
    world, granted, django_capture_on_commit_callbacks
):
    dataset, version, protocol, other, package = granted
    response = _client(world.steward).post(
        "/api/v1/grants/",
        {
            "dataset_version": version.pk,
            "vendor": world.vendor_a.pk,
            "protocol": protocol.pk,
            "max_runs": 1,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    grant = response.json()
    assert grant["protocol"] == "P v1" and grant["max_runs"] == 1 and grant["runs_used"] == 0
    assert (
        _client(world.vendor_user)
        .post(
            "/api/v1/grants/",
            {"dataset_version": version.pk, "vendor": world.vendor_a.pk},
            format="json",
        )
        .status_code
        == 404
    )  # a vendor cannot even see the version

    def start(with_protocol):
        with django_capture_on_commit_callbacks(execute=False):
            return runs.run_start(
                actor=world.reviewer,
                package=package,
                dataset_version=version,
                protocol=with_protocol,
            )

    with pytest.raises(ApplicationError, match="under this protocol"):
        start(other)
    run = start(protocol)
    with pytest.raises(ApplicationError, match="the partner's grant allows 1") as caught:
        start(protocol)
    assert caught.value.status_code == 409

    usage = _client(world.steward).get(f"/api/v1/datasets/{dataset.pk}/usage/").json()["results"]
    assert [(u["run"], u["vendor"], u["protocol"], u["requested_by"]) for u in usage] == [
        (run.pk, "Vendor A", "P v1", "reviewer")
    ]
    assert (
        _client(world.other_steward).get(f"/api/v1/datasets/{dataset.pk}/usage/").status_code == 404
    )
    assert (
        _client(world.vendor_user).get(f"/api/v1/datasets/{dataset.pk}/usage/").status_code == 404
    )

    revoked = _client(world.steward).post(f"/api/v1/grants/{grant['id']}/revoke/")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert _client(world.steward).post(f"/api/v1/grants/{grant['id']}/revoke/").status_code == 409
    # The queued run stops before any image reaches the model.
    runs.run_infer(run_id=run.pk)
    run = ValidationRun.objects.get(pk=run.pk)
    assert run.status == "failed" and "withdrew permission" in run.error_public
    assert not run.predictions.exists()
    with pytest.raises(ApplicationError, match="not granted"):
        start(protocol)


def test_vendors_read_only_the_cards_of_versions_granted_to_them(world, granted):
    _dataset, version, _protocol, _other, _package = granted
    vendor = _client(world.vendor_user)
    assert vendor.get("/api/v1/dataset-cards/").json() == {
        "next": None,
        "previous": None,
        "results": [],
    }
    grant = dataset_grant(actor=world.steward, dataset_version=version, vendor=world.vendor_a)
    cards = vendor.get("/api/v1/dataset-cards/").json()["results"]
    assert len(cards) == 1
    card = cards[0]
    assert card["cases"] == 16 and card["readable_cases"] == 16 and card["sites"] == 3
    assert card["modality"] and card["min_cell"] == 5 and card["merkle_root"] == version.merkle_root
    for name in ("sex", "age_band", "race", "site", "manufacturer"):
        rows = card["demographics"][name]
        shown = sum(r["n"] for r in rows if "n" in r)
        hidden = [r for r in rows if r.get("suppressed")]
        assert all(r["n"] >= 5 for r in rows if "n" in r)
        assert len(hidden) != 1  # one hidden cell would be given away by the total
        assert shown + (0 if not hidden else 1) <= 16
    text = str(card)
    for forbidden in ("case_id", "file_sha256", "CASE-", "institution"):
        assert forbidden not in text  # no case-level data, no institution names
    assert (
        _client(world.other_vendor_user).get(f"/api/v1/dataset-cards/{version.pk}/").status_code
        == 404
    )
    grant.revoked_at = grant.granted_at
    grant.save()
    assert vendor.get(f"/api/v1/dataset-cards/{version.pk}/").status_code == 404


@pytest.mark.parametrize(
    "counts, expected",
    [
        ({"A": 10, "B": 3, "C": 7}, [("A", 10), ("C", None), ("B", None)]),
        ({"A": 10, "B": 3, "C": 2}, [("A", 10), ("B", None), ("C", None)]),
        ({"A": 10, "B": 0}, [("A", 10)]),
        ({"A": 4}, [("A", None)]),
        ({"A": 6, "B": 5}, [("A", 6), ("B", 5)]),
    ],
)
def test_small_cells_are_suppressed_with_their_complement(counts, expected):
    rows = counts_disclosed(counts, min_cell=5)
    assert [(r["group"], r.get("n")) for r in rows] == expected


def test_an_upload_whose_job_cannot_be_recorded_leaves_nothing_behind(world, settings, monkeypatch):
    from validation.models import DatasetImport

    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")

    def refuse(**kwargs):
        raise RuntimeError("database unavailable")

    monkeypatch.setattr(DatasetImport.objects, "create", refuse)
    upload = io.BytesIO(b"PK\x05\x06" + b"\x00" * 18)
    upload.name = "empty.zip"
    with pytest.raises(RuntimeError):
        _client(world.steward).post(
            f"/api/v1/datasets/{dataset.pk}/imports/", {"file": upload}, format="multipart"
        )
    assert [p for p in Path(settings.SEQUESTERED_ROOT).rglob("*") if p.is_file()] == []
