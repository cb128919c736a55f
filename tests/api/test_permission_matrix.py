"""Every role against its own and another organisation's package, run and report, on list and
detail endpoints. A hidden object must answer exactly like a missing one."""

import pytest
from rest_framework.test import APIClient

from reports.models import Report
from tests.factories import DatasetVersionFactory, PackageFactory, RunFactory, issued_report
from tests.support.people import WORLD_PEOPLE
from validation.models import ComparisonRun, Dataset, MetricResult

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

ROLES = WORLD_PEOPLE
# Who sees the objects that belong to vendor A, run on partner A's data.
SEES_PACKAGE = {"vendor_user", "reviewer", "qa", "auditor"}
SEES_RUN = {"vendor_user", "steward", "reviewer", "qa", "auditor"}
SEES_REPORT = SEES_RUN
# A comparison of two of vendor A's runs on partner A's data: whoever sees both runs.
SEES_COMPARISON = SEES_RUN
# The run's protocol: partner stewards grant per protocol, so each names every protocol.
SEES_PROTOCOL = {"vendor_user", "steward", "other_steward", "reviewer", "qa", "auditor"}
# Vendor A: stewards grant to vendors by id.
SEES_ORGANISATION = {"vendor_user", "steward", "other_steward", "reviewer", "qa", "auditor"}
MISSING_ID = 987654


@pytest.fixture
def objects(world, tmp_path, settings):
    package = PackageFactory.create(vendor=world.vendor_a, submitted_by=world.vendor_user)
    version = DatasetVersionFactory.create(
        dataset=Dataset.objects.create(partner=world.partner_a, name="Chest"),
        created_by=world.steward,
    )
    run = RunFactory.create(package=package, dataset_version=version, requested_by=world.reviewer)
    report = issued_report(run)
    (settings.MEDIA_ROOT / "reports").mkdir(parents=True)
    (settings.MEDIA_ROOT / report.pdf_path).write_bytes(b"%PDF-1.7 test")
    MetricResult.objects.create(
        run=run,
        section="subgroups",
        value=[
            {
                "attribute": "sex",
                "group": "F",
                "n": 40,
                "sensitivity": {"estimate": 0.8},
                "suppressed": False,
            },
            {
                "attribute": "sex",
                "group": "X",
                "n": 3,
                "sensitivity": {"estimate": 1.0},
                "suppressed": True,
            },
        ],
    )
    MetricResult.objects.create(run=run, section="primary", value={"auc": {"estimate": 0.9}})
    baseline = RunFactory.create(
        package=PackageFactory.create(vendor=world.vendor_a, submitted_by=world.vendor_user),
        dataset_version=version,
        protocol=run.protocol,
        requested_by=world.reviewer,
    )
    comparison = ComparisonRun.objects.create(
        baseline=baseline, candidate=run, requested_by=world.reviewer
    )
    return {
        "comparisons": comparison,
        "packages": package,
        "runs": run,
        "reports": report,
        "protocols": run.protocol,
        "organisations": world.vendor_a,
    }


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("kind", "allowed"),
    [
        ("packages", SEES_PACKAGE),
        ("runs", SEES_RUN),
        ("reports", SEES_REPORT),
        ("protocols", SEES_PROTOCOL),
        ("organisations", SEES_ORGANISATION),
        ("comparisons", SEES_COMPARISON),
    ],
)
def test_list_and_detail_visibility(world, objects, role, kind, allowed):
    client = client_for(getattr(world, role))
    target = objects[kind]
    listed = client.get(f"/api/v1/{kind}/")
    assert listed.status_code == 200
    ids = {row["id"] for row in listed.json()["results"]}
    detail = client.get(f"/api/v1/{kind}/{target.pk}/")
    missing = client.get(f"/api/v1/{kind}/{MISSING_ID}/")
    if role in allowed:
        assert target.pk in ids
        assert detail.status_code == 200
    else:
        assert target.pk not in ids
        assert detail.status_code == 404
        assert detail.json() == missing.json()  # hidden looks exactly like missing


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("kind", ["pdf", "dicom"])
def test_report_download_is_scoped_and_audited(world, objects, role, kind):
    from audit.models import AuditAction, AuditEvent

    report = objects["reports"]
    client = client_for(getattr(world, role))
    response = client.get(f"/api/v1/reports/{report.pk}/{kind}/")
    missing = client.get(f"/api/v1/reports/{MISSING_ID}/{kind}/")
    downloads = AuditEvent.objects.filter(
        action=AuditAction.REPORT_DOWNLOADED, target_id=str(report.pk)
    )
    if role in SEES_REPORT:
        assert response.status_code == 200
        body = b"".join(response.streaming_content) if kind == "pdf" else response.content
        assert body.startswith(b"%PDF") if kind == "pdf" else body[128:132] == b"DICM"
        assert downloads.get().actor == getattr(world, role)
        assert downloads.get().payload["format"] == kind
    else:
        assert response.status_code == 404
        assert response.json() == missing.json()  # hidden looks exactly like missing
        assert not downloads.exists()


