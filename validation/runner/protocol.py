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

A client may send several requests before reading the replies; the worker answers them in order,
one at a time. Arrays are read straight into their numpy buffers (`read_message`) and written
from them (`encode_message`), so a batch is copied only by the kernel, into and out of the pipe.
"""

from __future__ import annotations

import collections
import fcntl
import io
import json
import mmap
import os
import struct
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any

import numpy as np

Buffer = bytes | memoryview

VERSION = 1
MAGIC = b"BSR1"
MAX_HEADER_BYTES = 1024 * 1024
MAX_NPY_HEADER_BYTES = 64 * 1024
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


class SharedRegion:
    """Memory both sides map, so that batches need not go through the pipe: `slots` request
    slots (the client writes them) followed by `slots` reply slots (the worker writes them), each
    `slot_bytes`. The message still travels on the pipe; its header points into the region.

    The client creates it as a sealed memfd (`create`): the worker cannot shrink or grow it,
    which would make the client's reads fault. Slot i serves the requests whose id is i modulo
    `slots`, so with at most `slots` requests in flight no slot is rewritten before its reply.
    """

    def __init__(self, fd: int, slots: int, slot_bytes: int) -> None:
        size = 2 * slots * slot_bytes
        if os.fstat(fd).st_size < size:
            raise ValueError("shared region is smaller than its slots")
        self.fd = fd
        self.slots = slots
        self.slot_bytes = slot_bytes
        self._map = mmap.mmap(fd, size)
        self.view = memoryview(self._map)

    @classmethod
    def create(cls, slots: int, slot_bytes: int) -> SharedRegion:
        fd = os.memfd_create("blindspot-runner", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, 2 * slots * slot_bytes)
            seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
            return cls(fd, slots, slot_bytes)
        except BaseException:
            os.close(fd)
            raise

    def request_slot(self, request_id: int) -> SharedSlot:
        return SharedSlot(self.view, (request_id % self.slots) * self.slot_bytes, self.slot_bytes)

    def reply_slot(self, request_id: int) -> SharedSlot:
        index = self.slots + request_id % self.slots
        return SharedSlot(self.view, index * self.slot_bytes, self.slot_bytes)

    def close(self) -> None:
        self.view.release()
        try:
            self._map.close()
        except BufferError:  # a slot view still alive: the mapping goes when it does
            pass
        os.close(self.fd)


class SharedSlot:
    """A part of the shared region (see `SharedRegion`) that one side fills for one message."""

    def __init__(self, region: memoryview, offset: int, size: int) -> None:
        self.view = region[offset : offset + size]
        self.offset = offset
        self.used = 0

    def put(self, parts: Sequence[Buffer]) -> list[int] | None:
        """Copy `parts` (one .npy payload) in; their [offset, length] in the region, or None
        when they do not fit (the payload then goes on the pipe)."""
        length = sum(len(part) for part in parts)
        if self.used + length > len(self.view):
            return None
        start = self.used
        for part in parts:
            self.view[self.used : self.used + len(part)] = part
            self.used += len(part)
        return [self.offset + start, length]


def encode_message(
    header: dict[str, Any], arrays: Sequence[np.ndarray] = (), *, shared: SharedSlot | None = None
) -> list[Buffer]:
    """Frame `header` and `arrays` as a list of buffers to write in order.

    With `shared`, each payload that fits is copied into the shared slot and the header lists
    its [offset, length] instead of a length on the pipe. Payloads on the pipe are not copied:
    a `.npy` header followed by a view of the (C contiguous) array itself, so the caller must not
    change the arrays until they are written.
    """
    payloads = [_npy_parts(array) for array in arrays]
    entries: list[int | list[int]] = []
    inline: list[Buffer] = []
    for npy_header, data in payloads:
        placed = shared.put((npy_header, data)) if shared is not None else None
        if placed is not None:
            entries.append(placed)
            continue
        entries.append(len(npy_header) + data.nbytes)
        inline.append(npy_header)
        if data.nbytes:
            inline.append(data)
    full_header = {**header, "v": VERSION, "arrays": entries}
    header_bytes = json.dumps(full_header, separators=(",", ":"), allow_nan=False).encode()
    if len(header_bytes) > MAX_HEADER_BYTES:
        raise ProtocolError("header too large")
    return [_PREFIX.pack(MAGIC, len(header_bytes)), header_bytes, *inline]


def read_message(
    readinto: Callable[[memoryview], int | None],
    *,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    shared: memoryview | None = None,
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Read one message with `readinto(view)` (a blocking stream's `readinto`: fills part of
    `view`, returns the count, 0 at the end of the stream).

    Raises `StreamClosed` when the stream ends cleanly before a message, `ProtocolError` on
    anything malformed or over the limits.
    """
    parser = message_parser(max_payload_bytes=max_payload_bytes, shared=shared)
    view = next(parser)
    at_message_start = True
    while True:
        _fill(readinto, view, at_message_start=at_message_start)
        at_message_start = False
        try:
            view = parser.send(None)
        except StopIteration as done:
            return done.value


