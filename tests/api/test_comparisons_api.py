"""Comparison runs over the API (issue 18 item 13): the list and detail for whoever may see
both runs (another organisation's vendor gets 404 like a missing id), the result disclosed to
vendors as the comparison report shows it, and the start for the validation team only, with
its refusals as problems at field paths, audited."""

import pytest
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from reports.models import Report
from tests.support.comparisons import (
    comparison_scored,
    comparison_setup,
    protocol_with_comparison,
)
from tests.web.vendor_helpers import package_of
from validation.models import ComparisonRun, ValidationRun

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def setup(world):
    return comparison_setup(world)


@pytest.fixture
def scored(world, setup):
    return comparison_scored(world, setup)


def _body(setup, **overrides) -> dict:
    baseline, candidate, version, protocol = setup
    return {
        "baseline_package": baseline.pk,
        "candidate_package": candidate.pk,
        "dataset_version": version.pk,
        "protocol": protocol.pk,
        **overrides,
    }


@pytest.mark.parametrize(
    ("role", "sees"),
    [
        ("reviewer", True),
        ("qa", True),
        ("auditor", True),
        ("vendor_user", True),
        ("steward", True),  # both runs are on partner A's data
        ("other_vendor_user", False),
        ("other_steward", False),
    ],
)
def test_list_and_detail_are_scoped_to_who_sees_both_runs(world, scored, role, sees):
    client = client_for(getattr(world, role))
    listed = client.get("/api/v1/comparisons/")
    assert listed.status_code == 200
    assert [c["id"] for c in listed.json()["results"]] == ([scored.pk] if sees else [])
    detail = client.get(f"/api/v1/comparisons/{scored.pk}/")
    missing = client.get("/api/v1/comparisons/987654/")
    assert missing.status_code == 404
    if sees:
        assert detail.status_code == 200
    else:  # hidden answers exactly like missing
        assert detail.status_code == 404 and detail["Content-Type"] == PROBLEM
        assert detail.json()["detail"] == missing.json()["detail"]


def test_detail_names_both_packages_the_dataset_protocol_and_report(world, scored):
    shown = client_for(world.reviewer).get(f"/api/v1/comparisons/{scored.pk}/").json()
    baseline, candidate = scored.baseline, scored.candidate
    assert shown["reference"] == f"C-{scored.pk:06d}"
    assert shown["status"] == ComparisonRun.Status.AWAITING_SIGNATURE
    assert shown["baseline"]["run"] == baseline.pk
    assert shown["baseline"]["package"]["sha256"] == baseline.package.sha256
    assert shown["candidate"]["package"]["supersedes"]["sha256"] == baseline.package.sha256
    assert shown["candidate"]["status"] == candidate.status
    assert shown["lineage"] == [
        {"version": "1.1", "sha256": candidate.package.sha256},
        {"version": "1.0", "sha256": baseline.package.sha256},
    ]
    assert shown["dataset"]["merkle_root"] == candidate.dataset_version.merkle_root
    assert shown["protocol"]["sha256"] == candidate.protocol.sha256
    assert shown["protocol"]["comparison"] == candidate.protocol.document["comparison"]
    report = Report.objects.get(comparison=scored)
    assert shown["report"] == {
        "id": report.pk,
        "reference": report.reference,
        "version": 1,
        "status": report.status,
    }
    # The validation team reads every number at full precision.
    assert shown["result"] == scored.result


def test_a_vendor_reads_the_result_as_the_comparison_report_shows_it(world, scored):
    shown = client_for(world.vendor_user).get(f"/api/v1/comparisons/{scored.pk}/").json()
    result = shown["result"]
    auc = result["endpoints"][0]
    full = scored.result["endpoints"][0]
    assert auc["metric"] == "auc" and auc["passed"] == full["passed"]
    for key in ("estimate", "lower", "upper"):  # rounded to the report's 3 decimals
        if isinstance(full["difference"].get(key), float):
            assert auc["difference"][key] == round(full["difference"][key], 3)
    # Cobalt (4 cases) and its complement Acme keep their names and lose their numbers.
    for group in ("Cobalt", "Acme"):
        rows = [r for r in result["subgroups"] if r["group"] == group]
        assert rows == [{"attribute": "manufacturer", "group": group, "suppressed": True}]
    assert any(r["group"] == "Cobalt" and "n" in r for r in scored.result["subgroups"])
    listed = client_for(world.vendor_user).get("/api/v1/comparisons/").json()["results"][0]
    assert listed["result"] == result


