"""Package upload and review through the API, as a vendor and a reviewer would use them."""

import io
import json
import tarfile

import pytest
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from config.celery import QueuedTask
from validation.models import ModelPackage

pytestmark = pytest.mark.django_db


def _client(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.sandbox
def test_vendor_uploads_and_reviewer_approves(
    world, package_file, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as queued:
        with open(package_file, "rb") as fh:
            response = _client(world.vendor_user).post(
                "/api/v1/packages/", {"file": fh}, format="multipart"
            )
        # Accepted for testing at once: the smoke test is a task queued on commit.
        assert response.status_code == 202, response.json()
        body = response.json()
        assert body["status"] == "testing" and body["smoke_load_seconds"] is None
    tasks = [q.name for q in queued if isinstance(q, QueuedTask)]
    assert tasks == ["validation.tasks.package_smoke_test"]
    polled = _client(world.vendor_user).get(f"/api/v1/packages/{body['id']}/")
    body = polled.json()
    assert body["status"] == "submitted" and body["vendor"] == "Vendor A"
    assert body["smoke_load_seconds"] > 0 and len(body["sha256"]) == 64
    assert body["refusal_category"] == "" and body["refusal_reasons"] == []

    refused = _client(world.vendor_user).post(
        f"/api/v1/packages/{body['id']}/review/", {"approve": True}, format="json"
    )
    assert refused.status_code == 403
    approved = _client(world.reviewer).post(
        f"/api/v1/packages/{body['id']}/review/", {"approve": True, "note": "ok"}, format="json"
    )
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    hidden = _client(world.other_vendor_user).get(f"/api/v1/packages/{body['id']}/")
    assert hidden.status_code == 404


def test_bad_uploads_get_clear_4xx(world):
    client = _client(world.vendor_user)
    missing = client.post("/api/v1/packages/", {}, format="multipart")
    assert missing.status_code == 400
    assert missing["Content-Type"] == "application/problem+json"
    assert missing.json()["errors"] == [{"path": "file", "detail": "No file was submitted."}]
    junk = client.post(
        "/api/v1/packages/", {"file": io.BytesIO(b"MZ\x90\x00 not a tar")}, format="multipart"
    )
    assert junk.status_code == 400
    assert junk.json()["detail"].startswith("Package rejected")
    assert AuditEvent.objects.filter(action=AuditAction.PACKAGE_REJECTED_AT_INTAKE).exists()


def test_non_vendors_cannot_upload(world, package_file):
    for role in ("steward", "reviewer", "auditor"):
        with open(package_file, "rb") as fh:
            response = _client(getattr(world, role)).post(
                "/api/v1/packages/", {"file": fh}, format="multipart"
            )
        assert response.status_code == 403, role


def _with_manifest(package_file, **changes) -> io.BytesIO:
    """The real package with manifest fields changed (a crafted tar: the builder refuses them)."""
    buf = io.BytesIO()
    with tarfile.open(package_file) as source, tarfile.open(fileobj=buf, mode="w") as target:
        for member in source.getmembers():
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "manifest.json":
                data = json.dumps({**json.loads(data), **changes}).encode()
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            target.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


@pytest.mark.integration  # also on PostgreSQL, where a value past the column was a 500
@pytest.mark.parametrize(
    ("field", "value"),
    [("version", "9" * 65), ("version", "1." + "0" * 98), ("name", "N" * 201)],
)
def test_a_manifest_string_longer_than_its_column_is_refused_at_intake(
    world, package_file, field, value
):
    upload = _with_manifest(package_file, **{field: value})
    response = _client(world.vendor_user).post(
        "/api/v1/packages/", {"file": upload}, format="multipart"
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["detail"].startswith("Package rejected: the manifest is invalid")
    # Each problem at its dotted path in the request: the uploaded package's manifest.
    assert any(
        e["path"] == f"manifest.{field}" and "more than the" in e["detail"] for e in body["errors"]
    ), body
    assert not ModelPackage.objects.exists()
    assert AuditEvent.objects.filter(action=AuditAction.PACKAGE_REJECTED_AT_INTAKE).count() == 1
