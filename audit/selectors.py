from audit.chain import ChainReport, verify_events
from audit.models import AuditEvent


def audit_chain_verify() -> ChainReport:
    return verify_events(AuditEvent.objects.order_by("id").iterator(chunk_size=2000))


def audit_events_for(target) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(target_type=target._meta.label, target_id=str(target.pk)))