def test_a_running_comparison_has_no_result_or_report_yet(world, setup):
    response = client_for(world.reviewer).post("/api/v1/comparisons/", _body(setup), "json")
    assert response.status_code == 201, response.json()
    shown = response.json()
    assert shown["status"] == "running" and shown["result"] is None and shown["report"] is None
    assert {shown["baseline"]["status"], shown["candidate"]["status"]} == {"queued"}
    comparison = ComparisonRun.objects.get(pk=shown["id"])
    assert comparison.candidate.package == setup[1] and comparison.baseline.package == setup[0]
    assert AuditEvent.objects.filter(action=AuditAction.COMPARISON_STARTED).count() == 1
    filtered = client_for(world.reviewer).get("/api/v1/comparisons/?status=issued")
    assert filtered.json()["results"] == []


def test_start_with_an_earlier_baseline_run(world, setup):
    baseline, candidate, version, protocol = setup
    client = client_for(world.reviewer)
    first = client.post("/api/v1/comparisons/", _body(setup), "json").json()
    # A third version compared against 1.1's run of the first comparison, not started again.
    third = package_of(world.vendor_a, version="1.2", supersedes=candidate, status=baseline.status)
    body = _body(
        setup,
        baseline_package=candidate.pk,
        candidate_package=third.pk,
        baseline_run=first["candidate"]["run"],
    )
    response = client.post("/api/v1/comparisons/", body, "json")
    assert response.status_code == 201, response.json()
    assert response.json()["baseline"]["run"] == first["candidate"]["run"]
    assert ValidationRun.objects.filter(package=candidate).count() == 1
    # A run of another package than the named baseline package is refused at that field.
    body["baseline_package"] = baseline.pk
    refused = client.post("/api/v1/comparisons/", body, "json")
    assert refused.status_code == 400
    assert refused.json()["errors"] == [
        {"path": "baseline_run", "detail": "Not a run of baseline_package."}
    ]
    # A run is the baseline of one comparison at most: a second is a conflict, not a 500.
    del body["baseline_package"]
    again = client.post("/api/v1/comparisons/", body, "json")
    assert (
        again.status_code == 409
        and "already the baseline of comparison C-" in (again.json()["detail"])
    )


def test_start_refusals_are_problems_at_field_paths_and_audited(world, setup):
    client = client_for(world.reviewer)
    missing = client.post("/api/v1/comparisons/", {"protocol": "x"}, "json")
    assert missing.status_code == 400 and missing["Content-Type"] == PROBLEM
    paths = {e["path"] for e in missing.json()["errors"]}
    assert {"candidate_package", "dataset_version", "protocol"} <= paths
    no_baseline = _body(setup)
    del no_baseline["baseline_package"]
    refused = client.post("/api/v1/comparisons/", no_baseline, "json")
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["path"] == "baseline_package"
    plain = protocol_with_comparison(world, comparison=False, name="Q")
    refused = client.post("/api/v1/comparisons/", _body(setup, protocol=plain.pk), "json")
    assert refused.status_code == 400 and "pre-registers no comparison" in refused.json()["detail"]
    backwards = _body(setup, baseline_package=setup[1].pk, candidate_package=setup[0].pk)
    refused = client.post("/api/v1/comparisons/", backwards, "json")
    assert refused.status_code == 400 and "lineage does not reach it" in refused.json()["detail"]
    hidden = client.post("/api/v1/comparisons/", _body(setup, dataset_version=987654), "json")
    assert hidden.status_code == 404
    assert not ComparisonRun.objects.exists()
    assert AuditEvent.objects.filter(action=AuditAction.REQUEST_REFUSED).count() >= 4


@pytest.mark.parametrize("role", ["vendor_user", "auditor", "steward", "other_vendor_user"])
def test_only_the_validation_team_starts_a_comparison(world, setup, role):
    response = client_for(getattr(world, role)).post("/api/v1/comparisons/", _body(setup), "json")
    assert response.status_code == 403 and response["Content-Type"] == PROBLEM
    assert not ComparisonRun.objects.exists()
    refusal = AuditEvent.objects.get(action=AuditAction.REQUEST_REFUSED)
    assert refusal.actor == getattr(world, role)
