"""Named API tokens a person creates for scripts and clients: the secret is shown once and
only its SHA-256 is stored; revoking one stops it at once. Both are in the record (never the
secret)."""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import authenticate
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditAction
from audit.services import audit_record
from validation.errors import ApplicationError
from validation.models import ApiToken
from validation.services.accounts import account_event, second_factor_required

SECRET_PREFIX = "bs_"  # noqa: S105 (a marker, not a secret)
PREFIX_CHARS = 10  # "bs_" and 7 characters of the secret: enough to tell tokens apart
NAME_MAX: int = ApiToken._meta.get_field("name").max_length or 100


WRONG_CREDENTIALS = "Those credentials are not right."


def api_token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def api_token_create(*, actor, name: str) -> tuple[ApiToken, str]:
    """A new token of `actor` named `name` (required, at most 100 characters). Returns the token
    and its secret, which is never stored and cannot be shown again. It expires after
    API_TOKEN_TTL_DAYS (0: never). Emits API_TOKEN_CREATED with the name and prefix."""
    name = (name or "").strip()
    if not name:
        raise ApplicationError("Give the token a name, so that you can tell it from others.")
    if len(name) > NAME_MAX:
        raise ApplicationError(f"A token's name has at most {NAME_MAX} characters.")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    days = settings.API_TOKEN_TTL_DAYS
    token = ApiToken.objects.create(
        user=actor,
        name=name,
        prefix=secret[:PREFIX_CHARS],
        key_sha256=api_token_digest(secret),
        expires_at=timezone.now() + timedelta(days=days) if days else None,
    )
    audit_record(
        actor=actor,
        action=AuditAction.API_TOKEN_CREATED,
        target=token,
        payload={
            "name": name,
            "prefix": token.prefix,
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        },
    )
    return token, secret


def api_token_obtain(
    *, request, username: str, password: str, name: str, otp: str = ""
) -> tuple[ApiToken, str]:
    """A new named token for whoever gives a right username and password (and, where the
    account needs a second factor, a current code from its authenticator), as the web sign-in
    would let them in: through `authenticate` with the request, so django-axes counts a failure
    and refuses a locked account (429), and the sign-in signals record a failure
    (ACCOUNT_SIGN_IN_FAILED; a wrong second-factor code too). A wrong username or password
    answers the same 400 either way. Then `api_token_create` (API_TOKEN_CREATED)."""
    user = authenticate(request, username=username, password=password)
    if getattr(request, "axes_locked_out", False):
        # Answer here, as a problem document: axes' middleware would replace the API's answer
        # with the web sign-in page if the flag stayed on the request.
        request.axes_locked_out = False
        minutes = max(1, round(settings.AXES_COOLOFF_TIME * 60))
        raise ApplicationError(
            f"Too many failed sign-ins: this account is locked for {minutes} minutes.",
            status_code=429,
            audited=True,
        )
    if user is None:
        raise ApplicationError(WRONG_CREDENTIALS, audited=True)
    if second_factor_required(user):
        _check_second_factor(user=user, otp=otp, request=request)
    return api_token_create(actor=user, name=name)


def _check_second_factor(*, user, otp: str, request) -> None:
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        raise ApplicationError(
            "Your organisation requires a second factor: set up an authenticator app in the "
            "web app (sign in there once), then give its current code as otp.",
            audited=True,
        )
    code = (otp or "").strip().replace(" ", "")
    if not code:
        raise ApplicationError(
            "This account needs a second factor: give the current code from your "
            "authenticator app as otp.",
            audited=True,
        )
    if not device.verify_token(code):
        account_event(
            user=user,
            action=AuditAction.ACCOUNT_SIGN_IN_FAILED,
            request=request,
            second_factor=True,
        )
        raise ApplicationError(
            "That second-factor code is not right. Codes change every 30 seconds.", audited=True
        )


@transaction.atomic
def api_token_revoke(*, actor, token: ApiToken) -> ApiToken:
    """Revoke one of `actor`'s own tokens (another person's is refused); from now on it
    authenticates nothing. Revoking a revoked token changes nothing. Emits API_TOKEN_REVOKED."""
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.user_id != actor.pk:
        raise ApplicationError("You can revoke only your own tokens.", status_code=404)
    if token.revoked_at is not None:
        return token
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit_record(
        actor=actor,
        action=AuditAction.API_TOKEN_REVOKED,
        target=token,
        payload={"name": token.name, "prefix": token.prefix},
    )
    return token


def api_token_touch(token: ApiToken, *, every_seconds: int = 60) -> None:
    """Note that `token` was used, at most once a minute (not a write per request)."""
    now = timezone.now()
    last = token.last_used_at
    if last is None or (now - last).total_seconds() >= every_seconds:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
