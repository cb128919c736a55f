"""Idle sessions end; a second factor, where required, is confirmed before any page."""

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from audit.models import AuditAction
from validation.api.errors import ProblemResponse, problem_body
from validation.services.accounts import account_event, second_factor_required

LAST_ACTIVITY = "blindspot_last_activity"
# Live-update requests carry this header (hx-headers on the polling element): a page left open
# and polling is not a person at work, so it does not keep the session alive.
POLL_HEADER = "HTTP_X_BLINDSPOT_POLL"
OPEN_PREFIXES = (
    "/static/",
    "/accounts/login/",
    "/accounts/logout/",
    "/accounts/second-factor/",
    "/api/v1/signing-key/",
    "/api/v1/schema/",
    "/api/v1/docs/",
)


def _to_login(request: HttpRequest, next_url: str) -> HttpResponse:
    if request.headers.get("HX-Request"):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = f"{settings.LOGIN_URL}?next={next_url}"
        return response
    return redirect_to_login(next_url)


class IdleSessionMiddleware:
    """Signs a person out after SESSION_IDLE_SECONDS without a request of theirs (polls do not
    count), records it, and sends them to the sign-in page, back to where they were after."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated and "HTTP_AUTHORIZATION" not in request.META:
            now = time.time()
            last = request.session.get(LAST_ACTIVITY)
            if last is not None and now - last > settings.SESSION_IDLE_SECONDS:
                return self._expire(request)
            # Written at most every tenth of the idle time (30 s at most): a session write per
            # request would serialise a person's parallel requests on the session row.
            step = min(30.0, settings.SESSION_IDLE_SECONDS / 10)
            if not request.META.get(POLL_HEADER) and (last is None or now - last >= step):
                request.session[LAST_ACTIVITY] = now
        return self.get_response(request)

    def _expire(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        next_url = request.headers.get("HX-Current-URL") or request.get_full_path()
        account_event(user=user, action=AuditAction.ACCOUNT_SESSION_EXPIRED, request=request)
        request._blindspot_session_expired = True  # type: ignore[attr-defined]
        logout(request)
        minutes = settings.SESSION_IDLE_SECONDS // 60
        messages.info(
            request,
            f"You were signed out after {minutes} minutes without activity. Sign in to go on.",
        )
        if request.path.startswith("/api/"):
            return ProblemResponse(problem_body(401, "Your session expired; sign in again."))
        return _to_login(request, next_url)


class SecondFactorMiddleware:
    """Where the user's organisation requires a second factor, or the user set one up, nothing
    but the sign-in pages opens until a TOTP code is confirmed for this session."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            user.is_authenticated
            and not request.path.startswith(OPEN_PREFIXES)
            and not user.is_verified()  # type: ignore[attr-defined]  # django-otp's middleware
            and second_factor_required(user)
        ):
            if request.path.startswith("/api/"):
                return ProblemResponse(problem_body(403, "Confirm your second factor first."))
            target = reverse("web:second-factor")
            if request.headers.get("HX-Request"):
                response = HttpResponse(status=204)
                response["HX-Redirect"] = target
                return response
            return redirect(f"{target}?next={request.get_full_path()}")
        return self.get_response(request)
