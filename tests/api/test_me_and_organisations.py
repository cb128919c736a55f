"""`me/` and `organisations/` (issue 17, item 3): who the caller is, and the organisations each
role may name by id: a steward every vendor it may grant to, a vendor its own and the partners
whose data it may be (or was) validated on, the team and auditors all; hidden answers like
missing."""

import pytest
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from tests.factories import (
    DatasetVersionFactory,
    OrganisationFactory,
    PackageFactory,
    RunFactory,
    UserFactory,
)
from tests.support.people import WORLD_PEOPLE
from validation.models import Dataset, DatasetGrant, Membership, Organisation, Role
from validation.services.tokens import api_token_create

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

MISSING = 987654


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _version(partner, steward):
    dataset = Dataset.objects.create(partner=partner, name=f"Chest {partner.name}")
    return DatasetVersionFactory.create(dataset=dataset, created_by=steward)


# --- me/ ----------------------------------------------------------------------------------------


def test_me_names_the_user_their_roles_and_organisations(world):
    body = _client(world.vendor_user).get("/api/v1/me/").json()
    assert body == {
        "id": world.vendor_user.pk,
        "username": "vendor_a_user",
        "name": world.vendor_user.get_full_name(),
        "email": world.vendor_user.email,
        "roles": ["vendor_member"],
        "validation_team": False,
        "organisations": [
            {
                "id": world.vendor_a.pk,
                "name": "Vendor A",
                "kind": "vendor",
                "roles": ["vendor_member"],
                "require_second_factor": False,
            }
        ],
    }


@pytest.mark.parametrize(
    ("role", "roles", "kind", "team"),
    [
        ("vendor_user", ["vendor_member"], "vendor", False),
        ("other_vendor_user", ["vendor_member"], "vendor", False),
        ("steward", ["partner_steward"], "partner", False),
        ("other_steward", ["partner_steward"], "partner", False),
        ("reviewer", ["reviewer"], "validator", True),
        ("qa", ["qa_approver"], "validator", True),
        ("auditor", ["auditor"], "validator", False),
    ],
)
def test_me_for_each_role(world, role, roles, kind, team):
    user = getattr(world, role)
    body = _client(user).get("/api/v1/me/").json()
    assert body["username"] == user.username
    assert body["roles"] == roles
    assert [org["kind"] for org in body["organisations"]] == [kind]
    assert body["validation_team"] is team


def test_me_gathers_several_roles_per_organisation_and_the_second_factor(world):
    world.validator.require_second_factor = True
    world.validator.save()
    Membership.objects.create(user=world.reviewer, organisation=world.validator, role=Role.AUDITOR)
    Membership.objects.create(
        user=world.reviewer, organisation=world.vendor_b, role=Role.VENDOR_MEMBER
    )
    body = _client(world.reviewer).get("/api/v1/me/").json()
    assert body["name"] == "Rita Reviewer"
    assert body["roles"] == ["auditor", "reviewer", "vendor_member"]
    by_id = {org["id"]: org for org in body["organisations"]}
    assert by_id[world.validator.pk]["roles"] == ["auditor", "reviewer"]
    assert by_id[world.validator.pk]["require_second_factor"] is True
    assert by_id[world.vendor_b.pk] == {
        "id": world.vendor_b.pk,
        "name": "Vendor B",
        "kind": "vendor",
        "roles": ["vendor_member"],
        "require_second_factor": False,
    }


def test_me_answers_a_named_api_token_and_nobody_anonymous(world):
    _token, secret = api_token_create(actor=world.steward, name="laptop")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/v1/me/").json()["username"] == "steward_a"
    assert APIClient().get("/api/v1/me/").status_code == 401


def test_me_of_someone_without_an_organisation_or_a_full_name(world):
    body = _client(UserFactory.create(username="nobody", first_name="", last_name="")).get(
        "/api/v1/me/"
    )
    assert body.json()["name"] == "nobody"
    assert (body.json()["roles"], body.json()["organisations"]) == ([], [])
    assert body.json()["validation_team"] is False


# --- organisations/ -----------------------------------------------------------------------------


