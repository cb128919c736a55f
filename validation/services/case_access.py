"""Reads of case-level data on a person's behalf (the console's case table and case viewer):
each is a CASE_DATA_VIEWED event, written before anything is shown.

One event per case table page view (the run, the filter, how many cases it matched and how
many rows the page showed) and one per case viewer page view (the run, the case, what was
shown). The viewer's images (the rendered DICOM, the Grad-CAM overlay, the ROI outline) are
part of that view: the page hands each image request a token signed by the server that names
the person, the run, the case and the event; an image request without a valid token (someone
else's, another case's, older than IMAGE_TOKEN_MAX_AGE) is refused, so no image is served that
an event does not record."""

from django.core import signing
from django.db import transaction

from audit.models import AuditAction, AuditEvent
from audit.services import audit_record
from validation.models import Case, ValidationRun

IMAGE_TOKEN_SALT = "blindspot.case-image"  # noqa: S105 - a signing namespace, not a secret
#: How long a viewer page's images may be loaded (a window preset change reuses the token).
IMAGE_TOKEN_MAX_AGE = 30 * 60


@transaction.atomic
def case_list_viewed(
    *, actor, run: ValidationRun, filters: dict, matched: int, shown: int
) -> AuditEvent:
    """Record a view of a run's case table: the filter applied and the case count."""
    return audit_record(
        actor=actor,
        action=AuditAction.CASE_DATA_VIEWED,
        target=run,
        payload={
            "what": "case table: case ids, scores, labels, outcomes, site and scanner",
            "filters": filters,
            "cases_matched": matched,
            "cases": shown,
        },
    )


@transaction.atomic
def case_viewed(
    *, actor, run: ValidationRun, case: Case, images: bool, filters: dict
) -> AuditEvent:
    """Record a view of one case in the viewer: score, label, outcome, attributes and (when
    `images`) its rendered image, Grad-CAM map and ROI."""
    shown = "score, label, outcome and attributes"
    if images:
        shown += "; the image rendered to PNG, its Grad-CAM map and reference ROI"
    return audit_record(
        actor=actor,
        action=AuditAction.CASE_DATA_VIEWED,
        target=run,
        payload={
            "what": f"case viewer: {shown}",
            "case_id": case.case_id,
            "case": case.pk,
            "filters": filters,
            "cases": 1,
        },
    )


def image_token(*, actor, run: ValidationRun, case: Case, event: AuditEvent) -> str:
    """The token a viewer page gives its image requests: signed, bound to this person, run,
    case and the event that recorded the view."""
    return signing.dumps(
        {"u": actor.pk, "r": run.pk, "c": case.pk, "e": event.pk}, salt=IMAGE_TOKEN_SALT
    )


def image_token_event(token: str, *, actor, run: ValidationRun, case: Case) -> int | None:
    """The audit event a valid token names, or None (missing, forged, expired, or issued to
    another person, run or case)."""
    if not token:
        return None
    try:
        data = signing.loads(token, salt=IMAGE_TOKEN_SALT, max_age=IMAGE_TOKEN_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or (data.get("u"), data.get("r"), data.get("c")) != (
        actor.pk,
        run.pk,
        case.pk,
    ):
        return None
    event = data.get("e")
    return event if isinstance(event, int) else None
