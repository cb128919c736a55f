"""Hashing and verification of the audit chain (no writes here; see audit.services)."""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime


def canonical_payload(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def payload_digest(payload: dict) -> str:
    return hashlib.sha256(canonical_payload(payload)).hexdigest()


def event_digest(
    *,
    prev_hash: str,
    at: datetime,
    actor_label: str,
    action: str,
    target_type: str,
    target_id: str,
    payload_sha256: str,
) -> str:
    fields = [
        prev_hash,
        at.isoformat(),
        actor_label,
        action,
        target_type,
        target_id,
        payload_sha256,
    ]
    return hashlib.sha256("\x1f".join(fields).encode()).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    events_checked: int
    intact: bool
    broken_event_id: int | None = None
    reason: str = ""


def verify_events(events) -> ChainReport:
    """Walk events in id order; name the first whose stored hashes disagree with its content."""
    from audit.models import GENESIS_HASH

    expected_prev = GENESIS_HASH
    checked = 0
    for event in events:
        checked += 1
        if event.prev_hash != expected_prev:
            return ChainReport(
                checked, False, event.pk, "prev_hash does not match the previous event"
            )
        if payload_digest(event.payload) != event.payload_sha256:
            return ChainReport(checked, False, event.pk, "payload does not match payload_sha256")
        recomputed = event_digest(
            prev_hash=event.prev_hash,
            at=event.at,
            actor_label=event.actor_label,
            action=event.action,
            target_type=event.target_type,
            target_id=event.target_id,
            payload_sha256=event.payload_sha256,
        )
        if recomputed != event.hash:
            return ChainReport(checked, False, event.pk, "event fields do not match its hash")
        expected_prev = event.hash
    return ChainReport(checked, True)
