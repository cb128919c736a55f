"""Sign-in, sign-out and second factors, written into the record.

The web pages call these from Django's auth signals and their own views; the record shows who
signed in, who failed (for existing accounts only: a stranger typing names cannot fill the
append-only record), who was locked out and whose session expired."""

from django.contrib.auth import get_user_model
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditAction
from audit.services import audit_record
from validation.errors import ApplicationError
from validation.models import Membership, Organisation


def _client(request) -> dict:
    if request is None:
        return {}
    return {
        "ip": request.META.get("REMOTE_ADDR", ""),
        "user_agent": request.META.get("HTTP_USER_AGENT", "")[:200],
    }


@transaction.atomic
def account_event(*, user, action: str, request=None, **payload) -> None:
    """One sign-in related event about `user` (the actor is the user themself)."""
    audit_record(actor=user, action=action, target=user, payload={**payload, **_client(request)})


def account_sign_in_failed(*, username: str, request=None) -> None:
    """A wrong password (or a refused attempt while locked) for an existing account."""
    user = get_user_model().objects.filter(username=username).first()
    if user is not None:
        account_event(user=user, action=AuditAction.ACCOUNT_SIGN_IN_FAILED, request=request)


def account_locked_out(*, username: str, request=None) -> None:
    user = get_user_model().objects.filter(username=username).first()
    if user is not None:
        account_event(user=user, action=AuditAction.ACCOUNT_LOCKED_OUT, request=request)


def second_factor_required(user) -> bool:
    """True when one of the user's organisations requires a second factor, or the user has set
    one up for themself."""
    if not user.is_authenticated:
        return False
    return (
        Membership.objects.filter(user=user, organisation__require_second_factor=True).exists()
        or TOTPDevice.objects.filter(user=user, confirmed=True).exists()
    )


def totp_device_pending(*, user) -> TOTPDevice:
    """The user's unconfirmed TOTP device (created once, so the QR code shown does not change
    on reload); confirmed by `totp_device_confirm`."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    return device or TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)


@transaction.atomic
def totp_device_confirm(*, user, device: TOTPDevice, token: str, request=None) -> TOTPDevice:
    """Confirm a pending device with a code from the app. Emits ACCOUNT_SECOND_FACTOR_ADDED."""
    if device.user_id != user.pk or device.confirmed:
        raise ApplicationError("This authenticator is not waiting for confirmation.")
    if not device.verify_token(token.strip().replace(" ", "")):
        raise ApplicationError("That code is not right. Codes change every 30 seconds.")
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    account_event(
        user=user, action=AuditAction.ACCOUNT_SECOND_FACTOR_ADDED, request=request, kind="totp"
    )
    return device


@transaction.atomic
def organisation_require_second_factor(
    *, actor, organisation: Organisation, required: bool
) -> Organisation:
    """Require (or stop requiring) a second factor of every member. Emits
    ORGANISATION_SECOND_FACTOR_REQUIRED."""
    organisation.require_second_factor = required
    organisation.save(update_fields=["require_second_factor"])
    audit_record(
        actor=actor,
        action=AuditAction.ORGANISATION_SECOND_FACTOR_REQUIRED,
        target=organisation,
        payload={"required": required},
    )
    return organisation
