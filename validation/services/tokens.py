"""Named API tokens a person creates for scripts and clients: the secret is shown once and
only its SHA-256 is stored; revoking one stops it at once. Both are in the record (never the
secret)."""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from validation.errors import ApplicationError
from validation.models import ApiToken

SECRET_PREFIX = "bs_"  # noqa: S105 (a marker, not a secret)
PREFIX_CHARS = 10  # "bs_" and 7 characters of the secret: enough to tell tokens apart
NAME_MAX: int = ApiToken._meta.get_field("name").max_length or 100


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
