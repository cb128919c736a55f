from dataclasses import asdict, dataclass
from datetime import datetime

from django.core.cache import cache
from django.db.models import Q, QuerySet
from django.utils import timezone

from audit.chain import ChainReport, verify_events
from audit.models import AuditEvent


def audit_chain_verify() -> ChainReport:
    return verify_events(AuditEvent.objects.order_by("id").iterator(chunk_size=2000))


def audit_events_for(target) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(target_type=target._meta.label, target_id=str(target.pk)))


# --- for the console's audit trail ---------------------------------------------------------------

CHAIN_CACHE_SECONDS = 60


@dataclass(frozen=True)
class ChainStatus:
    """A verification of the whole chain and when it was made (it may be up to a minute old:
    `cached` says so)."""

    report: ChainReport
    checked_at: datetime
    cached: bool


def audit_chain_status(*, fresh: bool = False) -> ChainStatus:
    """`audit_chain_verify`, kept for a minute (a walk of a long chain takes seconds). The
    cache key names the newest event, so a new event starts a new walk; `fresh` walks now
    (an edit to an old row is found at once when asked)."""
    newest = AuditEvent.objects.order_by("-id").values_list("id", "hash").first()
    key = f"audit-chain-status:{newest[0]}:{newest[1]}" if newest else "audit-chain-status:empty"
    if not fresh:
        stored = cache.get(key)
        if stored is not None:
            return ChainStatus(ChainReport(**stored["report"]), stored["checked_at"], cached=True)
    report = audit_chain_verify()
    checked_at = timezone.now()
    cache.set(
        key, {"report": asdict(report), "checked_at": checked_at}, timeout=CHAIN_CACHE_SECONDS
    )
    return ChainStatus(report, checked_at, cached=False)


def audit_events_filtered(
    *,
    actor: str = "",
    action: str = "",
    target_type: str = "",
    target_id: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """The record, newest first, narrowed by each filter given: `actor` matches the username
    or the recorded label (part of it, any case), the others exactly; `until` is exclusive."""
    events = AuditEvent.objects.order_by("-id")
    if actor:
        events = events.filter(Q(actor_label__icontains=actor) | Q(actor__username__iexact=actor))
    if action:
        events = events.filter(action=action)
    if target_type:
        events = events.filter(target_type=target_type)
    if target_id:
        events = events.filter(target_id=target_id)
    if since is not None:
        events = events.filter(at__gte=since)
    if until is not None:
        events = events.filter(at__lt=until)
    return events


def audit_target_types() -> list[str]:
    """Every kind of target the record names (the filter's choices)."""
    return list(
        AuditEvent.objects.exclude(target_type="")
        .order_by("target_type")
        .values_list("target_type", flat=True)
        .distinct()
    )
