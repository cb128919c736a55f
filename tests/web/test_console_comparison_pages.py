"""The console's comparison runs (issue 18 item 13): the "Compare versions" launcher (the
baseline defaults to the candidate's predecessor, the pre-registered endpoints and margins and
both runs' checks shown before anything starts, `comparison_start`'s refusals on the form),
the list, and a comparison's page (live while its runs run, then the paired result and a link
to sign the comparison report). The team acts; auditors read; vendors and stewards get 403."""

import pytest

from audit.models import AuditAction, AuditEvent
from reports.models import Report
from reports.template_filters import num3
from tests.support.comparisons import (
    comparison_scored,
    comparison_setup,
    protocol_with_comparison,
)
from tests.support.people import signed_in
from tests.web.vendor_helpers import package_of
from validation.models import ComparisonRun, ModelPackage
from validation.services.comparisons import comparison_start
from validation.services.protocols import protocol_lock

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}


@pytest.fixture
def setup(world):
    baseline, candidate, version, protocol = comparison_setup(world)
    protocol_lock(actor=world.reviewer, protocol=protocol)
    return baseline, candidate, version, protocol


def _form(setup, **overrides) -> dict:
    baseline, candidate, version, protocol = setup
    return {
        "candidate": candidate.pk,
        "dataset_version": version.pk,
        "protocol": protocol.pk,
        **overrides,
    }


def test_the_launcher_defaults_to_the_predecessor_and_shows_the_plan_and_checks(world, setup):
    baseline, candidate, version, protocol = setup
    third = package_of(
        world.vendor_a, version="1.2", supersedes=candidate, status=ModelPackage.Status.APPROVED
    )
    client = signed_in(world.reviewer)
    page = client.get("/console/comparisons/new/").content.decode()
    # Only packages that succeed another version are candidates; only plans with a comparison.
    assert f'value="{candidate.pk}"' in page and f'value="{third.pk}"' in page
    assert f"{baseline.name} {baseline.version}</option>" not in page
    unplanned = protocol_with_comparison(world, comparison=False, name="No comparison")
    protocol_lock(actor=world.reviewer, protocol=unplanned)
    assert "No comparison" not in client.get("/console/comparisons/new/").content.decode()
    html = client.get(
        "/console/comparisons/new/preflight/", _form(setup, candidate=third.pk), headers=HX
    ).content.decode()
    # 1.2's predecessor (1.1) first and chosen; 1.0 reachable through the lineage.
    assert f'<option value="{candidate.pk}" selected>' in html
    assert f'<option value="{baseline.pk}">' in html and "the predecessor" in html
    # The pre-registered endpoints with their margins and rules.
    assert "non-inferiority" in html and "superiority" in html
    assert "lower bound &gt; −0.050" in html
    # Both runs' checks.
    assert 'data-side="baseline"' in html and 'data-side="candidate"' in html
    assert "Every blocking check passes for both runs." in html
    chosen = client.get(
        "/console/comparisons/new/preflight/",
        _form(setup, candidate=third.pk, baseline=baseline.pk),
        headers=HX,
    ).content.decode()
    assert f'<option value="{baseline.pk}" selected>' in chosen
    assert not ComparisonRun.objects.exists()


def test_launch_needs_the_confirmation_then_starts_the_comparison(world, setup):
    baseline, candidate, _, _ = setup
    client = signed_in(world.reviewer)
    response = client.post("/console/comparisons/new/", _form(setup), headers=HX)
    assert response.status_code == 422 and "Tick the confirmation" in response.content.decode()
    assert not ComparisonRun.objects.exists()
    response = client.post("/console/comparisons/new/", {**_form(setup), "confirm": "yes"})
    comparison = ComparisonRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/console/comparisons/{comparison.pk}/"
    assert comparison.baseline.package == baseline and comparison.candidate.package == candidate
    assert AuditEvent.objects.filter(action=AuditAction.COMPARISON_STARTED).count() == 1


