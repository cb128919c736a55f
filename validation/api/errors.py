"""Every 4xx and 5xx of /api/v1/ is an RFC 9457 problem details document
(`application/problem+json`): `type`, `title`, `status`, `detail` and `errors`, a list of
`{"path", "detail"}` field problems ("" for the request as a whole).

Domain errors become clear 4xx answers; hidden objects are 404 like missing ones. Every refusal
of a signed-in user is audited (REQUEST_REFUSED) unless its service already recorded it, and no
answer quotes more of the input than `validation.errors` lets through. An unexpected exception is
logged and answers a bare 500 problem: no traceback leaves the server."""

import logging
from collections.abc import Iterator, Mapping
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.serializers.json import DjangoJSONEncoder
from django.core.signals import got_request_exception
from django.http import Http404, HttpRequest, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.settings import api_settings
from rest_framework.views import set_rollback

from audit.services import audit_refusal
from validation.errors import (
    MESSAGE_CHARS,
    PROBLEM_CHARS,
    PROBLEMS_LISTED,
    ApplicationError,
    bounded,
    problem_location,
)

PROBLEM_CONTENT_TYPE = "application/problem+json"
API_PREFIX = "/api/v1/"
logger = logging.getLogger("django.request")


class ProblemResponse(JsonResponse):
    """A problem details answer; `problem` keeps the body as a dict (tests and the audit read
    it)."""

    def __init__(self, problem: dict[str, Any], *, headers: Mapping[str, str] | None = None):
        self.problem = problem
        super().__init__(
            problem,
            status=problem["status"],
            content_type=PROBLEM_CONTENT_TYPE,
            headers=dict(headers or {}),
            encoder=DjangoJSONEncoder,
        )


def problem_body(status: int, detail: str, errors: list[dict[str, str]] | None = None) -> dict:
    """The problem document for `status`: `type` about:blank, so `title` is the status phrase."""
    return {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": bounded(detail, MESSAGE_CHARS),
        "errors": _bounded_problems(errors or []),
    }


def exception_handler(exc, context) -> ProblemResponse:
    request = context.get("request")
    headers: dict[str, str] = {}
    if isinstance(exc, ApplicationError):
        status, detail = exc.status_code, exc.message
        errors = _listed(exc.errors, root=exc.errors_at)
    elif isinstance(exc, Http404 | DjangoPermissionDenied | exceptions.APIException):
        exc = _as_api_exception(exc)
        status, detail, errors = _drf_problem(exc)
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
    elif isinstance(exc, SuspiciousOperation):
        too_big = isinstance(exc, RequestDataTooBig)
        status = 413 if too_big else 400
        detail = "The request body is too large." if too_big else "The request was refused."
        errors = []
    else:
        return _server_error(exc, request)
    set_rollback()
    response = ProblemResponse(problem_body(status, detail, errors), headers=headers)
    _audit_refusal(exc, request, response)
    return response


@csrf_exempt  # a POST to a path no route serves is a 404, not a CSRF refusal
def api_not_found(request: HttpRequest, exception: Exception | None = None) -> ProblemResponse:
    """An /api/v1/ path no route serves (Django's own 404, outside DRF)."""
    detail = "No API endpoint at this path."
    if not request.path.endswith("/"):
        try:
            resolve(request.path + "/")
            detail += " Paths end with a slash: " + bounded(request.path + "/")
        except Resolver404:
            pass
    return ProblemResponse(problem_body(404, detail))


def api_server_error(request: HttpRequest) -> ProblemResponse:
    return ProblemResponse(problem_body(500, "The server failed to answer this request."))


def api_bad_request(request: HttpRequest, exception: Exception | None = None) -> ProblemResponse:
    return ProblemResponse(problem_body(400, "The request was refused."))


def is_api_request(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def _server_error(exc: Exception, request) -> ProblemResponse:
    set_rollback()
    django_request = getattr(request, "_request", request)
    logger.error(
        "Internal Server Error: %s",
        getattr(django_request, "path", "?"),
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    # What Django sends for an unhandled exception: error reporting (and the test client,
    # which re-raises it) still see it.
    got_request_exception.send(sender=None, request=django_request)
    return ProblemResponse(problem_body(500, "The server failed to answer this request."))


def _as_api_exception(exc: Exception) -> exceptions.APIException:
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    assert isinstance(exc, exceptions.APIException)
    return exc


def _drf_problem(exc: exceptions.APIException) -> tuple[int, str, list[dict[str, str]]]:
    if isinstance(exc, exceptions.ValidationError):
        errors = list(field_problems(exc.detail))
        if len(errors) == 1:
            only = errors[0]
            detail = f"{only['path']}: {only['detail']}" if only["path"] else only["detail"]
        else:
            detail = f"The request has {len(errors)} problems, listed in errors."
        return exc.status_code, detail, errors
    if isinstance(exc.detail, dict | list):
        errors = list(field_problems(exc.detail))
        return exc.status_code, HTTPStatus(exc.status_code).phrase, errors
    return exc.status_code, str(exc.detail), []


def field_problems(detail: Any, path: str = "") -> Iterator[dict[str, str]]:
    """DRF's nested error structure as `{"path": "a.b.0.c", "detail": ...}` items."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = "" if key == api_settings.NON_FIELD_ERRORS_KEY else str(key)
            yield from field_problems(value, _join(path, name))
    elif isinstance(detail, list | tuple):
        for index, item in enumerate(detail):
            if isinstance(item, dict | list | tuple):
                yield from field_problems(item, _join(path, str(index)))
            else:
                yield {"path": path, "detail": str(item)}
    else:
        yield {"path": path, "detail": str(detail)}


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path and name else path or name


def _listed(errors: list, *, root: str) -> list[dict[str, str]]:
    """ApplicationError's problems at their paths (`validation.errors.problem_location`)."""
    listed = []
    for e in errors:
        if isinstance(e, dict):
            listed.append({"path": str(e.get("path", "")), "detail": str(e.get("detail", ""))})
        else:
            path, detail = problem_location(str(e), root)
            listed.append({"path": path, "detail": detail})
    return listed


def _bounded_problems(errors: list[dict[str, str]]) -> list[dict[str, str]]:
    kept = [
        {"path": bounded(e["path"], PROBLEM_CHARS), "detail": bounded(e["detail"], PROBLEM_CHARS)}
        for e in errors[:PROBLEMS_LISTED]
    ]
    if len(errors) > PROBLEMS_LISTED:
        kept.append({"path": "", "detail": f"… ({len(errors)} problems in all)"})
    return kept


def _audit_refusal(exc, request, response: ProblemResponse) -> None:
    user = getattr(request, "user", None) if request is not None else None
    refused = 400 <= response.status_code < 500
    audited = isinstance(exc, ApplicationError) and exc.audited
    if refused and user is not None and user.is_authenticated and not audited:
        audit_refusal(
            actor=user,
            method=request.method,
            path=bounded(request.path, 500),
            status=response.status_code,
            answer=response.problem,
        )
