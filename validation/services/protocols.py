from django.db import transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from validation.errors import ApplicationError, PermissionDenied
from validation.models import Protocol
from validation.protocol_document import protocol_hash, protocol_problems, with_defaults
from validation.selectors import is_validation_team


@transaction.atomic
def protocol_create(*, actor, name: str, document: dict) -> Protocol:
    """Register a new version of a protocol (unlocked): version 1 of a new name, else the next
    version of that name. Defaults are filled in so the stored document is the full plan. Every
    problem of the document is refused at once, each at its path (`document.subgroups[1].bins`).
    Emits PROTOCOL_CREATED."""
    if not is_validation_team(actor):
        raise PermissionDenied("Only the validation team writes protocols.")
    problems = protocol_problems(document)
    if problems:
        raise ApplicationError(
            f"The protocol document is invalid ({len(problems)} problem(s)).",
            errors=[{"path": p.dotted(), "detail": p.message} for p in problems],
        )
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


def protocol_version_create(*, actor, base: Protocol, document: dict) -> Protocol:
    """The next version of `base`'s protocol (a draft, whether `base` is locked or not, and
    whichever version of the name it is) with a new document: `protocol_create` under its
    name. Emits PROTOCOL_CREATED."""
    return protocol_create(actor=actor, name=base.name, document=document)


@transaction.atomic
def protocol_lock(*, actor, protocol: Protocol) -> Protocol:
    """Freeze the protocol: hash its canonical document and record the lock time. Idempotent
    for an already locked protocol (for the validation team; anyone else is refused either
    way). Emits PROTOCOL_LOCKED."""
    if not is_validation_team(actor):
        raise PermissionDenied("Only the validation team locks protocols.")
    protocol = Protocol.objects.select_for_update().get(pk=protocol.pk)
    if protocol.is_locked:
        return protocol
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