class MessageReader:
    """Reads messages from a non-blocking file descriptor as bytes arrive (`feed`), so that one
    thread can write requests and read replies without either side blocking the other."""

    def __init__(
        self,
        fd: int,
        *,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        shared: memoryview | None = None,
    ) -> None:
        self.fd = fd
        self.max_payload_bytes = max_payload_bytes
        self.shared = shared
        self.messages: collections.deque[tuple[dict[str, Any], list[np.ndarray]]] = (
            collections.deque()
        )
        self.closed = False
        self._start()

    def _start(self) -> None:
        self._parser = message_parser(max_payload_bytes=self.max_payload_bytes, shared=self.shared)
        self._view = next(self._parser)
        self._filled = 0
        self._in_message = False

    def feed(self) -> None:
        """Read what the descriptor holds now; complete messages go to `messages`.

        Raises `StreamClosed` at the end of the stream, `ProtocolError` on a malformed message.
        """
        while True:
            try:
                count = os.readv(self.fd, [self._view[self._filled :]])
            except BlockingIOError:
                return
            if count == 0:
                if self._in_message or self._filled:
                    raise StreamClosed("stream closed inside a message")
                if self.messages:  # last replies, then the end: they are read first
                    self.closed = True
                    return
                raise StreamClosed("stream closed")
            self._filled += count
            while self._filled == len(self._view):
                self._in_message = True
                try:
                    self._view = self._parser.send(None)
                    self._filled = 0
                except StopIteration as done:
                    self.messages.append(done.value)
                    self._start()
                    break


def message_parser(
    *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES, shared: memoryview | None = None
) -> Generator[memoryview, None, tuple[dict[str, Any], list[np.ndarray]]]:
    """The parser behind both readers: yields each buffer it needs filled next (completely)
    and returns (header, arrays).

    Each array is read straight into its own freshly allocated, C-contiguous numpy buffer, once
    its `.npy` header has been checked: from the stream, or copied out of `shared` for payloads
    the header places there (the other side may write the region at any time, so nothing is
    checked or used in place).
    """
    prefix = bytearray(_PREFIX.size)
    yield memoryview(prefix)
    magic, header_length = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise ProtocolError("bad frame magic (stream out of sync)")
    if header_length > MAX_HEADER_BYTES:
        raise ProtocolError("header too large")
    raw = bytearray(header_length)
    if header_length:
        yield memoryview(raw)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict) or header.get("v") != VERSION:
        raise ProtocolError("header is not a version-1 JSON object")
    entries = header.get("arrays", [])
    if not isinstance(entries, list) or not all(
        _is_size(n) or (shared is not None and _is_place(n, len(shared))) for n in entries
    ):
        raise ProtocolError("header 'arrays' must list payload lengths or shared places")
    if sum(n if _is_size(n) else n[1] for n in entries) > max_payload_bytes:
        raise ProtocolError("payload too large")
    arrays = []
    for entry in entries:
        if _is_size(entry):
            arrays.append((yield from _npy_parser(entry)))
        else:
            assert shared is not None  # a place is only accepted with a region (checked above)
            offset, length = entry
            arrays.append(_parse_from(shared[offset : offset + length], _npy_parser(length)))
    return header, arrays


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_place(value: Any, region_bytes: int) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(_is_size(v) for v in value)
        and value[0] + value[1] <= region_bytes
    )


def _parse_from(data: memoryview, parser: Generator[memoryview, None, np.ndarray]) -> np.ndarray:
    """Drive a payload parser from a buffer of exactly the payload's length."""
    position = 0
    try:
        target = next(parser)
        while True:
            target[:] = data[position : position + len(target)]
            position += len(target)
            target = parser.send(None)
    except StopIteration as done:
        return done.value


