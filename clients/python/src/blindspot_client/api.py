"""A small HTTP client for Blindspot's /api/v1/ on the standard library alone: JSON requests,
problem-details errors, cursor lists followed through `next`, streamed uploads and downloads."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import ssl
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

API_PREFIX = "/api/v1/"
CHUNK = 256 * 1024
TIMEOUT_S = 120.0

Progress = Callable[[int, int], None]


class ApiError(Exception):
    """An answer that is not a success: the server's problem details (`detail`, `errors`), or
    a failure to reach it (status 0)."""

    def __init__(self, status: int, detail: str, errors: list[Any] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = list(errors or [])

    def lines(self) -> list[str]:
        """The detail, then one line per field problem (`path: detail`)."""
        head = f"{self.detail} (HTTP {self.status})" if self.status else self.detail
        return [head, *(_problem_line(e) for e in self.errors)]


def _problem_line(error: Any) -> str:
    if isinstance(error, dict) and "detail" in error:
        path = error.get("path") or ""
        return f"{path}: {error['detail']}" if path else str(error["detail"])
    return str(error)


def _problem_from(status: int, body: bytes) -> ApiError:
    try:
        data = json.loads(body or b"null")
    except ValueError:
        data = None
    if isinstance(data, dict):
        detail = data.get("detail") or data.get("title") or ""
        errors = data.get("errors")
        if isinstance(errors, list):
            return ApiError(status, str(detail or "refused"), errors)
        # A field-error object ({"field": ["message"]}) from a server without problem details.
        fields = [
            {"path": k, "detail": " ".join(map(str, v)) if isinstance(v, list) else str(v)}
            for k, v in data.items()
            if k not in ("detail", "title", "type", "status", "instance")
        ]
        return ApiError(status, str(detail or "the request was refused"), fields)
    text = body.decode("utf-8", "replace").strip()[:300]
    return ApiError(status, text or http.client.responses.get(status, "error"))


class Api:
    """One server (`url`, e.g. http://127.0.0.1:8000) and, once signed in, one token."""

    def __init__(self, url: str, token: str | None = None) -> None:
        parsed = urllib.parse.urlsplit(url.rstrip("/"))
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ApiError(0, f"not a server address: {url!r} (give e.g. http://127.0.0.1:8000)")
        self.url = url.rstrip("/")
        self._parsed = parsed
        self.token = token

    # --- plumbing ----------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        host, port = self._parsed.hostname or "", self._parsed.port
        if self._parsed.scheme == "https":
            return http.client.HTTPSConnection(
                host, port, timeout=TIMEOUT_S, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)

    def _target(self, path: str) -> str:
        """A request target from an API path ("packages/") or an absolute URL (a `next` link)."""
        if path.startswith(("http://", "https://")):
            parts = urllib.parse.urlsplit(path)
            return urllib.parse.urlunsplit(("", "", parts.path, parts.query, ""))
        base = self._parsed.path.rstrip("/")
        return base + (path if path.startswith("/") else API_PREFIX + path)

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json, application/problem+json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return {**headers, **(extra or {})}

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: bytes | Iterator[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> http.client.HTTPResponse:
        connection = self._connection()
        try:
            connection.putrequest(method, self._target(path))
            for key, value in self._headers(headers).items():
                connection.putheader(key, value)
            connection.endheaders()
            if isinstance(body, bytes):
                connection.send(body)
            elif body is not None:
                for chunk in body:
                    connection.send(chunk)
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise ApiError(0, f"cannot reach {self.url}: {exc}") from None
        if response.status >= 400:
            data = response.read()
            connection.close()
            raise _problem_from(response.status, data)
        return response

    def request(self, method: str, path: str, payload: Any = None) -> Any:
        """Send JSON (if `payload` is not None), answer the decoded JSON (None when empty)."""
        body = None if payload is None else json.dumps(payload).encode()
        headers = {} if body is None else {"Content-Type": "application/json"}
        if body is not None:
            headers["Content-Length"] = str(len(body))
        response = self._send(method, path, body=body, headers=headers)
        data = response.read()
        return json.loads(data) if data.strip() else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, payload: Any = None) -> Any:
        return self.request("POST", path, {} if payload is None else payload)

    def list(self, path: str) -> Iterator[dict]:
        """Every item of a list, following `next` links (cursor or page), or a plain array."""
        page: str | None = path
        while page:
            data = self.get(page)
            if isinstance(data, list):
                yield from data
                return
            yield from data.get("results", [])
            page = data.get("next")

    # --- files -------------------------------------------------------------------------------

    def upload(
        self, path: str, file: Path, *, field: str = "file", progress: Progress | None = None
    ) -> Any:
        """POST `file` as multipart/form-data, streamed from disk in chunks (never read whole);
        `progress(sent, total)` after each chunk."""
        boundary = "blindspot-" + secrets.token_hex(16)
        name = file.name.replace('"', "_").replace("\r", "_").replace("\n", "_")
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        size = file.stat().st_size
        total = len(head) + size + len(tail)

        def chunks() -> Iterator[bytes]:
            sent = 0
            yield head
            with file.open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    sent += len(chunk)
                    if progress is not None:
                        progress(sent, size)
                    yield chunk
            yield tail

        headers = {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(total),
        }
        response = self._send("POST", path, body=chunks(), headers=headers)
        data = response.read()
        return json.loads(data) if data.strip() else None

    def download(self, path: str, out: BinaryIO, *, progress: Progress | None = None) -> int:
        """GET `path` into `out` in chunks; the number of bytes written."""
        response = self._send("GET", path)
        total = int(response.getheader("Content-Length") or 0)
        written = 0
        while chunk := response.read(CHUNK):
            out.write(chunk)
            written += len(chunk)
            if progress is not None:
                progress(written, total)
        return written


def default_url() -> str | None:
    return os.environ.get("BLINDSPOT_URL") or None
