"""Domain errors become clear 4xx answers; hidden objects are 404 like missing ones."""

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from validation.errors import ApplicationError


def exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        body: dict[str, str | list[str]] = {"detail": exc.message}
        if exc.errors:
            body["errors"] = exc.errors
        return Response(body, status=exc.status_code)
    return drf_exception_handler(exc, context)