def write_chunks(stream: Any, chunks: Iterable[Buffer]) -> None:
    for chunk in chunks:
        stream.write(chunk)
    stream.flush()


def ok_reply(request_id: Any, result: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": request_id, "ok": True, "result": result or {}}


def error_reply(request_id: Any, category: str, detail: str) -> dict[str, Any]:
    if category not in ERROR_CATEGORIES:
        raise ValueError(f"unknown error category {category!r}")
    return {"id": request_id, "ok": False, "error": {"category": category, "detail": detail}}


def _npy_parts(array: np.ndarray) -> tuple[bytes, memoryview]:
    """The `.npy` (version 1.0) header of `array` and a byte view of its data, without a copy."""
    array = np.asarray(array)
    if not array.flags.c_contiguous:
        array = array.copy(order="C")
    if array.dtype.kind not in "biuf" or array.dtype.hasobject:
        raise ProtocolError(f"cannot send dtype {array.dtype}: plain numeric types only")
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, np.lib.format.header_data_from_array_1_0(array))
    return buffer.getvalue(), array.reshape(-1).data.cast("B")


def _fill(
    readinto: Callable[[memoryview], int | None],
    view: memoryview,
    *,
    at_message_start: bool = False,
) -> None:
    filled = 0
    while filled < len(view):
        count = readinto(view[filled:])
        if not count:
            if count is None:  # a non-blocking stream with nothing to read: a misuse
                raise ProtocolError("read would block")
            if at_message_start and filled == 0:
                raise StreamClosed("stream closed")
            raise StreamClosed("stream closed inside a message")
        filled += count


_NPY_PREAMBLE = 10  # magic (6), version (2), header length (2, or the first 2 of 4 in v2/v3)


def _npy_preamble(length: int) -> Generator[memoryview, None, tuple[bytearray, bytearray, int]]:
    """Read the magic, the version and the header length (2 bytes in v1, 4 in v2): (preamble,
    the v2 length's last two bytes, header length)."""
    if length < _NPY_PREAMBLE:
        raise ProtocolError("payload is not a .npy array: too short")
    preamble = bytearray(_NPY_PREAMBLE)
    yield memoryview(preamble)
    if preamble[:6] != b"\x93NUMPY":
        raise ProtocolError("payload is not a .npy array: bad magic")
    version = (preamble[6], preamble[7])
    if version == (1, 0):
        return preamble, bytearray(), struct.unpack("<H", preamble[8:10])[0]
    if version != (2, 0):
        raise ProtocolError(f"payload is not a .npy array: unsupported version {version}")
    if length < _NPY_PREAMBLE + 2:
        raise ProtocolError("payload is not a .npy array: too short")
    rest = bytearray(2)
    yield memoryview(rest)
    return preamble, rest, struct.unpack("<I", bytes(preamble[8:10] + rest))[0]


def _npy_parser(length: int) -> Generator[memoryview, None, np.ndarray]:
    """Parse one `.npy` payload of `length` bytes strictly: plain numeric dtype, data size
    matching the header exactly, checked before the data buffer is allocated (so a hostile header
    cannot make the reader reserve memory the payload does not back)."""
    preamble, rest, header_length = yield from _npy_preamble(length)
    version = (preamble[6], preamble[7])
    prefix_length = len(preamble) + len(rest) + header_length
    if header_length > MAX_NPY_HEADER_BYTES or prefix_length > length:
        raise ProtocolError("payload is not a .npy array: bad header length")
    npy_header = bytearray(header_length)
    if header_length:
        yield memoryview(npy_header)
    stream = io.BytesIO(bytes(preamble + rest + npy_header))
    try:
        np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise ProtocolError(f"payload is not a .npy array: {exc}") from None
    if dtype.kind not in "biuf" or dtype.hasobject:
        raise ProtocolError(f"payload dtype {dtype} is not a plain numeric type")
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count < 0 or count * dtype.itemsize != length - prefix_length:
        raise ProtocolError("payload size does not match its .npy header")
    array = np.empty(shape, dtype=dtype, order="F" if fortran_order else "C")
    if count:
        yield array.reshape(-1, order="A").data.cast("B")
    return array if array.flags.c_contiguous else array.copy(order="C")
