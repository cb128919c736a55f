"""The review console's work screens: the queue, package review, the run launcher with its
pre-flight, and the run monitor (Django test client, real services)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from tests.factories import CaseFactory, DatasetVersionFactory, ProtocolFactory, RunFactory
from tests.support.people import signed_in
from tests.web.vendor_helpers import package_of, run_of
from validation.models import ModelPackage, Prediction, RunShard, ValidationRun
from validation.packaging import default_manifest
from validation.services.datasets import dataset_grant
from validation.services.runs import run_preflight

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}
POLL = {"HX-Request": "true", "X-Blindspot-Poll": "1"}


def launchable(world, *, sites=("Site North",), max_runs=None):
    """An approved package of vendor A declaring training sites, a sealed version of partner
    A with 4 cases (one from a declared site, one from a declared scanner) granted to vendor A,
    and a locked protocol."""
    manifest = default_manifest(name="Finder", version="2.0", gradcam_target_layer="block3")
    manifest["training_data"] = {"sites": list(sites), "scanners": ["Acme"]}
    package = package_of(
        world.vendor_a, world.vendor_user, status=ModelPackage.Status.APPROVED, version="2.0"
    )
    package.manifest = manifest
    package.save()
    version = DatasetVersionFactory.create()
    version.dataset.partner = world.partner_a
    version.dataset.save()
    for attributes in (
        {"site": "Site North", "manufacturer": "Other"},
        {"site": "Site South", "manufacturer": "ACME"},
        {"site": "Site South", "manufacturer": "Other"},
        {"site": "Site East", "manufacturer": "Other"},
    ):
        CaseFactory.create(dataset_version=version, attributes=attributes)
    protocol = ProtocolFactory.create(locked_at=timezone.now(), sha256="a" * 64)
    dataset_grant(
        actor=world.steward, dataset_version=version, vendor=world.vendor_a, max_runs=max_runs
    )
    return package, version, protocol


# --- the work queue ---------------------------------------------------------------------------


def test_queue_lists_what_waits_with_counts(world):
    waiting = package_of(world.vendor_a, world.vendor_user, status=ModelPackage.Status.SUBMITTED)
    package_of(world.vendor_a, world.vendor_user, status=ModelPackage.Status.APPROVED, version="9")
    failed = run_of(
        waiting, status=ValidationRun.Status.FAILED, error_public="x", failure_category="crash"
    )
    failing = run_of(waiting, status=ValidationRun.Status.SCORING)
    case = CaseFactory.create(dataset_version=failing.dataset_version)
    Prediction.objects.create(run=failing, case=case, score=None, error_category="unreadable")
    stale = timezone.now() - timedelta(hours=1)
    stalled = run_of(waiting, status=ValidationRun.Status.RUNNING, started_at=stale)
    RunShard.objects.create(
        run=stalled, index=0, case_ids=[1], status="running", worker="gone@host", started_at=stale
    )
    fresh = run_of(waiting, status=ValidationRun.Status.RUNNING, started_at=timezone.now())

    response = signed_in(world.reviewer).get("/console/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f"/console/packages/{waiting.pk}/" in html
    assert f"/console/runs/{failed.pk}/" in html and "crash" in html
    assert f"/console/runs/{failing.pk}/" in html and "1 case failed" in html
    assert f"/console/runs/{stalled.pk}/" in html
    assert f"/console/runs/{fresh.pk}/" not in html
    counts = response.context["counts"]
    assert counts == {"packages": 1, "failed": 1, "stalled": 1, "failing": 1, "reports": 0}
    assert 'hx-trigger="every 10s, blindspot:visible"' in html


def test_queue_fragment_polls_on_and_names_whose_signature_is_next(world):
    from tests.factories import ReportFactory

    run = run_of(package_of(world.vendor_a), status=ValidationRun.Status.AWAITING_SIGNATURE)
    ReportFactory.create(run=run, required_signatures=["reviewed", "approved"])
    response = signed_in(world.auditor).get("/console/live/", headers=POLL)
    assert response.status_code == 200  # never final: the queue polls for as long as it is open
    html = response.content.decode()
    assert "data-poll" in html and "Needs review (a reviewer)" in html
    assert 'data-count="reports">1<' in html


# --- package review ---------------------------------------------------------------------------


def test_package_list_filters_by_state(world):
    waiting = package_of(world.vendor_a, status=ModelPackage.Status.SUBMITTED)
    approved = package_of(world.vendor_b, status=ModelPackage.Status.APPROVED, version="3")
    html = signed_in(world.reviewer).get("/console/packages/?status=submitted").content.decode()
    assert f"/console/packages/{waiting.pk}/" in html
    assert f"/console/packages/{approved.pk}/" not in html
    html = signed_in(world.reviewer).get("/console/packages/").content.decode()
    assert f"/console/packages/{approved.pk}/" in html


def test_package_page_shows_the_team_view(world):
    package = package_of(
        world.vendor_a,
        status=ModelPackage.Status.REFUSED,
        refusal_category="bad-output",
        refusal_reasons=["the model's output does not match its manifest"],
        refusal_detail="Traceback: /srv/secret/path",
    )
    html = signed_in(world.reviewer).get(f"/console/packages/{package.pk}/").content.decode()
    assert "Traceback: /srv/secret/path" in html  # the team reads the runner's detail
    assert "block3" in html  # the Grad-CAM layer
    assert "Failed" in html and "Not reached" in html
    assert "Approve for validation" not in html  # a refused package has nothing to decide


def test_reviewer_approves_and_the_event_is_audited(world):
    package = package_of(world.vendor_a, status=ModelPackage.Status.SUBMITTED)
    client = signed_in(world.reviewer)
    page = client.get(f"/console/packages/{package.pk}/").content.decode()
    assert "Approve for validation" in page and "Reject" in page
    response = client.post(
        f"/console/packages/{package.pk}/review/", {"decision": "approve", "note": ""}, headers=HX
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"/console/packages/{package.pk}/"
    package.refresh_from_db()
    assert package.status == ModelPackage.Status.APPROVED
    assert package.reviewed_by == world.reviewer
    assert AuditEvent.objects.filter(
        action=AuditAction.PACKAGE_APPROVED, target_id=str(package.pk), actor=world.reviewer
    ).exists()


def test_a_rejection_needs_a_reason(world):
    package = package_of(world.vendor_a, status=ModelPackage.Status.SUBMITTED)
    client = signed_in(world.qa)
    url = f"/console/packages/{package.pk}/review/"
    response = client.post(url, {"decision": "reject", "note": "  "}, headers=HX)
    assert response.status_code == 422
    assert "A rejection needs a reason the vendor can read." in response.content.decode()
    response = client.post(url, {"decision": "reject", "note": " "})
    assert response.status_code == 400
    response = client.post(url, {"decision": "reject", "note": "No intended use."})
    assert (
        response.status_code == 302 and response["Location"] == f"/console/packages/{package.pk}/"
    )
    package.refresh_from_db()
    assert package.status == ModelPackage.Status.REJECTED
    assert package.review_note == "No intended use."
    assert AuditEvent.objects.filter(action=AuditAction.PACKAGE_REJECTED).exists()
    # Decided once: a second decision is refused with the service's sentence.
    response = client.post(url, {"decision": "approve"}, headers=HX)
    assert response.status_code == 422
    assert "The package has already been rejected." in response.content.decode()


def test_auditor_reads_the_package_without_acting(world):
    package = package_of(world.vendor_a, status=ModelPackage.Status.SUBMITTED)
    client = signed_in(world.auditor)
    html = client.get(f"/console/packages/{package.pk}/").content.decode()
    assert "Approve for validation" not in html
    assert "/review/" not in html
    response = client.post(f"/console/packages/{package.pk}/review/", {"decision": "approve"})
    assert response.status_code == 403
    package.refresh_from_db()
    assert package.status == ModelPackage.Status.SUBMITTED


# --- the launcher ---------------------------------------------------------------------------


def test_preflight_shows_each_check_and_the_training_overlap(world):
    package, version, protocol = launchable(world, max_runs=3)
    client = signed_in(world.reviewer)
    query = f"package={package.pk}&dataset_version={version.pk}&protocol={protocol.pk}"
    response = client.get(f"/console/runs/new/preflight/?{query}", headers=HX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Package approved" in html and "Dataset version sealed" in html
    assert "Grant for this vendor and protocol" in html
    assert "Runs used: 0 of 3 the partner&#x27;s grant allows." in html
    assert "2 of 4 cases (50%) come from sites or scanners" in html  # Site North + ACME
    assert "Warning" in html and "Every blocking check passes." in html
    # Nothing has started.
    assert not ValidationRun.objects.exists()


def test_preflight_without_all_choices_asks_for_them(world):
    html = (
        signed_in(world.reviewer).get("/console/runs/new/preflight/", headers=HX).content.decode()
    )
    assert "Choose a package, a dataset version and a protocol" in html


def test_preflight_and_run_start_refuse_alike(world):
    package, version, protocol = launchable(world, max_runs=1)
    RunFactory.create(package=package, dataset_version=version, protocol=protocol)
    checks = run_preflight(package=package, dataset_version=version, protocol=protocol)
    caps = next(c for c in checks if c.key == "caps")
    assert not caps.ok and caps.status_code == 409
    client = signed_in(world.reviewer)
    data = {
        "package": package.pk,
        "dataset_version": version.pk,
        "protocol": protocol.pk,
        "confirm": "yes",
    }
    page = client.get("/console/runs/new/", data).content.decode()
    assert caps.message.replace("'", "&#x27;") in page and "Blocks the run" in page
    response = client.post("/console/runs/new/", data, headers=HX)
    assert response.status_code == 422
    assert caps.message.replace("'", "&#x27;") in response.content.decode()
    assert ValidationRun.objects.count() == 1


def test_launch_needs_the_confirmation_then_starts_the_run(world):
    package, version, protocol = launchable(world)
    client = signed_in(world.reviewer)
    data = {"package": package.pk, "dataset_version": version.pk, "protocol": protocol.pk}
    response = client.post("/console/runs/new/", data, headers=HX)
    assert response.status_code == 422
    assert "Tick the confirmation" in response.content.decode()
    assert not ValidationRun.objects.exists()
    response = client.post("/console/runs/new/", {**data, "confirm": "yes"})
    run = ValidationRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/console/runs/{run.pk}/"
    assert run.requested_by == world.reviewer and run.cases_total == 4
    assert AuditEvent.objects.filter(action=AuditAction.RUN_QUEUED, target_id=str(run.pk)).exists()


def test_launch_offers_only_launchable_choices(world):
    package, version, protocol = launchable(world)
    unapproved = package_of(world.vendor_a, status=ModelPackage.Status.SUBMITTED, version="7")
    unlocked = ProtocolFactory.create(name="Draft protocol")
    html = signed_in(world.reviewer).get("/console/runs/new/").content.decode()
    assert f'value="{package.pk}"' in html and f'value="{protocol.pk}"' in html
    assert f"{unapproved.name} 7" not in html and "Draft protocol" not in html
    response = signed_in(world.reviewer).post(
        "/console/runs/new/",
        {
            "package": unapproved.pk,
            "dataset_version": version.pk,
            "protocol": unlocked.pk,
            "confirm": "yes",
        },
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "Choose an approved package." in html and "Choose a locked protocol." in html


def test_auditor_sees_the_launcher_without_a_button_and_cannot_post(world):
    package, version, protocol = launchable(world)
    client = signed_in(world.auditor)
    html = client.get("/console/runs/new/").content.decode()
    assert "Start the run" not in html
    data = {"package": package.pk, "dataset_version": version.pk, "protocol": protocol.pk}
    assert client.post("/console/runs/new/", {**data, "confirm": "yes"}).status_code == 403
    assert not ValidationRun.objects.exists()


# --- the monitor ----------------------------------------------------------------------------


def test_run_list_filters_and_paginates(world):
    package = package_of(world.vendor_a)
    failed = run_of(package, status=ValidationRun.Status.FAILED, error_public="x")
    queued = run_of(package)
    client = signed_in(world.reviewer)
    html = client.get("/console/runs/?status=failed").content.decode()
    assert f"/console/runs/{failed.pk}/" in html and f'/console/runs/{queued.pk}/"' not in html
    for _ in range(25):
        RunFactory.create(package=package)
    response = client.get("/console/runs/")
    assert len(response.context["rows"]) == 25
    assert "Page 1 of 2" in response.content.decode()


def test_run_page_shows_shards_failures_and_polls_until_final(world):
    run = run_of(package_of(world.vendor_a), status=ValidationRun.Status.RUNNING, cases_total=3)
    RunShard.objects.create(
        run=run,
        index=0,
        case_ids=[1, 2],
        status="done",
        worker="gpu0@host",
        device="cuda:0",
        attempts=2,
        cold_start=True,
        seconds={"load": 2.5, "read_decode": 0.25, "model": 1.5, "write": 0.125},
    )
    for category in ("unreadable", "unreadable", "bad-input"):
        case = CaseFactory.create(dataset_version=run.dataset_version)
        Prediction.objects.create(run=run, case=case, score=None, error_category=category)
    client = signed_in(world.reviewer)
    html = client.get(f"/console/runs/{run.pk}/").content.decode()
    for text in ("gpu0@host", "cuda:0", "1.5", "0.125", "unreadable", "Cancel the run"):
        assert text in html
    assert "data-poll" in html
    live = client.get(f"/console/runs/{run.pk}/live/", headers=POLL)
    assert live.status_code == 200
    cells = live.content.decode().split("Failing cases by category", 1)[1]
    assert cells.index("unreadable") < cells.index("bad-input")
    assert '<td class="num">2</td>' in cells and '<td class="num">1</td>' in cells
    run.status = ValidationRun.Status.ISSUED
    run.save()
    live = client.get(f"/console/runs/{run.pk}/live/", headers=POLL)
    assert live.status_code == 286 and "data-poll" not in live.content.decode()
    assert f"/console/runs/{run.pk}/results/" in live.content.decode()


def test_cancel_needs_the_confirmation_and_is_audited(world):
    run = run_of(package_of(world.vendor_a), status=ValidationRun.Status.RUNNING)
    client = signed_in(world.reviewer)
    url = f"/console/runs/{run.pk}/cancel/"
    response = client.post(url, {}, headers=HX)
    assert response.status_code == 422 and "Tick the confirmation" in response.content.decode()
    response = client.post(url, {"confirm": "yes"}, headers=HX)
    assert response["HX-Redirect"] == f"/console/runs/{run.pk}/"
    run.refresh_from_db()
    assert run.status == ValidationRun.Status.CANCELLED
    assert AuditEvent.objects.filter(action=AuditAction.RUN_CANCELLED).exists()
    response = client.post(url, {"confirm": "yes"})
    assert response.status_code == 400
    assert "A run that is cancelled cannot be cancelled." in response.content.decode()


def test_auditor_reads_the_monitor_without_cancel(world):
    run = run_of(package_of(world.vendor_a), status=ValidationRun.Status.RUNNING)
    client = signed_in(world.auditor)
    html = client.get(f"/console/runs/{run.pk}/").content.decode()
    assert "Cancel the run" not in html
    assert client.post(f"/console/runs/{run.pk}/cancel/", {"confirm": "yes"}).status_code == 403
    run.refresh_from_db()
    assert run.status == ValidationRun.Status.RUNNING
