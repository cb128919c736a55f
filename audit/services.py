"""Writing the audit trail. Call `audit_record` inside the transaction of the change it records."""

from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from audit.chain import event_digest, payload_digest
from audit.models import GENESIS_HASH, AuditEvent

# Any constant works: it only serialises writers of the chain on PostgreSQL.
_PG_CHAIN_LOCK = 0x626C696E64


def _actor_label(actor) -> str:
    if actor is None:
        return "system"
    full = actor.get_full_name() or actor.get_username()
    return f"{full} <{actor.get_username()}>"


def audit_record(*, actor, action: str, target=None, payload: dict | None = None) -> AuditEvent:
    """Append one event to the chain. Must run inside the caller's transaction so the event and
    the change commit or roll back together. Writers are serialised (advisory lock on
    PostgreSQL, the database write lock on SQLite); `prev_hash` is unique as a last line."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must be called inside a transaction.")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_PG_CHAIN_LOCK])
    last = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
    prev_hash = last or GENESIS_HASH
    payload = payload or {}
    at = timezone.now()
    fields: dict[str, Any] = {
        "at": at,
        "actor_label": _actor_label(actor),
        "action": str(action),
        "target_type": target._meta.label if target is not None else "",
        "target_id": str(target.pk) if target is not None else "",
        "payload_sha256": payload_digest(payload),
    }
    digest = event_digest(prev_hash=prev_hash, **fields)
    return AuditEvent.objects.create(
        actor=actor, payload=payload, prev_hash=prev_hash, hash=digest, **fields
    )