def test_launch_refusals_are_shown_on_the_form(world, setup):
    client = signed_in(world.reviewer)
    response = client.post("/console/comparisons/new/", {"confirm": "yes"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Choose an approved package that succeeds another version." in html
    assert "Choose a locked protocol that pre-registers a comparison." in html
    # The service's own refusal: the dataset version is not granted to the vendor.
    from tests.support.comparisons import version_with_cases

    ungranted = version_with_cases(world, grant=False)
    response = client.post(
        "/console/comparisons/new/",
        {**_form(setup, dataset_version=ungranted.pk), "confirm": "yes"},
        headers=HX,
    )
    assert response.status_code == 422 and "has not granted this vendor" in (
        response.content.decode()
    )
    assert not ComparisonRun.objects.exists()


def test_the_list_and_a_running_comparisons_page_poll(world, setup):
    baseline, candidate, version, protocol = setup
    comparison = comparison_start(
        actor=world.reviewer,
        baseline=baseline,
        candidate=candidate,
        dataset_version=version,
        protocol=protocol,
    )
    client = signed_in(world.reviewer)
    listed = client.get("/console/comparisons/").content.decode()
    assert comparison.reference in listed and "Runs under way" in listed
    assert "Compare versions" in listed
    assert (
        comparison.reference
        not in client.get("/console/comparisons/?status=issued").content.decode()
    )
    page = client.get(f"/console/comparisons/{comparison.pk}/").content.decode()
    assert f'hx-get="/console/comparisons/{comparison.pk}/live/"' in page
    assert baseline.sha256 in page and version.merkle_root in page
    assert f"Run {comparison.baseline.pk}" in page and f"Run {comparison.candidate.pk}" in page
    live = client.get(f"/console/comparisons/{comparison.pk}/live/", headers=HX)
    assert live.status_code == 200 and "Updating live" in live.content.decode()


def test_a_scored_comparison_shows_its_result_and_the_report_to_sign(world, setup):
    comparison = comparison_scored(world, setup)
    report = Report.objects.get(comparison=comparison)
    client = signed_in(world.reviewer)
    live = client.get(f"/console/comparisons/{comparison.pk}/live/", headers=HX)
    assert live.status_code == 286  # polling stops
    page = client.get(f"/console/comparisons/{comparison.pk}/").content.decode()
    assert "hx-get" not in page.split('id="comparison-live"')[1].split(">")[0]
    assert "data-result" in page and "Awaiting signature" in page
    auc = comparison.result["endpoints"][0]
    assert num3(auc["difference"]["estimate"]) in page  # as the report prints it
    assert f'href="/console/reports/{report.pk}/sign/"' in page and "Open for signing" in page


def test_auditors_read_without_acting(world, setup):
    comparison = comparison_scored(world, setup)
    client = signed_in(world.auditor)
    assert client.get("/console/comparisons/").status_code == 200
    assert client.get(f"/console/comparisons/{comparison.pk}/").status_code == 200
    html = client.get("/console/comparisons/new/").content.decode()
    assert "Start the comparison" not in html and "they do not start comparisons" in html
    listed = client.get("/console/comparisons/").content.decode()
    assert "Compare versions</a>" not in listed
    response = client.post("/console/comparisons/new/", {**_form(setup), "confirm": "yes"})
    assert response.status_code == 403
    assert ComparisonRun.objects.count() == 1


@pytest.mark.parametrize("role", ["vendor_user", "other_vendor_user", "steward"])
def test_vendors_and_stewards_get_403(world, setup, role):
    comparison = comparison_scored(world, setup)
    client = signed_in(getattr(world, role))
    for url in (
        "/console/comparisons/",
        "/console/comparisons/new/",
        "/console/comparisons/new/preflight/",
        f"/console/comparisons/{comparison.pk}/",
        f"/console/comparisons/{comparison.pk}/live/",
    ):
        assert client.get(url).status_code == 403, url
    assert client.post("/console/comparisons/new/", _form(setup)).status_code == 403


def test_a_missing_comparison_is_404_and_the_navigation_names_the_page(world):
    client = signed_in(world.reviewer)
    assert client.get("/console/comparisons/987654/").status_code == 404
    html = client.get("/console/comparisons/").content.decode()
    assert 'href="/console/comparisons/"' in html and ">Comparisons<" in html
