"""Version lineage (issue 18 item 13): a manifest may name the version of the same model it
succeeds; intake refuses a predecessor the vendor never submitted and a known version with
other bytes, and records the predecessor, which the API and the package pages show."""

import pytest
from blindspot_client.package.limits import PACKAGE_VERSION_MAX_LENGTH
from blindspot_client.package.manifest import default_manifest, manifest_errors
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from tests.factories import approved_package
from tests.support.packages import repacked
from tests.support.people import signed_in
from validation.errors import ApplicationError
from validation.models import ModelPackage
from validation.services.packages import package_submit

pytestmark = pytest.mark.django_db


def _manifest(**fields) -> dict:
    return {**default_manifest(name="Finder", version="1.1", gradcam_target_layer="b"), **fields}


def test_the_schema_takes_a_predecessor_version_and_refuses_a_bad_one():
    assert manifest_errors(_manifest(supersedes="1.0")) == []
    assert (
        default_manifest(name="F", version="2", gradcam_target_layer="b", supersedes="1")[
            "supersedes"
        ]
        == "1"
    )
    assert "supersedes" not in default_manifest(name="F", version="2", gradcam_target_layer="b")
    assert any(e.startswith("supersedes:") for e in manifest_errors(_manifest(supersedes="")))
    assert any(e.startswith("supersedes:") for e in manifest_errors(_manifest(supersedes=1.0)))
    too_long = "9" * (PACKAGE_VERSION_MAX_LENGTH + 1)
    assert any(e.startswith("supersedes:") for e in manifest_errors(_manifest(supersedes=too_long)))
    assert manifest_errors(_manifest(supersedes="1.1")) == [
        "supersedes: a version cannot succeed itself"
    ]


def _submit(world, path, user=None):
    with open(path, "rb") as fh:
        return package_submit(actor=user or world.vendor_user, upload=fh)


def test_a_successor_records_its_predecessor(
    world, package_file, tmp_path, django_capture_on_commit_callbacks
):
    first = approved_package(world, package_file)  # Finder 1.0
    successor = repacked(package_file, tmp_path / "p.tar", version="1.1", supersedes="1.0")
    with django_capture_on_commit_callbacks(execute=False):
        package = _submit(world, successor)
    package.refresh_from_db()
    assert package.supersedes == first and list(first.successors.all()) == [package]
    assert package.manifest["supersedes"] == "1.0"


def test_a_predecessor_never_submitted_is_refused_and_audited(world, package_file, tmp_path):
    approved_package(world, package_file)  # Finder 1.0
    unknown = repacked(package_file, tmp_path / "p.tar", version="1.2", supersedes="1.1")
    with pytest.raises(ApplicationError) as exc:
        _submit(world, unknown)
    assert "supersedes Finder 1.1, which this vendor never submitted" in exc.value.message
    assert ModelPackage.objects.count() == 1
    refusal = AuditEvent.objects.filter(action=AuditAction.PACKAGE_REJECTED_AT_INTAKE).get()
    assert "never submitted" in refusal.payload["reason"]
    # Another name's 1.0 is not this model's predecessor.
    other_name = repacked(
        package_file, tmp_path / "q.tar", name="Other", version="2", supersedes="1.0"
    )
    with pytest.raises(ApplicationError, match="Other 1.0, which this vendor never submitted"):
        _submit(world, other_name)


def test_another_vendors_version_is_not_a_predecessor(world, package_file, tmp_path):
    approved_package(world, package_file)  # Finder 1.0 of vendor A
    theirs = repacked(package_file, tmp_path / "p.tar", version="1.1", supersedes="1.0")
    with pytest.raises(ApplicationError, match="never submitted"):
        _submit(world, theirs, world.other_vendor_user)


def test_a_known_version_with_other_bytes_is_refused(world, package_file, tmp_path):
    first = approved_package(world, package_file)  # Finder 1.0
    changed = repacked(package_file, tmp_path / "p.tar", threshold=0.4)  # still Finder 1.0
    with pytest.raises(ApplicationError) as exc:
        _submit(world, changed)
    assert exc.value.status_code == 409
    assert exc.value.message == (
        f"Finder 1.0 was already submitted with other bytes (SHA-256 {first.sha256[:12]}...); "
        "a changed model needs a new version number."
    )


def test_the_api_and_the_package_pages_show_the_predecessor(
    world, package_file, tmp_path, django_capture_on_commit_callbacks
):
    first = approved_package(world, package_file)
    with django_capture_on_commit_callbacks(execute=False):
        package = _submit(
            world, repacked(package_file, tmp_path / "p.tar", version="1.1", supersedes="1.0")
        )
    client = APIClient()
    client.force_authenticate(world.vendor_user)
    body = client.get(f"/api/v1/packages/{package.pk}/").json()
    assert body["supersedes"] == {
        "id": first.pk,
        "name": "Finder",
        "version": "1.0",
        "sha256": first.sha256,
    }
    assert client.get(f"/api/v1/packages/{first.pk}/").json()["supersedes"] is None
    vendor_page = signed_in(world.vendor_user).get(f"/packages/{package.pk}/")
    assert vendor_page.status_code == 200
    assert f'href="/packages/{first.pk}/">Finder 1.0</a>' in vendor_page.content.decode()
    console = signed_in(world.reviewer).get(f"/console/packages/{package.pk}/")
    assert console.status_code == 200
    assert f'href="/console/packages/{first.pk}/">Finder 1.0</a>' in console.content.decode()
