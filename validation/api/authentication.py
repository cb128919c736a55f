"""API requests authenticated by a named token (validation.services.tokens): the header
`Authorization: Token <secret>` or `Authorization: Bearer <secret>`."""

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from validation.models import ApiToken
from validation.services.tokens import SECRET_PREFIX, api_token_digest, api_token_touch

KEYWORDS = (b"token", b"bearer")


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """The API's only token scheme: every token is a named one, stored hashed."""

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower() not in KEYWORDS:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "Invalid token header: give the scheme and the token, separated by one space."
            )
        try:
            secret = parts[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid token header.") from exc
        if not secret.startswith(SECRET_PREFIX):
            raise exceptions.AuthenticationFailed("Unknown API token.")
        token = (
            ApiToken.objects.select_related("user")
            .filter(key_sha256=api_token_digest(secret))
            .first()
        )
        if token is None:
            raise exceptions.AuthenticationFailed("Unknown API token.")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API token was revoked.")
        if token.expires_at is not None and token.expires_at <= timezone.now():
            raise exceptions.AuthenticationFailed(
                "This API token has expired; create a new one on the API tokens page."
            )
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("This account is inactive.")
        api_token_touch(token)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return "Token"


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """How the API schema describes these tokens (registered by being defined)."""

    target_class = ApiTokenAuthentication
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "A named API token (POST /api/v1/auth/token/, or the web app's API "
            "tokens page): `Bearer bs_...` or `Token bs_...`.",
        }
