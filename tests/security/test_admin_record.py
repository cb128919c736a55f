"""Issue 14, item 5: the admin reads; services write. A superuser who changes a grant's run cap
or scope through /admin/ would leave no audit event, and the new cap would be enforced. Every
domain model is read-only in the admin; case-level rows are not browsable there at all."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.test import Client

from audit.models import AuditAction, AuditEvent
from audit.selectors import audit_chain_verify
from tests.factories import DatasetVersionFactory, ProtocolFactory, UserFactory
from validation.models import Dataset, DatasetGrant

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(world):
    boss = UserFactory.create(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(boss)
    return client


@pytest.fixture
def grant(world):
    version = DatasetVersionFactory.create(
        dataset=Dataset.objects.create(partner=world.partner_a, name="Chest"),
        created_by=world.steward,
    )
    return DatasetGrant.objects.create(
        dataset_version=version, vendor=world.vendor_a, max_runs=2, granted_by=world.steward
    )


def _grant_form(grant, **changes) -> dict:
    form = {
        "dataset_version": grant.dataset_version_id,
        "vendor": grant.vendor_id,
        "protocol": "",
        "allow_exemplars": "",
        "max_runs": grant.max_runs,
        "granted_by": grant.granted_by_id,
        "revoked_at_0": "",
        "revoked_at_1": "",
        "revoked_by": "",
    }
    form.update(changes)
    return form


def test_superuser_cannot_change_a_grant_through_the_admin(superuser_client, grant, world):
    protocol = ProtocolFactory.create(created_by=world.reviewer)
    events = AuditEvent.objects.count()
    url = f"/admin/validation/datasetgrant/{grant.pk}/change/"
    changed = superuser_client.post(
        url, _grant_form(grant, max_runs=50, protocol=protocol.pk, allow_exemplars="on")
    )
    assert changed.status_code == 403
    grant.refresh_from_db()
    assert (grant.max_runs, grant.protocol_id, grant.allow_exemplars) == (2, None, False)

    added = superuser_client.post("/admin/validation/datasetgrant/add/", _grant_form(grant))
    assert added.status_code == 403
    assert DatasetGrant.objects.count() == 1

    deleted = superuser_client.post(
        f"/admin/validation/datasetgrant/{grant.pk}/delete/", {"post": "yes"}
    )
    assert deleted.status_code == 403
    assert DatasetGrant.objects.filter(pk=grant.pk).exists()
    # Nothing was written but the record of the three refused attempts.
    attempts = AuditEvent.objects.order_by("id")[events:]
    assert [e.action for e in attempts] == [AuditAction.REQUEST_REFUSED] * 3
    assert {e.actor.username for e in attempts} == {"root"}
    assert [e.payload["path"] for e in attempts] == [
        url,
        "/admin/validation/datasetgrant/add/",
        f"/admin/validation/datasetgrant/{grant.pk}/delete/",
    ]
    assert audit_chain_verify().intact

    listing = superuser_client.get("/admin/validation/datasetgrant/")
    assert listing.status_code == 200
    assert superuser_client.get(url).status_code == 200  # the form shows, read-only


def test_superuser_cannot_change_memberships_or_organisations(superuser_client, world):
    membership = world.vendor_user.memberships.get()
    refused = superuser_client.post(
        f"/admin/validation/membership/{membership.pk}/change/",
        {"user": world.vendor_user.pk, "organisation": world.vendor_a.pk, "role": "reviewer"},
    )
    assert refused.status_code == 403
    membership.refresh_from_db()
    assert membership.role == "vendor_member"
    renamed = superuser_client.post(
        f"/admin/validation/organisation/{world.vendor_a.pk}/change/",
        {"name": "Renamed", "kind": "vendor"},
    )
    assert renamed.status_code == 403
    world.vendor_a.refresh_from_db()
    assert world.vendor_a.name == "Vendor A"


def test_no_domain_model_is_writable_in_the_admin(rf, world):
    """Whatever is registered for the apps that own the record: no add, change or delete."""
    boss = UserFactory.create(username="root2", is_staff=True, is_superuser=True)
    request = rf.get("/admin/")
    request.user = boss
    domain = {"validation", "reports", "audit"}
    registered = [
        (model, admin.site.get_model_admin(model))
        for label in domain
        for model in apps.get_app_config(label).get_models()
        if admin.site.is_registered(model)
    ]
    assert len(registered) >= 10
    for model, model_admin in registered:
        assert not model_admin.has_add_permission(request), model
        assert not model_admin.has_change_permission(request), model
        assert not model_admin.has_delete_permission(request), model
        assert model_admin.has_view_permission(request), model
