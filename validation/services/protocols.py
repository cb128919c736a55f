from django.db import transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from validation.errors import ApplicationError, PermissionDenied
from validation.models import Protocol
from validation.protocol_document import protocol_errors, protocol_hash, with_defaults
from validation.selectors import is_validation_team


@transaction.atomic
def protocol_create(*, actor, name: str, document: dict) -> Protocol:
    """Register a new version of a protocol (unlocked). Defaults are filled in so the stored
    document is the full plan. Emits PROTOCOL_CREATED."""
    if not is_validation_team(actor):
        raise PermissionDenied("Only the validation team writes protocols.")
    errors = protocol_errors(document)
    if errors:
        raise ApplicationError("The protocol document is invalid.", errors=errors)
    latest = Protocol.objects.filter(name=name).order_by("-version").first()
    protocol = Protocol.objects.create(
        name=name,
        version=(latest.version + 1) if latest else 1,
        document=with_defaults(document),
        created_by=actor,
    )
    audit_record(
        actor=actor,
        action=AuditAction.PROTOCOL_CREATED,
        target=protocol,
        payload={"name": name, "version": protocol.version},
    )
    return protocol


@transaction.atomic
def protocol_lock(*, actor, protocol: Protocol) -> Protocol:
    """Freeze the protocol: hash its canonical document and record the lock time. Idempotent
    for an already locked protocol. Emits PROTOCOL_LOCKED."""
    protocol = Protocol.objects.select_for_update().get(pk=protocol.pk)
    if protocol.is_locked:
        return protocol
    if not is_validation_team(actor):
        raise PermissionDenied("Only the validation team locks protocols.")
    protocol.sha256 = protocol_hash(protocol.document)
    protocol.locked_at = timezone.now()
    protocol.locked_by = actor
    protocol.save()
    audit_record(
        actor=actor,
        action=AuditAction.PROTOCOL_LOCKED,
        target=protocol,
        payload={"sha256": protocol.sha256},
    )
    return protocol
