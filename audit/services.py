"""Writing the audit trail. Call `audit_record` inside the transaction of the change it records."""

import hashlib
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from audit.chain import canonical_payload, event_digest, payload_digest
from audit.models import GENESIS_HASH, AuditAction, AuditEvent
from validation.errors import bounded_json

# Any constant works: it only serialises writers of the chain on PostgreSQL.
_PG_CHAIN_LOCK = 0x626C696E64


# A hard cap on one event's payload as stored and hashed: input echoed into a payload (a 1 MB
# manifest name) must not become a megabyte of append-only record (issue 14, item 8).
AUDIT_PAYLOAD_MAX_BYTES = 16 * 1024
AUDIT_STRING_CHARS = 1000
AUDIT_ITEMS = 100
AUDIT_EXCERPT_CHARS = 2000


def audit_payload_bounded(payload: dict) -> dict:
    """`payload` if its canonical JSON fits AUDIT_PAYLOAD_MAX_BYTES; otherwise the same with
    long strings and lists cut (`validation.errors.bounded_json`), or, if that still does not
    fit, an excerpt of it; either way with a `_truncated` note of the original's size and
    SHA-256. Deterministic: the same payload always bounds to the same bytes, so what is stored
    is what is hashed and the chain verifies."""
    raw = canonical_payload(payload)
    if len(raw) <= AUDIT_PAYLOAD_MAX_BYTES:
        return payload
    note = {"original_bytes": len(raw), "original_sha256": hashlib.sha256(raw).hexdigest()}
    cut = bounded_json(payload, chars=AUDIT_STRING_CHARS, items=AUDIT_ITEMS)
    bounded = {**cut, "_truncated": note}
    if len(canonical_payload(bounded)) <= AUDIT_PAYLOAD_MAX_BYTES:
        return bounded
    excerpt = raw[:AUDIT_EXCERPT_CHARS].decode("utf-8", errors="replace")
    return {"_truncated": {**note, "excerpt": excerpt}}


def _actor_label(actor) -> str:
    if actor is None:
        return "system"
    full = actor.get_full_name() or actor.get_username()
    return f"{full} <{actor.get_username()}>"


def audit_record(*, actor, action: str, target=None, payload: dict | None = None) -> AuditEvent:
    """Append one event to the chain. Must run inside the caller's transaction so the event and
    the change commit or roll back together. Writers are serialised (advisory lock on
    PostgreSQL, the database write lock on SQLite); `prev_hash` is unique as a last line.
    The payload is bounded first (`audit_payload_bounded`)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must be called inside a transaction.")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_PG_CHAIN_LOCK])
    last = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
    prev_hash = last or GENESIS_HASH
    payload = audit_payload_bounded(payload or {})
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


@transaction.atomic
def audit_refusal(*, actor, method: str, path: str, status: int, answer: Any) -> AuditEvent:
    """Record a refused API request (REQUEST_REFUSED) in its own transaction, so it outlives the
    refusal. For the team, not an oracle for the refused: the event names no target (a probed
    id that exists must not gain an event that a missing one would not, nor appear in another
    party's report), and `answer` is the body the requester got, identical for hidden and
    missing objects."""
    return audit_record(
        actor=actor,
        action=AuditAction.REQUEST_REFUSED,
        payload={"method": method, "path": path, "status": status, "answer": answer},
    )
