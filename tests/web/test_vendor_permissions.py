"""Who may open each vendor page: every role against its own and another organisation's
packages and runs, list and detail. A hidden object answers 404 exactly like a missing one;
another role's area answers 403; no list holds another organisation's rows."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from tests.support.people import WORLD_PEOPLE, signed_in
from tests.web.vendor_helpers import package_of, scored_run
from validation.models import ModelPackage

pytestmark = pytest.mark.django_db

ROLES = WORLD_PEOPLE
# Which vendor each vendor member belongs to; every other role holds no vendor page.
OWN_VENDOR = {"vendor_user": "vendor_a", "other_vendor_user": "vendor_b"}

LIST_PAGES = ["web:packages", "web:package-upload", "web:runs"]
PACKAGE_PAGES = ["web:package", "web:package-status"]
RUN_PAGES = ["web:run", "web:run-progress", "web:run-results"]


@pytest.fixture
def objects(world):
    """For each vendor: a package and a scored run of it on the partner of the same letter."""
    found = {}
    for vendor, partner in (("vendor_a", "partner_a"), ("vendor_b", "partner_b")):
        package = package_of(
            getattr(world, vendor), name=f"Model of {vendor}", status=ModelPackage.Status.APPROVED
        )
        run = scored_run(package, n=24, partner=getattr(world, partner))
        found[vendor] = {"package": package, "run": run}
    return found


def client_for(world, role: str | None) -> Client:
    return Client() if role is None else signed_in(getattr(world, role))


def _urls(objects, vendor: str) -> list[str]:
    package, run = objects[vendor]["package"], objects[vendor]["run"]
    return [
        *[reverse(name, args=[package.pk]) for name in PACKAGE_PAGES],
        *[reverse(name, args=[run.pk]) for name in RUN_PAGES],
        reverse("web:run-plot", args=[run.pk, "roc"]),
    ]


@pytest.mark.parametrize("name", LIST_PAGES)
@pytest.mark.parametrize("role", [None, *ROLES])
def test_list_pages(world, objects, role, name):
    response = client_for(world, role).get(reverse(name))
    if role is None:
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("web:login") + "?next=")
        return
    if role not in OWN_VENDOR:
        assert response.status_code == 403
        return
    assert response.status_code == 200
    body = response.content.decode()
    own, other = OWN_VENDOR[role], ({"vendor_a", "vendor_b"} - {OWN_VENDOR[role]}).pop()
    if name != "web:package-upload":
        assert f"Model of {own}" in body
        assert f"Model of {other}" not in body
        assert reverse("web:run", args=[objects[other]["run"].pk]) not in body
        assert reverse("web:package", args=[objects[other]["package"].pk]) not in body


@pytest.mark.parametrize("owner", ["vendor_a", "vendor_b"])
@pytest.mark.parametrize("role", [None, *ROLES])
def test_detail_pages(world, objects, role, owner):
    client = client_for(world, role)
    for url in _urls(objects, owner):
        response = client.get(url)
        if role is None:
            expected = 302
        elif role not in OWN_VENDOR:
            expected = 403
        else:
            expected = 200 if OWN_VENDOR[role] == owner else 404
        if expected == 200 and "/status/" in url:
            expected = 286  # the package is decided: its live fragment says stop polling
        assert response.status_code == expected, (role, url)


def _without_token(body: bytes) -> bytes:
    return re.sub(rb'("X-CSRFToken": "|name="csrfmiddlewaretoken" value=")[^"]*"', b"", body)


@pytest.mark.parametrize("role", ["vendor_user", "other_vendor_user"])
def test_a_hidden_id_answers_exactly_like_a_missing_one(world, objects, role):
    other = ({"vendor_a", "vendor_b"} - {OWN_VENDOR[role]}).pop()
    client = client_for(world, role)
    missing = 10**6
    for hidden_url, missing_url in zip(
        _urls(objects, other),
        [
            *[reverse(name, args=[missing]) for name in PACKAGE_PAGES],
            *[reverse(name, args=[missing]) for name in RUN_PAGES],
            reverse("web:run-plot", args=[missing, "roc"]),
        ],
        strict=True,
    ):
        hidden, absent = client.get(hidden_url), client.get(missing_url)
        assert hidden.status_code == absent.status_code == 404
        assert _without_token(hidden.content) == _without_token(absent.content)


@pytest.mark.parametrize("role", [None, "steward", "reviewer", "auditor", "other_vendor_user"])
def test_only_a_vendor_member_may_upload_and_only_for_its_own_vendor(world, role, package_file):
    with open(package_file, "rb") as archive:
        response = client_for(world, role).post(reverse("web:package-upload"), {"file": archive})
    if role is None:
        assert response.status_code == 302
    elif role == "other_vendor_user":
        assert ModelPackage.objects.get().vendor == world.vendor_b
    else:
        assert response.status_code == 403
    if role != "other_vendor_user":
        assert not ModelPackage.objects.exists()
