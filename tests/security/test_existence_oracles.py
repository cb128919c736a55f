"""Issue 14, item 4: existence oracles. For every endpoint that takes an id, in the URL or the
body, a hostile user probing an id that exists but is hidden from them and one that does not
exist gets byte-identical answers; every refusal is audited for the team, without naming the
probed object; duplicates of package bytes are judged within the submitting vendor."""

import hashlib
import io
from dataclasses import dataclass, field

import pytest
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from audit.selectors import audit_chain_verify
from tests.factories import (
    DatasetVersionFactory,
    PackageFactory,
    ProtocolFactory,
    RunFactory,
    approved_package,
    issued_report,
)
from validation.models import (
    Dataset,
    DatasetGrant,
    DatasetImport,
    MetricResult,
    ModelPackage,
    Protocol,
)

pytestmark = pytest.mark.django_db

MISSING = 987654


@dataclass(frozen=True)
class Probe:
    """`who` sends `method` to `path` with `body`; "ID" in either stands for the probed id,
    `hidden` names the object (in the `hidden` fixture) that exists but is not theirs."""

    who: str
    method: str
    path: str
    hidden: str
    body: dict = field(default_factory=dict)
    multipart: bool = False


@pytest.fixture
def hidden(world, settings):
    """Vendor A's package, run and issued report on partner A's data, partner A's dataset,
    grant (to vendor A) and import, and a protocol used only for vendor A."""
    package = PackageFactory.create(vendor=world.vendor_a, submitted_by=world.vendor_user)
    dataset = Dataset.objects.create(partner=world.partner_a, name="Chest")
    version = DatasetVersionFactory.create(dataset=dataset, created_by=world.steward)
    protocol = ProtocolFactory.create(created_by=world.reviewer)
    grant = DatasetGrant.objects.create(
        dataset_version=version, vendor=world.vendor_a, protocol=protocol, granted_by=world.steward
    )
    run = RunFactory.create(
        package=package, dataset_version=version, protocol=protocol, requested_by=world.reviewer
    )
    MetricResult.objects.create(run=run, section="primary", value={"auc": {"estimate": 0.9}})
    report = issued_report(run)
    (settings.MEDIA_ROOT / "reports").mkdir(parents=True)
    (settings.MEDIA_ROOT / report.pdf_path).write_bytes(b"%PDF-1.7 test")
    job = DatasetImport.objects.create(
        dataset=dataset, requested_by=world.steward, source_name="x.zip"
    )
    own_package_b = PackageFactory.create(
        vendor=world.vendor_b, submitted_by=world.other_vendor_user
    )
    return {
        "package": package.pk,
        "run": run.pk,
        "report": report.pk,
        "dataset": dataset.pk,
        "version": version.pk,
        "protocol": protocol.pk,
        "grant": grant.pk,
        "import": job.pk,
        "partner": world.partner_a.pk,
        "not_a_vendor": world.partner_b.pk,  # an organisation, but no vendor
        "own_package_b": own_package_b.pk,
    }


