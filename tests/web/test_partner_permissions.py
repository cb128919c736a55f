"""Who may open each partner page: every role against its own and another organisation's
objects, lists and details. Anonymous: to the sign-in page; other roles: 403; another
partner's object: 404 exactly like a missing one; lists never hold another partner's rows."""

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import DatasetVersionFactory, PackageFactory, RunFactory
from tests.support.people import WORLD_PEOPLE
from validation.models import Dataset, DatasetGrant, DatasetImport
from validation.services.datasets import dataset_grant

pytestmark = pytest.mark.django_db

ROLES = WORLD_PEOPLE
NOT_STEWARDS = ["vendor_user", "other_vendor_user", "reviewer", "qa", "auditor"]


@pytest.fixture
def objects(world):
    """For each partner (a: steward's, b: other_steward's): a dataset, a sealed version, an
    import, a grant and a run."""
    made = {}
    for key, partner, steward in (
        ("a", world.partner_a, world.steward),
        ("b", world.partner_b, world.other_steward),
    ):
        dataset = Dataset.objects.create(partner=partner, name=f"Data {key}")
        version = DatasetVersionFactory.create(dataset=dataset, created_by=steward)
        job = DatasetImport.objects.create(
            dataset=dataset, requested_by=steward, source_name=f"{key}.zip", status="done"
        )
        grant = dataset_grant(actor=steward, dataset_version=version, vendor=world.vendor_a)
        run = RunFactory.create(
            package=PackageFactory.create(vendor=world.vendor_a, name=f"Model-{key}"),
            dataset_version=version,
        )
        made[key] = {
            "dataset": dataset,
            "version": version,
            "import": job,
            "grant": grant,
            "run": run,
        }
    return made


# (url name, which object's pk it takes, or None for a list)
DETAILS = [
    ("web:dataset", "dataset"),
    ("web:dataset-import-new", "dataset"),
    ("web:dataset-version", "version"),
    ("web:dataset-import", "import"),
]
LISTS = ["web:datasets", "web:grants", "web:grant-new", "web:usage", "web:usage-csv"]


def streamed(response) -> str:
    return b"".join(response.streaming_content).decode()


def client_for(world, role: str | None) -> Client:
    client = Client()
    if role:
        client.force_login(getattr(world, role))
    return client


def url(name: str, objects, key: str | None, kind: str | None) -> str:
    if kind is None:
        return reverse(name)
    return reverse(name, args=[objects[key][kind].pk])


def expected(role: str | None, owner: str | None) -> int:
    """owner: 'a' (partner_a's object), 'b', or None (a list)."""
    if role is None:
        return 302
    if role in NOT_STEWARDS:
        return 403
    mine = "a" if role == "steward" else "b"
    return 200 if owner in (None, mine) else 404


@pytest.mark.parametrize("role", [None, *ROLES])
@pytest.mark.parametrize("name", LISTS)
def test_lists(world, objects, role, name):
    response = client_for(world, role).get(reverse(name))
    assert response.status_code == expected(role, None), (role, name)
    if role is None:
        assert response["Location"].startswith(reverse("web:login") + "?next=")


@pytest.mark.parametrize("role", [None, *ROLES])
@pytest.mark.parametrize("owner", ["a", "b"])
@pytest.mark.parametrize(("name", "kind"), DETAILS)
def test_details(world, objects, role, owner, name, kind):
    response = client_for(world, role).get(url(name, objects, owner, kind))
    assert response.status_code == expected(role, owner), (role, owner, name)


@pytest.mark.parametrize("name", [n for n, _k in DETAILS])
def test_a_missing_id_answers_like_another_partners(world, objects, name):
    assert client_for(world, "steward").get(reverse(name, args=[999999])).status_code == 404


@pytest.mark.parametrize("role", [None, *ROLES])
@pytest.mark.parametrize("owner", ["a", "b"])
def test_revoking(world, objects, role, owner):
    grant = objects[owner]["grant"]
    response = client_for(world, role).post(
        reverse("web:grant-revoke", args=[grant.pk]), {"reason": "test"}
    )
    want = expected(role, owner)
    assert response.status_code == (303 if want == 200 else want), (role, owner)
    revoked = DatasetGrant.objects.get(pk=grant.pk).revoked_at is not None
    assert revoked == (want == 200)


@pytest.mark.parametrize("role", [None, *ROLES])
@pytest.mark.parametrize("owner", ["a", "b"])
def test_importing_into_a_dataset(world, objects, role, owner):
    dataset = objects[owner]["dataset"]
    before = DatasetImport.objects.count()
    response = client_for(world, role).post(reverse("web:dataset-import-new", args=[dataset.pk]))
    want = expected(role, owner)
    assert response.status_code == (400 if want == 200 else want), (role, owner)  # no file
    assert DatasetImport.objects.count() == before


@pytest.mark.parametrize("role", ["steward", "other_steward"])
def test_lists_hold_only_the_stewards_own_rows(world, objects, role):
    mine, theirs = ("a", "b") if role == "steward" else ("b", "a")
    client = client_for(world, role)
    pages = {
        name: client.get(reverse(name)).content.decode()
        for name in ("web:datasets", "web:grants", "web:usage", "web:grant-new")
    }
    assert f"Data {mine}" in pages["web:datasets"] and f"Data {theirs}" not in pages["web:datasets"]
    assert f"Data {mine}" in pages["web:grants"] and f"Data {theirs}" not in pages["web:grants"]
    assert f"Model-{mine}" in pages["web:usage"] and f"Model-{theirs}" not in pages["web:usage"]
    assert (
        f"Data {mine}" in pages["web:grant-new"] and f"Data {theirs}" not in pages["web:grant-new"]
    )
    csv_body = streamed(client.get(reverse("web:usage-csv")))
    assert f"Model-{mine}" in csv_body and f"Model-{theirs}" not in csv_body
    dataset_page = client.get(reverse("web:dataset", args=[objects[mine]["dataset"].pk]))
    assert f"{theirs}.zip" not in dataset_page.content.decode()


@pytest.mark.parametrize("role", ["steward", "other_steward"])
def test_a_grant_cannot_name_another_partners_version(world, objects, role):
    theirs = "b" if role == "steward" else "a"
    response = client_for(world, role).post(
        reverse("web:grant-new"),
        {
            "vendor": world.vendor_a.pk,
            "dataset_version": objects[theirs]["version"].pk,
            "protocol": "any",
        },
    )
    assert response.status_code == 400
    assert DatasetGrant.objects.count() == 2


def test_the_usage_filter_cannot_name_another_partners_dataset(world, objects):
    client = client_for(world, "steward")
    theirs = objects["b"]["dataset"].pk
    assert client.get(reverse("web:usage") + f"?dataset={theirs}").status_code == 404
    assert client.get(reverse("web:usage-csv") + f"?dataset={theirs}").status_code == 404
    assert client.get(reverse("web:usage") + "?dataset=nonsense").status_code == 404


@pytest.mark.parametrize("role", ROLES)
def test_the_partner_navigation_is_shown_only_to_stewards(world, role):
    body = client_for(world, role).get("/").content.decode()
    shown = 'href="/grants/"' in body and 'href="/usage/"' in body and 'href="/datasets/"' in body
    assert shown == (role in ("steward", "other_steward"))
