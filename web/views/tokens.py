"""API tokens: a person's own named tokens; create one (its secret shown once, on the answer
to the creation, never again), revoke one after a confirmation."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from validation.errors import ApplicationError
from validation.models import ApiToken
from validation.selectors import api_token_get_own, api_tokens_of
from validation.services.tokens import NAME_MAX, api_token_create, api_token_revoke
from web.views.flow import page_of


def _status(token: ApiToken, now) -> tuple[str, str]:
    if token.revoked_at is not None:
        return ("revoked", "neutral")
    if token.expires_at is not None and token.expires_at <= now:
        return ("expired", "bad")
    return ("active", "ok")


def _context(request: HttpRequest, **extra) -> dict:
    page = page_of(request, api_tokens_of(request.user))
    now = timezone.now()
    return {
        "title": "API tokens",
        "section": "tokens",
        "page_obj": page,
        "rows": [(token, _status(token, now)) for token in page.object_list],
        "name_max": NAME_MAX,
        **extra,
    }


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    """GET: the list and the form. POST: create a token; the answer (never cached) is the only
    place its secret is ever shown."""
    if request.method == "GET":
        return render(request, "web/tokens/list.html", _context(request))
    name = request.POST.get("name", "")
    try:
        token, secret = api_token_create(actor=request.user, name=name)
    except ApplicationError as exc:
        context = _context(request, problems=[exc.message, *exc.errors], name=name)
        return render(request, "web/tokens/list.html", context, status=400)
    return render(request, "web/tokens/list.html", _context(request, created=token, secret=secret))


@login_required
@require_http_methods(["GET", "POST"])
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: confirm. POST: revoke (own tokens only: another's answers 404 like a missing one)."""
    token = api_token_get_own(user=request.user, pk=pk)
    if request.method == "POST":
        api_token_revoke(actor=request.user, token=token)
        messages.success(request, f"The token “{token.name}” was revoked; it no longer works.")
        return HttpResponseRedirect(reverse("web:tokens"), status=303)
    return render(
        request,
        "web/tokens/revoke.html",
        {"title": "Revoke an API token", "section": "tokens", "token": token},
    )