VENDOR, STEWARD = "other_vendor_user", "other_steward"
PROBES = {
    "package detail": Probe(VENDOR, "get", "/api/v1/packages/ID/", "package"),
    "package review": Probe(
        VENDOR, "post", "/api/v1/packages/ID/review/", "package", {"approve": True}
    ),
    "run detail": Probe(VENDOR, "get", "/api/v1/runs/ID/", "run"),
    "run results": Probe(VENDOR, "get", "/api/v1/runs/ID/results/", "run"),
    "run cancel": Probe(VENDOR, "post", "/api/v1/runs/ID/cancel/", "run"),
    "run start: package": Probe(
        VENDOR,
        "post",
        "/api/v1/runs/",
        "package",
        {"package": "ID", "dataset_version": "version", "protocol": "protocol"},
    ),
    "run start: dataset version": Probe(
        VENDOR,
        "post",
        "/api/v1/runs/",
        "version",
        {"package": "own_package_b", "dataset_version": "ID", "protocol": "protocol"},
    ),
    "run start: protocol": Probe(
        VENDOR,
        "post",
        "/api/v1/runs/",
        "protocol",
        {"package": "own_package_b", "dataset_version": "version", "protocol": "ID"},
    ),
    "run start: protocol, by a partner": Probe(
        STEWARD,
        "post",
        "/api/v1/runs/",
        "package",
        {"package": "ID", "dataset_version": "version", "protocol": "protocol"},
    ),
    "dataset detail": Probe(STEWARD, "get", "/api/v1/datasets/ID/", "dataset"),
    "dataset usage": Probe(STEWARD, "get", "/api/v1/datasets/ID/usage/", "dataset"),
    "dataset usage, by a vendor": Probe(VENDOR, "get", "/api/v1/datasets/ID/usage/", "dataset"),
    "dataset import upload": Probe(
        STEWARD, "post", "/api/v1/datasets/ID/imports/", "dataset", multipart=True
    ),
    "dataset create: partner": Probe(
        STEWARD, "post", "/api/v1/datasets/", "partner", {"partner": "ID", "name": "Probe"}
    ),
    "dataset create: partner, by a vendor": Probe(
        VENDOR, "post", "/api/v1/datasets/", "partner", {"partner": "ID", "name": "Probe"}
    ),
    "dataset import detail": Probe(STEWARD, "get", "/api/v1/dataset-imports/ID/", "import"),
    "dataset card": Probe(VENDOR, "get", "/api/v1/dataset-cards/ID/", "version"),
    "grant detail": Probe(STEWARD, "get", "/api/v1/grants/ID/", "grant"),
    "grant revoke": Probe(STEWARD, "post", "/api/v1/grants/ID/revoke/", "grant"),
    "grant create: dataset version": Probe(
        STEWARD, "post", "/api/v1/grants/", "version", {"dataset_version": "ID"}
    ),
    "grant create: dataset version, by a vendor": Probe(
        VENDOR, "post", "/api/v1/grants/", "version", {"dataset_version": "ID", "vendor": "ID"}
    ),
    "protocol detail": Probe(VENDOR, "get", "/api/v1/protocols/ID/", "protocol"),
    "protocol new version": Probe(
        VENDOR, "post", "/api/v1/protocols/ID/versions/", "protocol", {"document": {}}
    ),
    "protocol lock": Probe(VENDOR, "post", "/api/v1/protocols/ID/lock/", "protocol"),
    "organisation detail": Probe(VENDOR, "get", "/api/v1/organisations/ID/", "partner"),
    "organisation detail, by a partner": Probe(
        STEWARD, "get", "/api/v1/organisations/ID/", "partner"
    ),
    "report detail": Probe(VENDOR, "get", "/api/v1/reports/ID/", "report"),
    "report pdf": Probe(VENDOR, "get", "/api/v1/reports/ID/pdf/", "report"),
    "report sign": Probe(
        VENDOR,
        "post",
        "/api/v1/reports/ID/sign/",
        "report",
        {"password": "x", "meaning": "reviewed"},
    ),
    "report correct": Probe(
        VENDOR, "post", "/api/v1/reports/ID/correct/", "report", {"reason": "probe"}
    ),
}


def _send(user, probe: Probe, hidden: dict, probed: int):
    def value(v):
        if v == "ID":
            return probed
        return hidden.get(v, v) if isinstance(v, str) else v

    body = {k: value(v) for k, v in probe.body.items()}
    path = probe.path.replace("ID", str(probed))
    client = APIClient()
    client.force_authenticate(user)
    if probe.multipart:
        body["file"] = io.BytesIO(b"PK\x05\x06" + b"\x00" * 18)
        return client.post(path, body, format="multipart")
    if probe.method == "get":
        return client.get(path)
    return client.post(path, body, format="json")


def _refusals():
    return AuditEvent.objects.filter(action=AuditAction.REQUEST_REFUSED)


