"""`POST /api/v1/auth/token/`: a named API token for a username and password (and a second
factor's code where the account needs one). No authentication; throttled per client address
(scope `auth_token`, `API_TOKEN_RATE`)."""

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from validation.services.tokens import NAME_MAX, api_token_obtain

DEFAULT_TOKEN_NAME = "blindspot CLI"  # noqa: S105 (a label, not a secret)


class TokenRateThrottle(ScopedRateThrottle):
    """ScopedRateThrottle whose rate is read from settings at each request (DRF binds its
    rates table once, at import)."""

    def get_rate(self) -> str:
        return settings.API_TOKEN_RATE


class ApiTokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)
    name = serializers.CharField(max_length=NAME_MAX, required=False, default=DEFAULT_TOKEN_NAME)
    otp = serializers.CharField(max_length=16, required=False, default="", allow_blank=True)


class ApiTokenIssuedSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="The secret: shown this once, stored only hashed.")
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The secret's first characters, to tell tokens apart.")
    expires_at = serializers.DateTimeField(allow_null=True)


class TokenObtainView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [TokenRateThrottle]
    throttle_scope = "auth_token"

    @extend_schema(
        operation_id="auth_token_create",
        summary="Get an API token",
        description=(
            "Exchange a username and password (and `otp`, the current code from the account's "
            "authenticator app, where its organisation requires a second factor) for a named "
            "API token. Send it as `Authorization: Bearer <token>`. Tokens expire after the "
            "server's API_TOKEN_TTL_DAYS and can be revoked on the web app's API tokens page. "
            "Wrong credentials answer 400 without saying which part was wrong; a locked "
            "account and too many requests answer 429."
        ),
        request=ApiTokenRequestSerializer,
        responses={201: ApiTokenIssuedSerializer},
        auth=[],
        tags=["auth"],
    )
    def post(self, request):
        data = ApiTokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token, secret = api_token_obtain(request=request._request, **data.validated_data)
        body = {
            "token": secret,
            "name": token.name,
            "prefix": token.prefix,
            "expires_at": token.expires_at,
        }
        return Response(ApiTokenIssuedSerializer(body).data, status=status.HTTP_201_CREATED)
