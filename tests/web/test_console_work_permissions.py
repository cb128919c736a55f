"""Who may open each page of the console's work screens: every role against both
organisations' packages and runs, lists and details, reads and actions. The validation team
(reviewers, QA approvers) reads and acts on every organisation's objects; auditors read every
screen and every post answers them 403; vendors and stewards get 403 on the whole console; a
missing id answers 404; anonymous visitors go to the sign-in page."""

import pytest
from django.test import Client
from django.urls import reverse

from tests.support.people import WORLD_PEOPLE, signed_in
from tests.web.vendor_helpers import package_of, run_of
from validation.models import ModelPackage, ValidationRun

pytestmark = pytest.mark.django_db

TEAM = {"reviewer", "qa"}
READERS = TEAM | {"auditor"}

LIST_PAGES = [
    "web:console",
    "web:console-live",
    "web:console-packages",
    "web:console-runs",
    "web:console-run-new",
    "web:console-run-preflight",
]
PACKAGE_PAGES = ["web:console-package"]
RUN_PAGES = ["web:console-run", "web:console-run-live"]


@pytest.fixture
def objects(world):
    """For each vendor: a submitted package and a running run of it."""
    found = {}
    for vendor, partner in (("vendor_a", "partner_a"), ("vendor_b", "partner_b")):
        package = package_of(
            getattr(world, vendor), name=f"Model of {vendor}", status=ModelPackage.Status.SUBMITTED
        )
        run = run_of(package, partner=getattr(world, partner), status=ValidationRun.Status.RUNNING)
        found[vendor] = {"package": package, "run": run}
    return found


def client_for(world, role: str | None) -> Client:
    return Client() if role is None else signed_in(getattr(world, role))


def expected_read(role: str | None) -> int:
    if role is None:
        return 302
    return 200 if role in READERS else 403


@pytest.mark.parametrize("name", LIST_PAGES)
@pytest.mark.parametrize("role", [None, *WORLD_PEOPLE])
def test_list_pages(world, objects, role, name):
    response = client_for(world, role).get(reverse(name))
    assert response.status_code == expected_read(role)
    if role is None:
        assert response["Location"].startswith(reverse("web:login") + "?next=")


@pytest.mark.parametrize("role", sorted(READERS))
def test_lists_hold_every_organisation_for_the_team_and_auditors(world, objects, role):
    client = client_for(world, role)
    packages = client.get(reverse("web:console-packages")).content.decode()
    runs = client.get(reverse("web:console-runs")).content.decode()
    for vendor in ("vendor_a", "vendor_b"):
        assert reverse("web:console-package", args=[objects[vendor]["package"].pk]) in packages
        assert reverse("web:console-run", args=[objects[vendor]["run"].pk]) in runs


@pytest.mark.parametrize("vendor", ["vendor_a", "vendor_b"])
@pytest.mark.parametrize("name", PACKAGE_PAGES + RUN_PAGES)
@pytest.mark.parametrize("role", [None, *WORLD_PEOPLE])
def test_detail_pages(world, objects, role, name, vendor):
    target = objects[vendor]["package" if name in PACKAGE_PAGES else "run"]
    response = client_for(world, role).get(reverse(name, args=[target.pk]))
    assert response.status_code == expected_read(role)


@pytest.mark.parametrize("name", PACKAGE_PAGES + RUN_PAGES)
@pytest.mark.parametrize("role", sorted(READERS))
def test_a_missing_id_answers_404(world, objects, role, name):
    response = client_for(world, role).get(reverse(name, args=[999999]))
    assert response.status_code == 404


ACTIONS = [
    ("web:console-package-review", "package", {"decision": "approve"}),
    ("web:console-run-cancel", "run", {"confirm": "yes"}),
]


@pytest.mark.parametrize(("name", "kind", "data"), ACTIONS)
@pytest.mark.parametrize("role", [None, *WORLD_PEOPLE])
def test_actions(world, objects, role, name, kind, data):
    target = objects["vendor_b"][kind]
    response = client_for(world, role).post(reverse(name, args=[target.pk]), data)
    target.refresh_from_db()
    if role in TEAM:
        assert response.status_code == 302
        assert target.status in (ModelPackage.Status.APPROVED, ValidationRun.Status.CANCELLED)
        return
    assert response.status_code == (302 if role is None else 403)
    assert target.status in (ModelPackage.Status.SUBMITTED, ValidationRun.Status.RUNNING)


@pytest.mark.parametrize("role", [None, *WORLD_PEOPLE])
def test_launching(world, objects, role):
    response = client_for(world, role).post(reverse("web:console-run-new"), {"confirm": "yes"})
    # The team's post is read (and refused for want of choices); nobody else's is.
    assert response.status_code == {None: 302, "reviewer": 400, "qa": 400}.get(role, 403)
    assert ValidationRun.objects.count() == 2