@pytest.mark.parametrize("name", list(PROBES))
def test_hidden_answers_exactly_like_missing_and_is_audited(world, hidden, name):
    probe = PROBES[name]
    user = getattr(world, probe.who)
    seen = set(_refusals().values_list("pk", flat=True))
    as_hidden = _send(user, probe, hidden, hidden[probe.hidden])
    as_missing = _send(user, probe, hidden, MISSING)
    assert 400 <= as_hidden.status_code < 500, as_hidden.content
    assert as_hidden.status_code == as_missing.status_code
    assert as_hidden.content == as_missing.content
    assert as_hidden.headers.get("Content-Type") == as_missing.headers.get("Content-Type")

    new = list(_refusals().exclude(pk__in=seen).order_by("id"))
    assert len(new) == 2, [e.payload for e in new]
    for event in new:
        assert event.actor == user
        assert (event.target_type, event.target_id) == ("", "")  # names no probed object
    assert new[0].payload["answer"] == new[1].payload["answer"]
    assert new[0].payload["status"] == as_hidden.status_code
    assert audit_chain_verify().intact


def test_every_probe_leaves_the_hidden_objects_untouched(world, hidden):
    for probe in PROBES.values():
        _send(getattr(world, probe.who), probe, hidden, hidden[probe.hidden])
    grant = DatasetGrant.objects.get(pk=hidden["grant"])
    assert grant.revoked_at is None
    assert ModelPackage.objects.get(pk=hidden["package"]).status == "submitted"
    assert Protocol.objects.get(pk=hidden["protocol"]).locked_at is None
    assert Protocol.objects.count() == 1
    assert not Dataset.objects.filter(name="Probe").exists()


def test_a_grant_names_vendors_only_and_any_other_id_answers_like_a_missing_one(world, hidden):
    """A steward grants its own version to vendors by id: another kind of organisation must not
    answer differently from an id that does not exist."""
    probe = Probe(
        "steward",
        "post",
        "/api/v1/grants/",
        "not_a_vendor",
        {"dataset_version": "version", "vendor": "ID"},
    )
    as_other_kind = _send(world.steward, probe, hidden, hidden["not_a_vendor"])
    as_missing = _send(world.steward, probe, hidden, MISSING)
    assert as_other_kind.status_code == as_missing.status_code == 404
    assert as_other_kind.content == as_missing.content


@pytest.mark.sandbox
def test_another_vendors_exact_bytes_are_accepted_and_audited(
    world, package_file, settings, django_capture_on_commit_callbacks
):
    """Duplicates are judged within the submitting vendor: vendor B uploading vendor A's exact
    bytes learns nothing (its upload is taken like novel bytes: accepted for testing, then
    smoke-tested and submitted); both packages name one content-addressed file. B's own second
    upload is a conflict, audited."""
    theirs = approved_package(world, package_file)  # vendor A's, stored
    client = APIClient()
    client.force_authenticate(world.other_vendor_user)
    with django_capture_on_commit_callbacks(execute=True), open(package_file, "rb") as fh:
        accepted = client.post("/api/v1/packages/", {"file": fh}, format="multipart")
    assert accepted.status_code == 202, accepted.content
    body = accepted.json()
    assert body["vendor"] == "Vendor B" and body["sha256"] == theirs.sha256
    assert "Vendor A" not in accepted.content.decode()
    mine = ModelPackage.objects.get(pk=body["id"])
    assert mine.status == ModelPackage.Status.SUBMITTED, mine.refusal_reasons
    submitted = AuditEvent.objects.get(action=AuditAction.PACKAGE_SUBMITTED, target_id=str(mine.pk))
    assert submitted.actor == world.other_vendor_user
    stored = [p for p in (settings.MEDIA_ROOT / "packages").rglob("*") if p.is_file()]
    assert [p.name for p in stored] == [f"{theirs.sha256}.tar"]
    assert hashlib.sha256(stored[0].read_bytes()).hexdigest() == theirs.sha256

    with open(package_file, "rb") as fh:
        again = client.post("/api/v1/packages/", {"file": fh}, format="multipart")
    assert again.status_code == 409
    refusal = _refusals().get()
    assert refusal.actor == world.other_vendor_user and refusal.payload["status"] == 409
    assert theirs.sha256 not in str(refusal.payload)  # the answer, not a leak of anyone's row
    assert audit_chain_verify().intact
