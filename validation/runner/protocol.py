"""Wire format between `ModelRunner` (client) and the sandboxed worker: JSON headers, .npy arrays.

A message is::

    b"BSR1" | u32 big-endian header length | header (UTF-8 JSON object) | array payloads

The header lists the byte length of each payload under ``"arrays"``; each payload is one array in
`.npy` format, written and read with ``allow_pickle=False``. Nothing is ever pickled in either
direction: the worker runs vendor code and is untrusted, so the client parses its replies with
the same limits the worker applies to requests.

Requests::

    {"v": 1, "id": <int>, "op": "ping" | "predict" | "gradcam" | "shutdown", "params": {...},
     "arrays": [...]}

Replies::

    {"v": 1, "id": <same>, "ok": true, "result": {...}, "arrays": [...]}
    {"v": 1, "id": <same>, "ok": false, "arrays": [],
     "error": {"category": <one of ERROR_CATEGORIES>, "detail": "..."}}

The detail may hold a traceback from vendor code: it is for reviewers, never for the vendor.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

VERSION = 1
MAGIC = b"BSR1"
MAX_HEADER_BYTES = 1024 * 1024
DEFAULT_MAX_PAYLOAD_BYTES = 2 * 1024 * 1024 * 1024

ERROR_CATEGORIES = (
    "load-failed",
    "crash",
    "timeout",
    "oom",
    "bad-input",
    "bad-output",
    "unsupported",
)

_PREFIX = struct.Struct(">4sI")


class ProtocolError(Exception):
    """The byte stream is malformed; the connection cannot be trusted any further."""


class StreamClosed(ProtocolError):
    """The other side closed the stream before a complete message."""


def encode_message(header: dict[str, Any], arrays: Sequence[np.ndarray] = ()) -> list[bytes]:
    """Frame `header` and `arrays` as a list of byte chunks to write in order."""
    payloads = [_npy_bytes(array) for array in arrays]
    full_header = {**header, "v": VERSION, "arrays": [len(p) for p in payloads]}
    header_bytes = json.dumps(full_header, separators=(",", ":"), allow_nan=False).encode()
    if len(header_bytes) > MAX_HEADER_BYTES:
        raise ProtocolError("header too large")
    return [_PREFIX.pack(MAGIC, len(header_bytes)), header_bytes, *payloads]


def read_message(
    read_exact: Callable[[int], bytes],
    *,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Read one message with `read_exact(n)` (which returns exactly n bytes or raises).

    Raises `StreamClosed` when the stream ends cleanly before a message, `ProtocolError` on
    anything malformed or over the limits.
    """
    prefix = read_exact(_PREFIX.size)
    magic, header_length = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise ProtocolError("bad frame magic (stream out of sync)")
    if header_length > MAX_HEADER_BYTES:
        raise ProtocolError("header too large")
    try:
        header = json.loads(read_exact(header_length).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict) or header.get("v") != VERSION:
        raise ProtocolError("header is not a version-1 JSON object")
    lengths = header.get("arrays", [])
    if not isinstance(lengths, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in lengths
    ):
        raise ProtocolError("header 'arrays' must list payload lengths")
    if sum(lengths) > max_payload_bytes:
        raise ProtocolError("payload too large")
    return header, [_npy_array(read_exact(n)) for n in lengths]


def blocking_reader(stream: Any) -> Callable[[int], bytes]:
    """`read_exact` over a blocking binary stream (the worker's side)."""

    def read_exact(n: int) -> bytes:
        chunks = []
        remaining = n
        while remaining:
            chunk = stream.read(remaining)
            if not chunk:
                raise StreamClosed("stream closed")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    return read_exact


def write_chunks(stream: Any, chunks: Iterable[bytes]) -> None:
    for chunk in chunks:
        stream.write(chunk)
    stream.flush()


def ok_reply(request_id: Any, result: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": request_id, "ok": True, "result": result or {}}


def error_reply(request_id: Any, category: str, detail: str) -> dict[str, Any]:
    if category not in ERROR_CATEGORIES:
        raise ValueError(f"unknown error category {category!r}")
    return {"id": request_id, "ok": False, "error": {"category": category, "detail": detail}}


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
    return buffer.getvalue()


def _npy_array(data: bytes) -> np.ndarray:
    """Parse one .npy payload strictly: plain numeric dtype, size matching the header exactly.

    Checked before allocating, so a hostile header cannot make the reader reserve memory the
    payload does not back.
    """
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise ProtocolError(f"payload is not a .npy array: {exc}") from None
    if dtype.kind not in "biuf" or dtype.hasobject:
        raise ProtocolError(f"payload dtype {dtype} is not a plain numeric type")
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    offset = stream.tell()
    if count * dtype.itemsize != len(data) - offset:
        raise ProtocolError("payload size does not match its .npy header")
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape, order="F" if fortran_order else "C").copy(order="C")