def test_vendors_do_not_see_draft_reports(world, objects):
    run = RunFactory.create(
        package=objects["packages"], dataset_version=objects["runs"].dataset_version
    )
    draft = Report.objects.create(run=run, document={}, content_sha256="0" * 64)
    assert client_for(world.vendor_user).get(f"/api/v1/reports/{draft.pk}/").status_code == 404
    assert client_for(world.reviewer).get(f"/api/v1/reports/{draft.pk}/").status_code == 200


def test_results_suppress_small_cells_for_vendors_only(world, objects):
    url = f"/api/v1/runs/{objects['runs'].pk}/results/"
    vendor_rows = client_for(world.vendor_user).get(url).json()["subgroups"]
    small = next(r for r in vendor_rows if r["group"] == "X")
    assert small == {"attribute": "sex", "group": "X", "suppressed": True}
    steward_rows = client_for(world.steward).get(url).json()["subgroups"]
    assert "n" not in next(r for r in steward_rows if r["group"] == "X")
    team_rows = client_for(world.reviewer).get(url).json()["subgroups"]
    assert next(r for r in team_rows if r["group"] == "X")["n"] == 3


def test_vendor_reads_stage_times_at_the_printed_precision_only(world, objects):
    run = objects["runs"]
    type(run).objects.filter(pk=run.pk).update(stage_seconds={"inference": 1.23456789})
    url = f"/api/v1/runs/{run.pk}/"
    for user in (world.vendor_user, world.steward):
        assert client_for(user).get(url).json()["stage_seconds"] == {"inference": 1.23}
    assert client_for(world.reviewer).get(url).json()["stage_seconds"] == {"inference": 1.23456789}


def test_vendor_never_reads_failure_details(world, objects):
    run = objects["runs"]
    type(run).objects.filter(pk=run.pk).update(
        status="failed",
        error_public="The model process crashed.",
        error_detail="Traceback: secret partner path /data/C00001.dcm",
    )
    vendor_view = client_for(world.vendor_user).get(f"/api/v1/runs/{run.pk}/").json()
    assert vendor_view["error"] == "The model process crashed."
    assert "error_detail" not in vendor_view and "C00001" not in str(vendor_view)
    team_view = client_for(world.reviewer).get(f"/api/v1/runs/{run.pk}/").json()
    assert "C00001" in team_view["error_detail"]


def test_anonymous_is_refused_everywhere(objects):
    client = APIClient()
    for kind in ("packages", "runs", "reports", "protocols", "organisations", "comparisons", "me"):
        assert client.get(f"/api/v1/{kind}/").status_code == 401


def test_only_the_validation_team_starts_runs(world, objects):
    body = {
        "package": objects["packages"].pk,
        "dataset_version": objects["runs"].dataset_version_id,
        "protocol": objects["runs"].protocol_id,
    }
    for role in ("vendor_user", "steward", "auditor"):
        response = client_for(getattr(world, role)).post("/api/v1/runs/", body, format="json")
        assert response.status_code in {403, 404}, role


def test_only_the_validation_team_writes_protocols(world, objects):
    protocol = objects["protocols"]
    writes = [
        ("/api/v1/protocols/", {"name": "P", "document": {}}),
        (f"/api/v1/protocols/{protocol.pk}/versions/", {"document": {}}),
        (f"/api/v1/protocols/{protocol.pk}/lock/", {}),
    ]
    for role in ROLES:
        for path, body in writes:
            response = client_for(getattr(world, role)).post(path, body, format="json")
            # The team gets to the document's problems (400) or locks (200); no one else.
            expected = {400, 200} if role in {"reviewer", "qa"} else {403}
            assert response.status_code in expected, (role, path, response.content)


def test_signing_key_is_public(db):
    body = APIClient().get("/api/v1/signing-key/").json()
    assert body["algorithm"] == "Ed25519" and "BEGIN PUBLIC KEY" in body["public_key_pem"]


def test_manifest_and_protocol_schemas_are_published(db):
    from validation.packaging import default_manifest, manifest_errors

    client = APIClient()
    schema = client.get("/api/v1/schemas/package-manifest/1.0/").json()
    assert schema["$id"].endswith("/api/v1/schemas/package-manifest/1.0/")
    assert "gradcam_target_layer" in schema["required"]
    assert manifest_errors(default_manifest(name="x", version="1", gradcam_target_layer="a")) == []
    assert client.get("/api/v1/schemas/package-manifest/9.9/").status_code == 404
    assert "acceptance_criteria" in client.get("/api/v1/schemas/protocol/").json()["required"]


def test_only_the_team_reads_where_a_run_executed(world, objects):
    from validation.models import RunShard

    run = objects["runs"]
    RunShard.objects.create(
        run=run,
        index=0,
        case_ids=[1, 2],
        status="done",
        worker="gpu0@host-7",
        device="cuda",
        attempts=2,
        cold_start=True,
        seconds={"model": 1.5},
    )
    vendor_view = client_for(world.vendor_user).get(f"/api/v1/runs/{run.pk}/").json()
    assert "execution" not in vendor_view and "host-7" not in str(vendor_view)
    execution = client_for(world.reviewer).get(f"/api/v1/runs/{run.pk}/").json()["execution"]
    assert (execution["shards"], execution["cold_starts"], execution["redeliveries"]) == (1, 1, 1)
    assert execution["per_shard"][0]["worker"] == "gpu0@host-7"
    assert execution["devices"] == ["cuda"] and execution["seconds"] == {"model": 1.5}
