"""Who may open which page of reports, verification, dataset cards and API tokens: each role
against its own and another organisation's objects, lists and details. Hidden objects answer
404 exactly like missing ones; another role's page answers 403; no list shows another
organisation's objects."""

from types import SimpleNamespace

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import DatasetVersionFactory, RunFactory
from tests.support.people import WORLD_PEOPLE
from tests.web.test_reports_pages import stored_report
from validation.models import DatasetGrant, ValidationRun
from validation.services.tokens import api_token_create

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", *WORLD_PEOPLE]
TEAM = {"reviewer", "qa", "auditor"}


@pytest.fixture
def objects(world):
    """Side A (vendor A's run on partner A's data, a card granted to vendor A) and side B."""

    def side(vendor, partner, tag):
        run = RunFactory.create(package__vendor=vendor, status=ValidationRun.Status.ISSUED)
        dataset = run.dataset_version.dataset
        dataset.partner = partner
        dataset.save()
        report = stored_report(run, f"%PDF-1.7 {tag}".encode())
        version = DatasetVersionFactory.create()
        card_dataset = version.dataset
        card_dataset.partner = partner
        card_dataset.name = f"Card dataset {tag}"
        card_dataset.save()
        DatasetGrant.objects.create(dataset_version=version, vendor=vendor, granted_by=world.qa)
        return report, version

    report_a, card_a = side(world.vendor_a, world.partner_a, "A")
    report_b, card_b = side(world.vendor_b, world.partner_b, "B")
    token_a, _ = api_token_create(actor=world.vendor_user, name="token-of-A")
    token_b, _ = api_token_create(actor=world.other_vendor_user, name="token-of-B")
    return SimpleNamespace(
        report_a=report_a,
        report_b=report_b,
        card_a=card_a,
        card_b=card_b,
        token_a=token_a,
        token_b=token_b,
    )


def client_for(world, role: str) -> Client:
    client = Client()
    if role != "anonymous":
        client.force_login(getattr(world, role))
    return client


# Which side's objects each role may see: A, B, or both (the team and auditors).
SIDE = {
    "vendor_user": {"a"},
    "other_vendor_user": {"b"},
    "steward": {"a"},
    "other_steward": {"b"},
    "reviewer": {"a", "b"},
    "qa": {"a", "b"},
    "auditor": {"a", "b"},
}


def expected_report(role: str, side: str) -> int:
    if role == "anonymous":
        return 302
    return 200 if side in SIDE[role] else 404


@pytest.mark.parametrize("role", ROLES)
def test_the_reports_list_shows_only_visible_reports(world, objects, role):
    response = client_for(world, role).get(reverse("web:reports"))
    if role == "anonymous":
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
        return
    assert response.status_code == 200
    body = response.content.decode()
    for side in ("a", "b"):
        report = getattr(objects, f"report_{side}")
        assert (f'href="/reports/{report.pk}/"' in body) == (side in SIDE[role]), side


@pytest.mark.parametrize("page", ["web:report", "web:report-pdf", "web:report-dicom"])
@pytest.mark.parametrize("side", ["a", "b"])
@pytest.mark.parametrize("role", ROLES)
def test_a_report_and_its_pdf_open_only_for_those_who_may_see_it(world, objects, role, side, page):
    report = getattr(objects, f"report_{side}")
    response = client_for(world, role).get(reverse(page, args=[report.pk]))
    assert response.status_code == expected_report(role, side)


@pytest.mark.parametrize("page", ["web:report", "web:report-pdf", "web:report-dicom"])
@pytest.mark.parametrize("role", ROLES[1:])
def test_a_missing_report_answers_404_like_a_hidden_one(world, objects, role, page):
    assert client_for(world, role).get(reverse(page, args=[999999])).status_code == 404


@pytest.mark.parametrize("role", ROLES)
def test_every_signed_in_role_may_verify_a_pdf(world, role):
    response = client_for(world, role).get(reverse("web:verify"))
    assert response.status_code == (302 if role == "anonymous" else 200)


DATASET_CARDS = {
    "anonymous": 302,
    "vendor_user": 200,
    "other_vendor_user": 200,
    "steward": 403,
    "other_steward": 403,
    "reviewer": 403,
    "qa": 403,
    "auditor": 403,
}


@pytest.mark.parametrize("role", ROLES)
def test_dataset_cards_are_for_vendor_members_and_list_only_their_grants(world, objects, role):
    response = client_for(world, role).get(reverse("web:dataset-cards"))
    assert response.status_code == DATASET_CARDS[role]
    if response.status_code == 200:
        body = response.content.decode()
        for side in ("a", "b"):
            card = getattr(objects, f"card_{side}")
            listed = f'href="/dataset-cards/{card.pk}/"' in body
            assert listed == (side in SIDE[role]), side


@pytest.mark.parametrize("side", ["a", "b"])
@pytest.mark.parametrize("role", ROLES)
def test_a_dataset_card_opens_only_for_the_vendor_it_was_granted_to(world, objects, role, side):
    card = getattr(objects, f"card_{side}")
    response = client_for(world, role).get(reverse("web:dataset-card", args=[card.pk]))
    expected = DATASET_CARDS[role]
    if expected == 200 and side not in SIDE[role]:
        expected = 404
    assert response.status_code == expected


@pytest.mark.parametrize("role", ROLES)
def test_the_tokens_page_opens_for_every_role_and_lists_only_ones_own(world, objects, role):
    response = client_for(world, role).get(reverse("web:tokens"))
    if role == "anonymous":
        assert response.status_code == 302
        return
    assert response.status_code == 200
    body = response.content.decode()
    assert ("token-of-A" in body) == (role == "vendor_user")
    assert ("token-of-B" in body) == (role == "other_vendor_user")


OWNER = {"a": "vendor_user", "b": "other_vendor_user"}


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("side", ["a", "b"])
@pytest.mark.parametrize("role", ROLES)
def test_only_its_owner_may_revoke_a_token(world, objects, role, side, method):
    token = getattr(objects, f"token_{side}")
    response = getattr(client_for(world, role), method)(
        reverse("web:token-revoke", args=[token.pk])
    )
    if role == "anonymous":
        expected = 302
    elif role == OWNER[side]:
        expected = 200 if method == "get" else 303
    else:
        expected = 404
    assert response.status_code == expected
    token.refresh_from_db()
    assert (token.revoked_at is not None) == (expected == 303)
