"""How every list of /api/v1/ pages and filters: cursor pagination in a stable order (newest
first by id, unless a view names its own `cursor_ordering`), and only the query parameters a
list declares. An unknown parameter, a bad filter value, a bad cursor or page size is a 400
problem naming the parameter, never silently ignored."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import models
from rest_framework import exceptions
from rest_framework.filters import BaseFilterBackend
from rest_framework.pagination import CursorPagination

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
PAGE_SIZE_PARAM = "page_size"
CURSOR_PARAM = "cursor"


class ApiCursorPagination(CursorPagination):
    """`{"next", "previous", "results"}`; follow `next` until it is null."""

    page_size = PAGE_SIZE
    max_page_size = MAX_PAGE_SIZE
    page_size_query_param = PAGE_SIZE_PARAM
    cursor_query_param = CURSOR_PARAM
    ordering = "-id"
    cursor_query_description = "The position to continue from: take it from `next` or `previous`."
    page_size_query_description = f"Results per page, 1 to {MAX_PAGE_SIZE} (default {PAGE_SIZE})."

    def paginate_queryset(self, queryset, request, view=None):
        self.ordering = getattr(view, "cursor_ordering", type(self).ordering)
        return super().paginate_queryset(queryset, request, view)

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(PAGE_SIZE_PARAM)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise exceptions.ValidationError(
                {PAGE_SIZE_PARAM: [f"Give a whole number from 1 to {MAX_PAGE_SIZE}."]}
            )
        return size

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound as exc:
            raise exceptions.ValidationError(
                {CURSOR_PARAM: ["Invalid cursor: take it from a page's `next` or `previous`."]}
            ) from exc

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == PAGE_SIZE_PARAM:
                parameter["schema"].update(minimum=1, maximum=MAX_PAGE_SIZE)
        return parameters


@dataclass(frozen=True)
class QueryFilter:
    """One supported query parameter of a list: `?name=value` filters `lookup` (the values of
    `choices`, or whole numbers when `integer`). Repeat the parameter for any of several."""

    name: str
    lookup: str
    description: str
    choices: Sequence[str] = ()
    integer: bool = False

    def parse(self, raw: str) -> Any:
        if self.integer:
            try:
                value = int(raw)
            except ValueError:
                value = None
            if value is None or not 1 <= value <= 2**63 - 1:
                raise _bad(self.name, "Give a whole number (an id).")
            return value
        if self.choices and raw not in self.choices:
            raise _bad(self.name, f"Give one of: {', '.join(self.choices)}.")
        return raw

    def schema(self) -> dict:
        item: dict[str, Any] = {"type": "integer", "minimum": 1}
        if not self.integer:
            item = {"type": "string", **({"enum": list(self.choices)} if self.choices else {})}
        return {
            "name": self.name,
            "in": "query",
            "required": False,
            "description": self.description,
            "schema": {"type": "array", "items": item},
            "style": "form",
            "explode": True,
        }


class StrictQueryFilterBackend(BaseFilterBackend):
    """Applies a view's `query_filters` and refuses any query parameter the list does not
    support (pagination's `cursor` and `page_size` are always supported)."""

    def filter_queryset(self, request, queryset: models.QuerySet, view) -> models.QuerySet:
        filters = {f.name: f for f in getattr(view, "query_filters", ())}
        unknown = sorted(set(request.query_params) - set(filters) - {CURSOR_PARAM, PAGE_SIZE_PARAM})
        if unknown:
            supported = ", ".join([*filters, CURSOR_PARAM, PAGE_SIZE_PARAM])
            raise exceptions.ValidationError(
                {
                    name: [f"Unsupported query parameter; this list takes {supported}."]
                    for name in unknown
                }
            )
        for name, query_filter in filters.items():
            values = request.query_params.getlist(name)
            if values:
                parsed = [query_filter.parse(v) for v in values]
                queryset = queryset.filter(**{f"{query_filter.lookup}__in": parsed})
        return queryset

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [f.schema() for f in getattr(view, "query_filters", ())]


def _bad(name: str, message: str) -> exceptions.ValidationError:
    return exceptions.ValidationError({name: [message]})
