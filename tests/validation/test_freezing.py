"""Sealed dataset versions and locked protocols are frozen at every door the ORM has: the
instance's save() and delete(), and the queryset's update() and delete(). Rows not yet frozen
change freely: that is how they get sealed or locked. (The database triggers, the door beside
the ORM, are tested with the services that freeze them.)"""

import pytest
from django.utils import timezone

from audit.immutability import ImmutableRecordError
from tests.factories import DatasetVersionFactory, ProtocolFactory
from validation.models import DatasetVersion, Protocol

pytestmark = pytest.mark.django_db


def test_a_sealed_dataset_version_refuses_every_orm_change():
    sealed = DatasetVersionFactory.create()
    assert sealed.status == DatasetVersion.Status.SEALED
    rows = DatasetVersion.objects.filter(pk=sealed.pk)
    with pytest.raises(ImmutableRecordError, match="sealed dataset version"):
        sealed.delete()
    with pytest.raises(ImmutableRecordError):
        rows.update(merkle_root="0" * 64)
    with pytest.raises(ImmutableRecordError):
        rows.delete()
    sealed.modality = "CT"
    with pytest.raises(ImmutableRecordError):
        sealed.save()
    assert DatasetVersion.objects.get(pk=sealed.pk).merkle_root == sealed.merkle_root


def test_a_draft_dataset_version_changes_and_is_sealed_by_an_update():
    draft = DatasetVersionFactory.create(status=DatasetVersion.Status.DRAFT, sealed_at=None)
    DatasetVersion.objects.filter(pk=draft.pk).update(modality="DX")
    draft.refresh_from_db()
    draft.modality = "CR"
    draft.save()
    DatasetVersion.objects.filter(pk=draft.pk).update(
        status=DatasetVersion.Status.SEALED, sealed_at=timezone.now()
    )
    with pytest.raises(ImmutableRecordError):
        DatasetVersion.objects.filter(pk=draft.pk).update(modality="DX")


def test_a_locked_protocol_refuses_every_orm_change_and_an_unlocked_one_does_not():
    unlocked = ProtocolFactory.create()
    Protocol.objects.filter(pk=unlocked.pk).update(name="Renamed before its lock")
    locked = ProtocolFactory.create(sha256="a" * 64, locked_at="2026-12-01T00:00:00Z")
    with pytest.raises(ImmutableRecordError, match="locked protocol"):
        locked.delete()
    with pytest.raises(ImmutableRecordError):
        Protocol.objects.filter(pk=locked.pk).update(document={})
    with pytest.raises(ImmutableRecordError):
        Protocol.objects.filter(pk__in=[unlocked.pk, locked.pk]).delete()
    assert Protocol.objects.filter(pk__in=[unlocked.pk, locked.pk]).count() == 2
    unlocked.delete()  # nothing refers to it yet
    assert not Protocol.objects.filter(pk=unlocked.pk).exists()
