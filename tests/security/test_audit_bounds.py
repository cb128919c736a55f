"""Issue 14, item 8: audit amplification. A 1.8 KB upload whose manifest had a 1 MB name got a
400 that echoed the name and an append-only audit row of 1,040,088 bytes. Every echoed value
and every audit payload is bounded; a bounded payload still verifies in the chain."""

import io
import json
import tarfile

import pytest
from django.core.management import call_command
from django.db import transaction
from rest_framework.test import APIClient

from audit.chain import canonical_payload
from audit.models import AuditAction, AuditEvent
from audit.selectors import audit_chain_verify
from audit.services import AUDIT_PAYLOAD_MAX_BYTES, audit_record
from validation.errors import ApplicationError, bounded

pytestmark = pytest.mark.django_db

HUGE = 1_000_000  # a 1 MB name (the manifest member itself may hold 1 MiB)


def _repacked(package_file, tmp_path, manifest_changes: dict):
    """The real package with its manifest changed: a real tar.gz with a valid model member."""
    members: dict[str, bytes] = {}
    with tarfile.open(package_file, "r:gz") as tar:
        for member in tar:
            extracted = tar.extractfile(member)
            assert extracted is not None
            members[member.name] = extracted.read()
    manifest = json.loads(members["manifest.json"])
    manifest.update(manifest_changes)
    members["manifest.json"] = json.dumps(manifest).encode()
    out = tmp_path / "hostile.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"name": "n" * HUGE}, ("manifest.name", f"{HUGE} characters, more than the 200 allowed")),
        (
            {"k" * HUGE: 1},
            ("manifest", f"Additional properties are not allowed ('{'k' * 100}"),
        ),
    ],
    ids=["1 MB name", "1 MB unexpected key"],
)
def test_huge_manifest_value_gets_a_small_answer_and_a_small_audit_row(
    world, package_file, tmp_path, changes, problem
):
    hostile = _repacked(package_file, tmp_path, changes)
    client = APIClient()
    client.force_authenticate(world.vendor_user)
    with open(hostile, "rb") as fh:
        response = client.post("/api/v1/packages/", {"file": fh}, format="multipart")
    assert response.status_code == 400
    assert len(response.content) < 8 * 1024, len(response.content)
    body = response.json()
    assert body["detail"].startswith("Package rejected: the manifest is invalid")
    assert len(body["errors"]) == 1, body["errors"]
    path, detail = problem
    assert body["errors"][0]["path"] == path, body["errors"]
    assert body["errors"][0]["detail"].startswith(detail), body["errors"]

    rejected = AuditEvent.objects.filter(action=AuditAction.PACKAGE_REJECTED_AT_INTAKE).get()
    assert len(canonical_payload(rejected.payload)) < 8 * 1024
    for event in AuditEvent.objects.all():
        assert len(canonical_payload(event.payload)) <= AUDIT_PAYLOAD_MAX_BYTES, event
    assert audit_chain_verify().intact
    call_command("audit_verify")


@pytest.mark.parametrize(
    "payload",
    [
        {"reason": "x" * HUGE},
        {"errors": [f"problem {i}: " + "y" * 500 for i in range(5000)]},
        {"deep": {f"key-{i}" * 100: "z" * 300 for i in range(2000)}},
        {"wide": "é" * (AUDIT_PAYLOAD_MAX_BYTES // 2) + "\x00" * 5000},
    ],
    ids=["long string", "many long items", "many long keys", "multi-byte"],
)
def test_audit_payload_has_a_hard_cap_noted_and_verifiable(world, payload):
    original = canonical_payload(payload)
    with transaction.atomic():
        event = audit_record(
            actor=world.vendor_user, action=AuditAction.PACKAGE_REJECTED_AT_INTAKE, payload=payload
        )
    event.refresh_from_db()
    stored = canonical_payload(event.payload)
    assert len(stored) <= AUDIT_PAYLOAD_MAX_BYTES < len(original)
    note = event.payload["_truncated"]
    assert note["original_bytes"] == len(original)
    assert len(note["original_sha256"]) == 64
    # Deterministic: the same payload bounds to the same bytes.
    with transaction.atomic():
        again = audit_record(
            actor=world.vendor_user, action=AuditAction.PACKAGE_REJECTED_AT_INTAKE, payload=payload
        )
    assert again.payload_sha256 == event.payload_sha256
    assert audit_chain_verify().intact


def test_small_payloads_are_stored_as_given(world):
    payload = {"reason": "r" * 900, "errors": ["e" * 400] * 10}
    with transaction.atomic():
        event = audit_record(
            actor=world.vendor_user, action=AuditAction.PACKAGE_REJECTED_AT_INTAKE, payload=payload
        )
    event.refresh_from_db()
    assert event.payload == payload


def test_refusals_quote_input_bounded_with_its_length():
    assert bounded("a" * 50, 10) == "aaaaaaaaaa… (50 characters)"
    assert bounded("short", 10) == "short"
    refusal = ApplicationError("bad name " + "q" * HUGE, errors=["w" * HUGE] * 1000)
    assert len(refusal.message) < 2100 and refusal.message.endswith(f"({HUGE + 9} characters)")
    assert len(refusal.errors) == 101 and refusal.errors[-1] == "… (1000 items)"
    assert all(len(e) < 600 for e in refusal.errors)


def test_refusals_write_out_a_nul_character_so_the_record_can_store_it(world):
    """PostgreSQL's jsonb cannot store U+0000: a refusal quoting one failed to record (a 500)."""
    assert bounded("a\x00b") == "a\\u0000b"
    refusal = ApplicationError("bad \x00", errors=[{"path": "document.k\x00", "detail": "\x00"}])
    assert refusal.message == "bad \\u0000"
    assert refusal.errors == [{"path": "document.k\\u0000", "detail": "\\u0000"}]
    with transaction.atomic():
        event = audit_record(
            actor=world.vendor_user,
            action=AuditAction.REQUEST_REFUSED,
            payload={"answer": {"detail": refusal.message, "errors": refusal.errors}},
        )
    event.refresh_from_db()
    assert event.payload["answer"]["errors"] == refusal.errors
