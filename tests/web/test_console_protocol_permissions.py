"""Who may open each protocol editor page: every role against protocols written by either of
the team's people and a missing id, list and detail, read and write. Anonymous: to the sign-in
page; vendors and stewards: 403 (console pages are the team's); auditors read the list and
every protocol and get 403 on the editor and every POST; a missing id answers 404."""

import json

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from tests.factories import protocol_document
from tests.support.people import WORLD_PEOPLE
from validation.models import Protocol
from validation.services.protocols import protocol_create

pytestmark = pytest.mark.django_db

ROLES = [None, *WORLD_PEOPLE]
OUTSIDERS = {"vendor_user", "other_vendor_user", "steward", "other_steward"}
TEAM = {"reviewer", "qa"}
MISSING = 999_999


@pytest.fixture
def protocols(world) -> dict[str, Protocol]:
    """One protocol written by each of the team's people: the console has no owner per
    organisation, the whole team sees every protocol."""
    return {
        "reviewer's": protocol_create(actor=world.reviewer, name="A", document=protocol_document()),
        "qa's": protocol_create(actor=world.qa, name="B", document=protocol_document()),
    }


def client_for(world, role: str | None) -> Client:
    client = Client()
    if role:
        client.force_login(getattr(world, role))
    return client


def expected(role: str | None, *, write: bool, missing: bool = False, ok: int = 200) -> int:
    if role is None:
        return 302
    if role in OUTSIDERS or (write and role == "auditor"):
        return 403
    return 404 if missing else ok


READS = ["web:console-protocol"]
WRITES = ["web:console-protocol-new-version"]


@pytest.mark.parametrize("role", ROLES)
def test_the_list(world, protocols, role):
    response = client_for(world, role).get(reverse("web:console-protocols"))
    assert response.status_code == expected(role, write=False)
    if role is None:
        assert response["Location"].startswith(reverse("web:login"))
    if response.status_code == 200:
        page = response.content.decode()
        assert "A v1" in page and "B v1" in page
        assert ("New protocol" in page) == (role in TEAM)


@pytest.mark.parametrize("role", ROLES)
def test_the_new_protocol_page(world, role):
    response = client_for(world, role).get(reverse("web:console-protocol-new"))
    assert response.status_code == expected(role, write=True)


@pytest.mark.parametrize("whose", ["reviewer's", "qa's", "missing"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", READS + WRITES)
def test_a_protocol_page(world, protocols, role, whose, name):
    pk = MISSING if whose == "missing" else protocols[whose].pk
    response = client_for(world, role).get(reverse(name, args=[pk]))
    assert response.status_code == expected(role, write=name in WRITES, missing=whose == "missing")
    if response.status_code == 200:
        assert protocols[whose].name in response.content.decode()


@pytest.mark.parametrize("role", ROLES)
def test_validating(world, role):
    response = client_for(world, role).post(
        reverse("web:console-protocol-validate"),
        {"name": "A", "document": json.dumps(protocol_document())},
    )
    assert response.status_code == expected(role, write=True)


@pytest.mark.parametrize("role", ROLES)
def test_saving_a_protocol(world, role):
    response = client_for(world, role).post(
        reverse("web:console-protocol-new"),
        {"name": "New", "document": json.dumps(protocol_document())},
    )
    assert response.status_code == expected(role, write=True, ok=303)
    assert Protocol.objects.filter(name="New").exists() == (role in TEAM)


@pytest.mark.parametrize("whose", ["reviewer's", "qa's", "missing"])
@pytest.mark.parametrize("role", ROLES)
def test_saving_a_new_version(world, protocols, role, whose):
    pk = MISSING if whose == "missing" else protocols[whose].pk
    response = client_for(world, role).post(
        reverse("web:console-protocol-new-version", args=[pk]),
        {"document": json.dumps(protocol_document(min_cell_size=4))},
    )
    assert response.status_code == expected(role, write=True, missing=whose == "missing", ok=303)
    assert Protocol.objects.filter(version=2).exists() == (response.status_code == 303)


@pytest.mark.parametrize("whose", ["reviewer's", "qa's", "missing"])
@pytest.mark.parametrize("role", ROLES)
def test_locking(world, protocols, role, whose):
    pk = MISSING if whose == "missing" else protocols[whose].pk
    response = client_for(world, role).post(
        reverse("web:console-protocol-lock", args=[pk]), {"confirm": "on"}
    )
    assert response.status_code == expected(role, write=True, missing=whose == "missing", ok=303)
    locked = AuditEvent.objects.filter(action=AuditAction.PROTOCOL_LOCKED).exists()
    assert locked == (response.status_code == 303)


@pytest.mark.parametrize("name", ["web:console-protocol-validate", "web:console-protocol-lock"])
def test_post_only_endpoints_refuse_a_get(world, protocols, name):
    args = [] if name.endswith("validate") else [protocols["qa's"].pk]
    response = client_for(world, "reviewer").get(reverse(name, args=args))
    assert response.status_code == 405
