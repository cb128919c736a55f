"""A hostile vendor reads its package's intake answers for the host: paths, the environment.

The packages are real: the vendor-side builder's archive with its `model.pt2` replaced by one
whose pickled weight runs code when `torch.export.load` reads it (inside the sandbox, as in
tests/validation/test_sandbox.py): it prints the environment and the paths it can see to stderr
and raises with them. The ONNX package is a crafted tar whose model has an ONNX header and
nothing onnxruntime can parse. The vendor's API answers (upload, package, list) must carry a
category and a safe message only; the reviewer's view of the same package has the detail."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from tests.support.hostile_models import pt2_with_pickled_weight
from validation.models import ModelPackage
from validation.packaging import default_manifest
from validation.runner.client import REPO_ROOT

pytestmark = [pytest.mark.django_db, pytest.mark.sandbox]

MARK = "HOSTILE-SAW "
LEAK = r"""
import json, os, sys
paths = [*sys.path, os.getcwd(), __import__("torch").__file__]
seen = {"environ": dict(os.environ), "paths": paths}
sys.stderr.write("HOSTILE-SAW " + json.dumps(seen) + "\n")
sys.stderr.flush()
raise LookupError("HOSTILE-SAW " + json.dumps(seen))
"""


def _members(package: Path) -> dict[str, bytes]:
    with tarfile.open(package) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def _tar(members: dict[str, bytes], path: Path) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def hostile_package(package_file, tmp_path) -> Path:
    members = _members(package_file)
    members["model.pt2"] = pt2_with_pickled_weight(members["model.pt2"], LEAK)
    manifest = json.loads(members["manifest.json"])
    manifest["version"] = "6.6.6"
    members["manifest.json"] = json.dumps(manifest).encode()
    return _tar(members, tmp_path / "hostile.tar")


@pytest.fixture
def broken_onnx_package(tmp_path) -> Path:
    manifest = default_manifest(name="OnnxFinder", version="1.0", gradcam_target_layer=None)
    model = b"\x08\x07" + b"\xff\xfe not a ModelProto " * 8  # header byte only
    return _tar(
        {"manifest.json": json.dumps(manifest).encode(), "model.onnx": model},
        tmp_path / "broken-onnx.tar",
    )


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _upload(user, path: Path, capture) -> tuple[dict, ModelPackage]:
    with capture(execute=True), open(path, "rb") as fh:
        response = _client(user).post("/api/v1/packages/", {"file": fh}, format="multipart")
    assert response.status_code == 202, response.content
    body = response.json()
    return body, ModelPackage.objects.get(pk=body["id"])


def _vendor_texts(user, package: ModelPackage, upload_answer: dict) -> str:
    """Everything the vendor can read about the package: the upload's answer, the package,
    the package list."""
    client = _client(user)
    detail = client.get(f"/api/v1/packages/{package.pk}/")
    listing = client.get("/api/v1/packages/")
    assert detail.status_code == listing.status_code == 200
    return "\n".join([json.dumps(upload_answer), detail.content.decode(), listing.content.decode()])


def _host_strings(tmp_path: Path) -> list[str]:
    """Host paths no vendor may read: the checkout, BASE_DIR, temp folders, root's home."""
    return [
        str(REPO_ROOT),
        str(django_settings.BASE_DIR),
        str(Path(django_settings.RUNNER_CACHE_ROOT)),
        str(tmp_path),
        "/tmp/",
        "/root",
        "site-packages",
        ".venv",
    ]


def _assert_nothing_of_the_host(text: str, *, tmp_path: Path, environ: dict[str, str]) -> None:
    for needle in _host_strings(tmp_path):
        assert needle not in text, f"{needle!r} reached the vendor"
    for name, value in environ.items():
        assert not re.search(rf"\b{re.escape(name)}\b", text), f"{name} reached the vendor"
        if len(value) >= 6 or ("/" in value and len(value) >= 4):
            assert value not in text, f"the value of {name} reached the vendor"


def test_a_hostile_package_learns_no_host_path_or_environment(
    world, hostile_package, tmp_path, django_capture_on_commit_callbacks
):
    answer, package = _upload(
        world.vendor_user, hostile_package, django_capture_on_commit_callbacks
    )
    assert answer["status"] == "testing"
    package.refresh_from_db()
    assert package.status == ModelPackage.Status.REFUSED
    # The reviewer's view holds what the model printed: the environment it saw and its paths.
    team = _client(world.reviewer).get(f"/api/v1/packages/{package.pk}/").json()
    assert team["refusal_category"] == "load-failed"
    assert MARK in team["refusal_detail"], team["refusal_detail"]
    seen = json.loads(team["refusal_detail"].split(MARK, 1)[1].splitlines()[0])
    assert "PYTHONPATH" in seen["environ"] and str(REPO_ROOT) in seen["environ"]["PYTHONPATH"]
    # The vendor's: a category and a message that names the format, nothing of the host.
    vendor = _client(world.vendor_user).get(f"/api/v1/packages/{package.pk}/").json()
    assert "refusal_detail" not in vendor
    assert vendor["refusal_category"] == "load-failed"
    assert vendor["refusal_reasons"] == [
        "Smoke test failed: the model could not be loaded by torch.export."
    ]
    text = _vendor_texts(world.vendor_user, package, answer)
    _assert_nothing_of_the_host(text, tmp_path=tmp_path, environ=seen["environ"])
    assert MARK not in text
    # The refusal is on the record, with the vendor-safe reason only.
    event = AuditEvent.objects.get(action=AuditAction.PACKAGE_REJECTED_AT_INTAKE)
    assert event.payload["category"] == "load-failed"
    assert MARK not in json.dumps(event.payload) and str(REPO_ROOT) not in json.dumps(event.payload)


def test_an_onnx_package_that_fails_to_load_is_named_onnx(
    world, broken_onnx_package, tmp_path, django_capture_on_commit_callbacks
):
    answer, package = _upload(
        world.vendor_user, broken_onnx_package, django_capture_on_commit_callbacks
    )
    vendor = _client(world.vendor_user).get(f"/api/v1/packages/{package.pk}/").json()
    assert vendor["status"] == "refused" and vendor["refusal_category"] == "load-failed"
    assert vendor["refusal_reasons"] == [
        "Smoke test failed: the model could not be loaded by onnxruntime."
    ]
    assert "torch.export" not in json.dumps(vendor)
    team = _client(world.reviewer).get(f"/api/v1/packages/{package.pk}/").json()
    assert team["refusal_detail"], "the reviewer reads onnxruntime's own error"
    text = _vendor_texts(world.vendor_user, package, answer)
    environ = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    _assert_nothing_of_the_host(
        text, tmp_path=tmp_path, environ={**environ, "PYTHONPATH": str(REPO_ROOT)}
    )
