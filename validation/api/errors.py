"""Domain errors become clear 4xx answers; hidden objects are 404 like missing ones. Every
refusal of a signed-in user is audited (REQUEST_REFUSED) unless its service already recorded it,
and no answer quotes more of the input than `validation.errors.bounded_json` lets through."""

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from audit.services import audit_refusal
from validation.errors import ApplicationError, bounded, bounded_json


def exception_handler(exc, context) -> Response | None:
    response: Response | None
    if isinstance(exc, ApplicationError):
        body: dict[str, str | list[str]] = {"detail": exc.message}
        if exc.errors:
            body["errors"] = exc.errors
        response = Response(body, status=exc.status_code)
    else:
        response = drf_exception_handler(exc, context)
        if response is None:
            return None
        response.data = bounded_json(response.data)  # DRF's field errors may quote the input
    request = context.get("request")
    user = getattr(request, "user", None)
    refused = 400 <= response.status_code < 500
    if refused and user is not None and user.is_authenticated and not _audited(exc):
        audit_refusal(
            actor=user,
            method=request.method,
            path=bounded(request.path, 500),
            status=response.status_code,
            answer=response.data,
        )
    return response


def _audited(exc) -> bool:
    return isinstance(exc, ApplicationError) and exc.audited