@pytest.fixture
def granted(world):
    """Partner A grants a version to vendor A; partner C (no steward here) to any vendor;
    partner B granted vendor B and revoked it, after vendor B's run on that version."""
    partner_c = OrganisationFactory.create(name="Partner C", kind=Organisation.Kind.PARTNER)
    DatasetGrant.objects.create(
        dataset_version=_version(world.partner_a, world.steward),
        vendor=world.vendor_a,
        granted_by=world.steward,
    )
    DatasetGrant.objects.create(
        dataset_version=_version(partner_c, world.steward), vendor=None, granted_by=world.steward
    )
    version_b = _version(world.partner_b, world.other_steward)
    DatasetGrant.objects.create(
        dataset_version=version_b,
        vendor=world.vendor_b,
        granted_by=world.other_steward,
        revoked_at="2026-12-01T00:00:00Z",
        revoked_by=world.other_steward,
    )
    RunFactory.create(
        package=PackageFactory.create(vendor=world.vendor_b), dataset_version=version_b
    )
    return partner_c


EVERYONE = {"Vendor A", "Vendor B", "Partner A", "Partner B", "Partner C", "Validator"}
SEES = {
    "vendor_user": {"Vendor A", "Partner A", "Partner C"},
    "other_vendor_user": {"Vendor B", "Partner B", "Partner C"},
    "steward": {"Partner A", "Vendor A", "Vendor B"},
    "other_steward": {"Partner B", "Vendor A", "Vendor B"},
    "reviewer": EVERYONE,
    "qa": EVERYONE,
    "auditor": EVERYONE,
}


@pytest.mark.parametrize("role", WORLD_PEOPLE)
def test_each_role_lists_and_reads_the_organisations_it_may_name(world, granted, role):
    client = _client(getattr(world, role))
    expected = SEES[role]
    listed = client.get("/api/v1/organisations/")
    assert listed.status_code == 200
    rows = listed.json()["results"]
    assert {row["name"] for row in rows} == expected
    assert [row["id"] for row in rows] == sorted(
        (row["id"] for row in rows), reverse=True
    )  # newest first, as every list
    assert set(rows[0]) == {"id", "name", "kind"}
    missing = client.get(f"/api/v1/organisations/{MISSING}/")
    assert missing.status_code == 404
    for org in Organisation.objects.all():
        detail = client.get(f"/api/v1/organisations/{org.pk}/")
        if org.name in expected:
            assert detail.json() == {"id": org.pk, "name": org.name, "kind": org.kind}
        else:
            assert detail.status_code == 404, org.name
            assert detail.content == missing.content  # hidden answers exactly like missing


def test_a_revoked_grant_takes_its_partner_off_the_list_unless_a_run_used_its_data(world, granted):
    """Vendor A never ran on partner A's data: revoking its grant hides partner A from it.
    Vendor B's grant from partner B is revoked too, but its run on that data still names it."""
    DatasetGrant.objects.filter(vendor=world.vendor_a).update(
        revoked_at="2026-12-02T00:00:00Z", revoked_by=world.steward
    )

    def names(user) -> set[str]:
        return {r["name"] for r in _client(user).get("/api/v1/organisations/").json()["results"]}

    assert names(world.vendor_user) == {"Vendor A", "Partner C"}
    assert names(world.other_vendor_user) == {"Vendor B", "Partner B", "Partner C"}


def test_someone_without_an_organisation_names_none(world, granted):
    client = _client(UserFactory.create())
    assert client.get("/api/v1/organisations/").json()["results"] == []
    assert client.get(f"/api/v1/organisations/{granted.pk}/").status_code == 404


def test_organisations_are_read_only_and_a_write_is_audited_as_refused(world):
    response = _client(world.reviewer).post(
        "/api/v1/organisations/", {"name": "New", "kind": "vendor"}, format="json"
    )
    assert response.status_code == 405
    assert not Organisation.objects.filter(name="New").exists()
    refusal = AuditEvent.objects.get(action=AuditAction.REQUEST_REFUSED)
    assert refusal.actor == world.reviewer and refusal.payload["status"] == 405
    assert APIClient().get("/api/v1/organisations/").status_code == 401
