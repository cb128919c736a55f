"""The audit trail is append-only at every door and its chain names the first broken link.

Marked `integration`: the PostgreSQL tier runs these again against real triggers there."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from audit.immutability import (
    ImmutableRecordError,
    append_only_trigger_sql,
    drop_append_only_trigger_sql,
)
from audit.models import GENESIS_HASH, AuditAction, AuditEvent
from audit.selectors import audit_chain_verify
from audit.services import audit_record

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
TABLE = "audit_auditevent"


def _events(n, actor=None):
    events = []
    for i in range(n):
        with transaction.atomic():
            events.append(
                audit_record(actor=actor, action=AuditAction.PROTOCOL_CREATED, payload={"i": i})
            )
    return events


def _raw(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_events_chain_from_genesis_and_verify_intact(world):
    events = _events(3, actor=world.reviewer)
    first = AuditEvent.objects.order_by("id").first()
    assert first is not None  # three events were just written
    assert first.prev_hash == GENESIS_HASH
    for before, after in zip(events, events[1:], strict=False):
        assert after.prev_hash == before.hash
    report = audit_chain_verify()
    assert report.intact and report.events_checked == AuditEvent.objects.count()
    assert events[0].actor_label.endswith("<reviewer>")


@pytest.mark.django_db(transaction=True)
def test_audit_record_refuses_outside_a_transaction():
    with pytest.raises(RuntimeError, match="inside a transaction"):
        audit_record(actor=None, action=AuditAction.PROTOCOL_CREATED)


def test_orm_queryset_and_model_refuse_changes(db):
    event = _events(1)[0]
    event.payload = {"i": 99}
    with pytest.raises(ImmutableRecordError):
        event.save()
    with pytest.raises(ImmutableRecordError):
        event.delete()
    with pytest.raises(ImmutableRecordError):
        AuditEvent.objects.filter(pk=event.pk).update(action="x")
    with pytest.raises(ImmutableRecordError):
        AuditEvent.objects.all().delete()


def test_raw_sql_update_and_delete_are_refused_by_triggers(db):
    event = _events(1)[0]
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        _raw(f"UPDATE {TABLE} SET action = 'forged' WHERE id = %s", [event.pk])
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        _raw(f"DELETE FROM {TABLE} WHERE id = %s", [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).action == AuditAction.PROTOCOL_CREATED


def test_verify_names_the_first_altered_event(db):
    events = _events(4)
    vendor = connection.vendor
    try:
        for sql in drop_append_only_trigger_sql(TABLE, vendor=vendor):
            _raw(sql)
        # A tamperer rewrites a payload and even its payload hash, but cannot re-chain.
        _raw(f"UPDATE {TABLE} SET payload = %s WHERE id = %s", ['{"i": 1000}', events[2].pk])
    finally:
        for sql in append_only_trigger_sql(TABLE, vendor=vendor):
            _raw(sql)
    report = audit_chain_verify()
    assert not report.intact
    assert report.broken_event_id == events[2].pk
    assert "payload" in report.reason
    with pytest.raises(CommandError, match=f"#{events[2].pk}"):
        call_command("audit_verify")


def test_verify_detects_a_deleted_link(db):
    events = _events(3)
    vendor = connection.vendor
    try:
        for sql in drop_append_only_trigger_sql(TABLE, vendor=vendor):
            _raw(sql)
        _raw(f"DELETE FROM {TABLE} WHERE id = %s", [events[1].pk])
    finally:
        for sql in append_only_trigger_sql(TABLE, vendor=vendor):
            _raw(sql)
    report = audit_chain_verify()
    assert report.broken_event_id == events[2].pk
    assert "prev_hash" in report.reason


def test_a_fork_of_the_chain_is_refused_by_the_database(db):
    event = _events(1)[0]
    with pytest.raises(Exception), transaction.atomic():  # noqa: B017 (IntegrityError per vendor)
        AuditEvent.objects.create(
            at=event.at,
            actor_label="x",
            action="x",
            payload={},
            payload_sha256="0",
            prev_hash=event.prev_hash,
            hash="f" * 64,
        )


def test_audit_verify_command_reports_intact(db, capsys):
    _events(2)
    call_command("audit_verify")
    assert "intact" in capsys.readouterr().out
