"""Refusals safe to show the person who asked, and the bound on what they may echo back."""

import re
from collections.abc import Sequence
from typing import Any

from blindspot_client.package.echo import bounded as bounded

# What a refusal may quote back of the input (`bounded`, shared with the package format in the
# client). Messages and each listed problem are cut to these lengths.
MESSAGE_CHARS = 2000
PROBLEM_CHARS = 500
PROBLEMS_LISTED = 100


def bounded_json(value: Any, *, chars: int = PROBLEM_CHARS, items: int = PROBLEMS_LISTED) -> Any:
    """A JSON-like value with every string (keys included) cut by `bounded` and every list or
    object cut to `items` entries (with a note of how many there were)."""
    if isinstance(value, str):
        return bounded(value, chars)
    if isinstance(value, list | tuple):
        kept = [bounded_json(v, chars=chars, items=items) for v in value[:items]]
        if len(value) > items:
            kept.append(f"… ({len(value)} items)")
        return kept
    if isinstance(value, dict):
        entries = list(value.items())
        out = {
            bounded(str(k), chars): bounded_json(v, chars=chars, items=items)
            for k, v in entries[:items]
        }
        if len(entries) > items:
            out["…"] = f"({len(entries)} entries)"
        return out
    return value


# A problem line that names its field: "input/scaling: low must be below high"; "(root)" and
# "(document)" name the whole document (the manifest's and the protocol's checks write these).
_LOCATED = re.compile(r"(?P<path>\([a-z]+\)|[\w-]+(?:/[\w-]+)*): (?P<detail>.+)", re.DOTALL)


def problem_location(problem: str, root: str = "") -> tuple[str, str]:
    """A problem line as (dotted path, detail): "input/height: too big" under root "manifest"
    is ("manifest.input.height", "too big"). A line that names no field is about `root`."""
    match = _LOCATED.fullmatch(problem)
    if match is None:
        return root, problem
    path = match["path"]
    parts = [] if path.startswith("(") else path.split("/")
    return ".".join([root, *parts] if root else parts), match["detail"]


class ApplicationError(Exception):
    """A refusal whose message is safe to show the person who asked (becomes a 4xx). Its
    message and problems are bounded here, once, whatever input they quote; a problem is a
    string (a line "a/b: message" names field a.b under `errors_at`, the part of the request the
    problems are about) or `{"path": "a.b", "detail": ...}`. `audited`: the
    service already wrote the refusal's own audit event (the API records the others)."""

    status_code = 400

    def __init__(
        self,
        message: str,
        *,
        errors: Sequence[str | dict[str, str]] | None = None,
        status_code: int | None = None,
        audited: bool = False,
        errors_at: str = "",
    ):
        message = bounded(message, MESSAGE_CHARS)
        super().__init__(message)
        self.message = message
        self.errors = bounded_json(list(errors or []))
        self.audited = audited
        self.errors_at = errors_at
        if status_code is not None:
            self.status_code = status_code


class PermissionDenied(ApplicationError):
    status_code = 403
